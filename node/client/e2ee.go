package client

import (
	"context"
	"crypto/ed25519"
	"sort"
	"strings"
	"sync"

	"github.com/parley-p2p/parley/errs"
	"github.com/parley-p2p/parley/node/e2ee"
	"github.com/parley-p2p/parley/node/links"
	"github.com/parley-p2p/parley/node/peers"
	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/rooms"
	"github.com/parley-p2p/parley/webui"
)

// What every room uses: there is no switch to turn encryption off, so
// the panel states it rather than asks the room.
const (
	e2eeAlgorithm = "m.megolm.v1.aes-sha2"
	e2eeKEM       = "X-Wing (ML-KEM-768 + X25519)"
)

// RoomE2EE implements webui.E2EE: the room's joined and invited members,
// each with the safety number the user compares with them and the user's
// record of having done so. Verifications are kept per local user.
func (api *API) RoomE2EE(s *webui.Session, roomID string) (*webui.RoomE2EE, error) {
	r, err := api.joinedRoom(s, roomID)
	if err != nil {
		return nil, err
	}
	own, err := rooms.ServerKey(api.serverName)
	if err != nil {
		return nil, err
	}
	var verified map[string]store.Verified
	if err := api.store.View(func(t *store.Txn) error {
		verified, err = t.Verifications(s.UserID)
		return err
	}); err != nil {
		return nil, err
	}
	out := &webui.RoomE2EE{Encrypted: true, Algorithm: e2eeAlgorithm, KEM: e2eeKEM, Members: []webui.E2EEMember{}}
	for k, id := range r.State() {
		if k.Type != "m.room.member" {
			continue
		}
		i, err := api.dag.Event(id)
		if err != nil {
			continue
		}
		m := i.Event.Membership()
		if m != "join" && m != "invite" {
			continue
		}
		server, err := rooms.ServerOf(k.StateKey)
		if err != nil {
			continue
		}
		key, err := rooms.ServerKey(server)
		if err != nil {
			continue
		}
		em := webui.E2EEMember{UserID: k.StateKey, Membership: m, Server: server}
		if server == api.serverName {
			em.ThisDevice = true
		} else {
			em.SafetyNumber = safetyNumber(own, key)
			if v, ok := verified[server]; ok {
				em.Verified = &webui.Verification{Via: v.Via, TS: v.TS}
			}
		}
		out.Members = append(out.Members, em)
	}
	sort.Slice(out.Members, func(a, b int) bool { return out.Members[a].UserID < out.Members[b].UserID })
	return out, nil
}

// SetVerified implements webui.E2EE. To verify, the server must have a
// joined or invited member in the room, which the user is joined to, and
// not be this node; withdrawing needs only the user's membership, so a
// check of someone who since left can still be taken back.
func (api *API) SetVerified(ctx context.Context, s *webui.Session, roomID, server, via string, verified bool) error {
	r, err := api.joinedRoom(s, roomID)
	if err != nil {
		return err
	}
	if server == api.serverName {
		return errs.Invalidf("that is this device's own server: there is nothing to verify")
	}
	if verified && !api.serverInRoom(r.State(), server) {
		return errs.NotFoundf("no member of room %s is on server %s", roomID, server)
	}
	return api.store.Update(func(t *store.Txn) error {
		if !verified {
			return t.DeleteVerified(s.UserID, server)
		}
		return t.PutVerified(s.UserID, server, store.Verified{Via: via, TS: nowMS()})
	})
}

// VerifyLinkMaker implements webui.E2EE: after joining through a link
// the user got in person, the link's maker's server is verified. The
// maker must be a joined member of the room, and if the link's state is
// still live, its sender, so a link whose maker field was changed
// verifies nobody.
func (api *API) VerifyLinkMaker(ctx context.Context, s *webui.Session, link string) (string, error) {
	p, err := links.Parse(link)
	if err != nil {
		return "", errs.Invalidf("%v", err)
	}
	if p.Maker == "" {
		return "", errs.Invalidf("this invite link does not say who made it")
	}
	server, err := rooms.ServerOf(p.Maker)
	if err != nil {
		return "", errs.Invalidf("this invite link's maker %q is not a user ID", p.Maker)
	}
	r, err := api.joinedRoom(s, p.RoomID)
	if err != nil {
		return "", err
	}
	if server == api.serverName {
		return "", errs.Invalidf("the link was made on this device")
	}
	if api.peers.Membership(r, p.Maker) != "join" {
		return "", errs.Forbiddenf("the link's maker %s is not in the room", p.Maker)
	}
	if st, ok := api.peers.LinkStates(r)[p.ID]; ok && st.Ended == "" && st.Maker != p.Maker {
		return "", errs.Forbiddenf("the link says %s made it, but the room says %s did", p.Maker, st.Maker)
	}
	err = api.store.Update(func(t *store.Txn) error {
		return t.PutVerified(s.UserID, server, store.Verified{Via: webui.ViaLink, TS: nowMS()})
	})
	return server, err
}

// joinedRoom is a room the user is joined to; anything else, including a
// room this node does not know, is refused alike.
func (api *API) joinedRoom(s *webui.Session, roomID string) (*peers.Room, error) {
	r := api.peers.Room(roomID)
	if r == nil || api.peers.Membership(r, s.UserID) != "join" {
		return nil, errs.Forbiddenf("you are not joined to room %s", roomID)
	}
	return r, nil
}

// serverInRoom reports whether a joined or invited member of the state
// is on server.
func (api *API) serverInRoom(state store.StateMap, server string) bool {
	for k, id := range state {
		if k.Type != "m.room.member" {
			continue
		}
		if on, err := rooms.ServerOf(k.StateKey); err != nil || on != server {
			continue
		}
		if i, err := api.dag.Event(id); err == nil {
			if m := i.Event.Membership(); m == "join" || m == "invite" {
				return true
			}
		}
	}
	return false
}

// safetyNumbers caches what safetyNumber computes: each takes some
// milliseconds (thousands of SHA-512 rounds per key), and a members panel
// asks for every member's on each opening. The cache is bounded and
// simply emptied when full.
var safetyNumbers = struct {
	sync.Mutex
	m map[string]string
}{m: map[string]string{}}

const maxSafetyNumbers = 4096

// safetyNumber is e2ee.SafetyNumber in 12 groups of 5 digits.
func safetyNumber(own, other ed25519.PublicKey) string {
	key := string(own) + string(other)
	safetyNumbers.Lock()
	n, ok := safetyNumbers.m[key]
	safetyNumbers.Unlock()
	if ok {
		return n
	}
	digits := e2ee.SafetyNumber(own, other)
	var b strings.Builder
	for i := 0; i < len(digits); i += 5 {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(digits[i:min(i+5, len(digits))])
	}
	n = b.String()
	safetyNumbers.Lock()
	if len(safetyNumbers.m) >= maxSafetyNumbers {
		clear(safetyNumbers.m)
	}
	safetyNumbers.m[key] = n
	safetyNumbers.Unlock()
	return n
}
