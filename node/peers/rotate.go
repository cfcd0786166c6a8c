package peers

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-p2p/parley/node/dag"
	"github.com/parley-p2p/parley/node/e2ee"
	"github.com/parley-p2p/parley/node/store"
)

// The room secret rotates when a server leaves the room's set of servers
// with a user joined or invited (a leave, kick, ban, or a withdrawn or
// rejected invite): its node knows the secret, so it could still follow
// the room's topics and rendezvous. The rotator is the remaining server
// with a user joined whose name sorts first, so that members agree on it
// without talking. It makes the next epoch's secret, offers it to every
// other joined server's node sealed to that node's KEM key
// (MethodRoomSecret, sent under the previous epoch's request key), then
// moves to the new epoch's topics, listening on the previous epoch's for
// secretGrace. A member that missed the offer learns of the new epoch at
// its next catch-up (extremities answers carry the epoch) and asks for it.
// Invited servers are not offered it: their send_join answer brings it.

func secretInfo(roomID string, epoch uint32, recipient string) []byte {
	return e2ee.Info("parley/secret/v1", roomID, strconv.FormatUint(uint64(epoch), 10), recipient)
}

// rotationWatch is what checkRotations knows of a room: the state it last
// looked at, and the servers that had departed by then (a user's
// membership there, none joined, invited or knocking).
type rotationWatch struct {
	rotating sync.Mutex // one rotation of the room at a time
	mu       sync.Mutex
	stateID  string
	departed map[string]bool
}

// watchRotation starts watching a room for departures from its current
// state (when the node starts following it).
func (ps *Peers) watchRotation(r *Room) {
	h := r.Head()
	r.rot.mu.Lock()
	defer r.rot.mu.Unlock()
	if r.rot.departed == nil {
		r.rot.stateID, r.rot.departed = h.StateID, ps.departedServers(h.State)
	}
}

// departedServers lists the servers with a membership in a state and no
// user joined, invited or knocking.
func (ps *Peers) departedServers(state store.StateMap) map[string]bool {
	speaking := ps.speakingServers(state)
	out := make(map[string]bool)
	for s := range dag.MemberEvents(state) {
		if !speaking[s] {
			out[s] = true
		}
	}
	return out
}

// checkRotations rotates the secret of the followed rooms a server left
// since they were last looked at, where this node is the rotator.
func (ps *Peers) checkRotations() {
	for _, r := range ps.followedRooms() {
		ps.watchRotation(r)
		h := r.Head()
		r.rot.mu.Lock()
		if r.rot.stateID == h.StateID {
			r.rot.mu.Unlock()
			continue
		}
		departed := ps.departedServers(h.State)
		fresh := false
		for s := range departed {
			if !r.rot.departed[s] {
				fresh = true
			}
		}
		r.rot.stateID, r.rot.departed = h.StateID, departed
		r.rot.mu.Unlock()
		if fresh && ps.isRotator(h.State) {
			ps.goBackground(func(ctx context.Context) { ps.rotate(ctx, r) })
		}
	}
}

// joinedServers lists the servers with a user joined in a state, sorted.
func (ps *Peers) joinedServers(state store.StateMap) []string {
	var out []string
	for s, id := range dag.MemberEvents(state) {
		if slices.Contains(out, s) {
			continue
		}
		if m, ok := ps.dag.MembershipOf(id); ok && m == "join" {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out
}

func (ps *Peers) isRotator(state store.StateMap) bool {
	joined := ps.joinedServers(state)
	return len(joined) > 0 && joined[0] == ps.serverName
}

// rotate makes the room's next secret and hands it to the other joined
// servers' nodes.
func (ps *Peers) rotate(ctx context.Context, r *Room) {
	r.rot.rotating.Lock()
	defer r.rot.rotating.Unlock()
	cur, ok := ps.currentSecret(r.ID)
	if !ok {
		return
	}
	next := store.RoomSecret{RoomID: r.ID, Epoch: cur.epoch + 1}
	if _, err := rand.Read(next.Secret[:]); err != nil {
		return
	}
	if err := ps.keepSecret(next); err != nil {
		ps.log.Warn("rotating the room secret", "room", r.ID, "err", err)
		return
	}
	rs := newRoomSecret(next)
	var wg sync.WaitGroup
	for _, s := range ps.joinedServers(r.State()) {
		if s == ps.serverName {
			continue
		}
		p, err := peerOf(s)
		if err != nil {
			continue
		}
		wg.Go(func() {
			sealed, err := ps.sealSecretFor(ctx, r.ID, rs, s)
			if err == nil {
				var resp SecretResp
				err = ps.requestSealed(ctx, p, cur, MethodRoomSecret, SecretReq{RoomID: r.ID, Have: rs.epoch, Offer: &SecretOffer{Epoch: rs.epoch, Sealed: sealed}}, &resp)
			}
			if err != nil {
				ps.log.Info("offering the rotated room secret; the member will ask at its next catch-up", "room", r.ID, "server", s[:8], "err", err)
			}
		})
	}
	wg.Wait()
	ps.refreshTopics(r, time.Now())
	r.advertiseSoon()
	ps.log.Info("room secret rotated", "room", r.ID, "epoch", rs.epoch)
}

// sealSecretFor seals a room secret to a server's node.
func (ps *Peers) sealSecretFor(ctx context.Context, roomID string, rs *roomSecret, server string) ([]byte, error) {
	pub, err := ps.fetchKEM(ctx, server)
	if err != nil {
		return nil, err
	}
	pt, err := json.Marshal(rs.shared())
	if err != nil {
		return nil, err
	}
	return e2ee.Seal(pub, secretInfo(roomID, rs.epoch, server), pt)
}

// openSecret opens a room secret sealed to this node for an epoch.
func (ps *Peers) openSecret(roomID string, epoch uint32, sealed []byte) (store.RoomSecret, error) {
	pt, err := ps.kem.Open(secretInfo(roomID, epoch, ps.serverName), sealed)
	if err != nil {
		return store.RoomSecret{}, err
	}
	var sh sharedSecret
	if err := json.Unmarshal(pt, &sh); err != nil {
		return store.RoomSecret{}, err
	}
	if sh.Epoch != epoch {
		return store.RoomSecret{}, errors.New("sealed secret of another epoch")
	}
	return sh.parse(roomID)
}

// onRoomSecret takes a rotated secret a joined member offers (the next
// epoch only: a member cannot make a node skip ahead and fill its store),
// and answers with this node's newer secret, sealed to the requester.
func (ps *Peers) onRoomSecret(ctx context.Context, server string, body []byte) (any, error) {
	var req SecretReq
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	r, err := ps.roomFor(server, req.RoomID)
	if err != nil {
		return nil, err
	}
	if !ps.serverJoined(r, server) {
		return nil, remoteErr("M_FORBIDDEN", "server has no user joined in the room")
	}
	cur, ok := ps.currentSecret(r.ID)
	if o := req.Offer; o != nil && ok && o.Epoch == cur.epoch+1 {
		if s, err := ps.openSecret(r.ID, o.Epoch, o.Sealed); err != nil {
			return nil, remoteErr("M_FORBIDDEN", "the offered secret does not open")
		} else if err := ps.keepSecret(s); err != nil && !errors.Is(err, store.ErrSecretConflict) {
			return nil, err
		}
		from, _ := peerOf(server)
		ps.goBackground(func(ctx context.Context) { ps.switched(ctx, r, from) })
		cur, _ = ps.currentSecret(r.ID)
	}
	if !ok || cur.epoch <= req.Have {
		return SecretResp{}, nil
	}
	sealed, err := ps.sealSecretFor(ctx, r.ID, cur, server)
	if err != nil {
		return nil, remoteErr("M_UNAVAILABLE", "sealing the secret: %v", err)
	}
	return SecretResp{Epoch: cur.epoch, Sealed: sealed}, nil
}

// pullSecret asks a member for the room's newer secret.
func (ps *Peers) pullSecret(ctx context.Context, r *Room, p peer.ID, have uint32) {
	var resp SecretResp
	if err := ps.request(ctx, p, MethodRoomSecret, SecretReq{RoomID: r.ID, Have: have}, &resp); err != nil || len(resp.Sealed) == 0 {
		ps.log.Debug("asking for the room's newer secret", "room", r.ID, "peer", shortPeer(p), "err", err)
		return
	}
	s, err := ps.openSecret(r.ID, resp.Epoch, resp.Sealed)
	if err == nil && resp.Epoch > have {
		err = ps.keepSecret(s)
	}
	if err != nil {
		ps.log.Info("the room's newer secret", "room", r.ID, "peer", shortPeer(p), "err", err)
		return
	}
	ps.switched(ctx, r, p)
}

// switched moves the room to the new epoch's topics, then catches up with
// the member that had it first: what it published on them before this
// node listened there.
func (ps *Peers) switched(ctx context.Context, r *Room, from peer.ID) {
	ps.refreshTopics(r, time.Now())
	r.advertiseSoon()
	for _, delay := range []time.Duration{time.Second, 5 * time.Second} {
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		ps.CatchUp(ctx, r, from)
	}
}

// advertiseSoon has the room advertised again in the DHT now.
func (r *Room) advertiseSoon() {
	select {
	case r.readvertise <- struct{}{}:
	default:
	}
}
