package peers

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/parley-p2p/parley/node/e2ee"
	"github.com/parley-p2p/parley/rooms"
)

// A node's KEM key (e2ee) receives what is sealed to the node alone: the
// room secret in an invite or a send_join answer. An inviter asks the
// invitee's node for it (MethodKeys), signed with the node's server key;
// a resident takes a joiner's from its join event (e2ee.KEMField).

// maxKEMDoc bounds the KEM document a node answers with.
const maxKEMDoc = 4 << 10

func keysSigned(doc []byte) []byte { return append([]byte("parley/keys/v1\x00"), doc...) }

// KEMDoc is the node's KEM public key, as it goes in its join events.
func (ps *Peers) KEMDoc() e2ee.KEMDoc { return ps.kem.Doc() }

func (ps *Peers) onKeys() (any, error) {
	doc, err := rooms.MarshalCanonical(ps.kem.Doc())
	if err != nil {
		return nil, err
	}
	sig := ed25519.Sign(ps.key, keysSigned(doc))
	return KeysResp{KEM: doc, Sig: base64.RawURLEncoding.EncodeToString(sig)}, nil
}

// fetchKEM asks a server's node for its KEM key and checks the answer
// against the server's key (its name).
func (ps *Peers) fetchKEM(ctx context.Context, server string) (e2ee.PublicKey, error) {
	pub, err := hex.DecodeString(server)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return e2ee.PublicKey{}, fmt.Errorf("server name %q is not a key", server)
	}
	p, err := peerOf(server)
	if err != nil {
		return e2ee.PublicKey{}, err
	}
	var resp KeysResp
	if err := ps.request(ctx, p, MethodKeys, struct{}{}, &resp); err != nil {
		return e2ee.PublicKey{}, err
	}
	sig, err := base64.RawURLEncoding.DecodeString(resp.Sig)
	if err != nil || len(resp.KEM) > maxKEMDoc || !ed25519.Verify(ed25519.PublicKey(pub), keysSigned(resp.KEM), sig) {
		return e2ee.PublicKey{}, errors.New("the node's KEM key is not signed by its server key")
	}
	return e2ee.ParseKEMDoc(resp.KEM)
}

func inviteInfo(inviter, invitee string) []byte {
	return e2ee.Info("parley/invite/v1", inviter, invitee)
}

func joinInfo(roomID, joinEventID string) []byte {
	return e2ee.Info("parley/join/v1", roomID, joinEventID)
}

// sealInvite seals an invite, with the room's secret, to the invitee
// node's KEM key.
func (ps *Peers) sealInvite(ctx context.Context, server string, req InviteReq) (rawBody, error) {
	rs, ok := ps.currentSecret(req.roomID())
	if !ok {
		return nil, errors.New("this node does not hold the room's secret")
	}
	pub, err := ps.fetchKEM(ctx, server)
	if err != nil {
		return nil, err
	}
	pt, err := json.Marshal(InvitePayload{InviteReq: req, Secret: rs.shared()})
	if err != nil {
		return nil, err
	}
	return e2ee.Seal(pub, inviteInfo(ps.serverName, server), pt)
}

// openInvite opens an invite sealed to this node by server's node.
func (ps *Peers) openInvite(server string, body []byte) (*InvitePayload, error) {
	pt, err := ps.kem.Open(inviteInfo(server, ps.serverName), body)
	if err != nil {
		return nil, remoteErr("M_FORBIDDEN", "the invite is not sealed to this node")
	}
	var p InvitePayload
	if err := decode(pt, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

func (r InviteReq) roomID() string {
	var ev struct {
		RoomID string `json:"room_id"`
	}
	_ = json.Unmarshal(r.Event, &ev)
	return ev.RoomID
}

// sealForJoiner seals the room's secret to the KEM key a join event
// carries; nil when it carries none.
func (ps *Peers) sealForJoiner(r *Room, join *rooms.Event) []byte {
	var c map[string]json.RawMessage
	if json.Unmarshal(join.Content(), &c) != nil || c[e2ee.KEMField] == nil {
		return nil
	}
	pub, err := e2ee.ParseKEMDoc(c[e2ee.KEMField])
	if err != nil {
		return nil
	}
	rs, ok := ps.currentSecret(r.ID)
	if !ok {
		return nil
	}
	pt, _ := json.Marshal(rs.shared())
	sealed, err := e2ee.Seal(pub, joinInfo(r.ID, join.ID()), pt)
	if err != nil {
		return nil
	}
	return sealed
}

// keepJoinSecret opens the room secret a send_join answer carries and
// keeps it: the resident this node joined through vouches for it, so it
// replaces one an invite brought.
func (ps *Peers) keepJoinSecret(roomID string, join *rooms.Event, sealed []byte) error {
	pt, err := ps.kem.Open(joinInfo(roomID, join.ID()), sealed)
	if err != nil {
		return err
	}
	var sh sharedSecret
	if err := json.Unmarshal(pt, &sh); err != nil {
		return err
	}
	s, err := sh.parse(roomID)
	if err != nil {
		return err
	}
	return ps.replaceSecret(s)
}

// joinContent is the content of this node's join events: the membership
// and the node's KEM key, and nothing else in clear (a display name goes
// in a later, encrypted event) but what the auth rules read.
func (ps *Peers) joinContent(given json.RawMessage) (json.RawMessage, error) {
	c := map[string]any{"membership": "join", e2ee.KEMField: ps.kem.Doc()}
	var in map[string]json.RawMessage
	if json.Unmarshal(given, &in) == nil {
		if v, ok := in["join_authorised_via_users_server"]; ok {
			c["join_authorised_via_users_server"] = v
		}
	}
	return rooms.MarshalCanonical(c)
}

// SealInvite makes the body of an invite request from the server inviter
// to the node of the server invitee, whose KEM key is pub, proposing
// secret as the room's secret: what Invite sends. For tests and tools.
func SealInvite(pub e2ee.PublicKey, inviter, invitee string, req InviteReq, secret [32]byte) ([]byte, error) {
	sh := sharedSecret{Key: base64.RawURLEncoding.EncodeToString(secret[:])}
	pt, err := json.Marshal(InvitePayload{InviteReq: req, Secret: sh})
	if err != nil {
		return nil, err
	}
	return e2ee.Seal(pub, inviteInfo(inviter, invitee), pt)
}
