package peers

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-p2p/parley/rooms"
)

// Ephemeral data (typing, presence, public read receipts) is not in the
// room's DAG: it goes from a node to each member node of a room as a
// sealed room request (MethodEphemeral), not as gossip. A request is
// authenticated by the connection (libp2p knows which node asks), so the
// receiver checks at once that every user it names belongs to the asking
// node's server, without a signature scheme of its own; it is sealed
// under the room secret, so only members read it; and it goes only to
// the connected nodes with a user joined, so nothing reaches a node that
// is not a member or is offline (ephemeral data is not worth keeping for
// later). The cost is one stream per member node per change, which the
// coalescing sender below bounds: only the latest value of each key is
// sent.
//
// Each kind (EphemeralReq.Type) has a handler, registered with
// HandleEphemeral by the part of the node that keeps that data. The
// handler validates the content (who it names, sizes) and keeps at most
// what its room's members can account for. Read receipts use Key for the
// receipting user and thread, so that a user's latest receipt replaces
// one not yet sent.

// HandleEphemeral registers the handler of one kind of ephemeral data.
// Call it before Start.
func (ps *Peers) HandleEphemeral(typ string, h EphemeralHandler) {
	ps.eph.mu.Lock()
	defer ps.eph.mu.Unlock()
	if ps.eph.handlers == nil {
		ps.eph.handlers = map[string]EphemeralHandler{}
	}
	ps.eph.handlers[typ] = h
}

// EphemeralHandler takes ephemeral data a member node sent: server is the
// sending node's (authenticated), and a user of that server is joined to
// roomID. It returns an error for content it refuses (named to the
// sender), having kept none of it.
type EphemeralHandler func(server, roomID string, content json.RawMessage) error

// ephemeralRate and ephemeralBurst bound the ephemeral requests a server
// may send (a token bucket per server, across rooms): typing changes at
// most a few times a second per user.
const (
	ephemeralRate  = 50.0 // per second
	ephemeralBurst = 100.0
	// maxEphemeralServers bounds the token buckets kept; beyond it the
	// oldest half is dropped (a dropped server starts a fresh bucket).
	maxEphemeralServers = 4096
	// ephemeralSendTimeout bounds one ephemeral request: a member that
	// does not answer in time misses it, and the next change.
	ephemeralSendTimeout = 5 * time.Second
	// maxEphemeralPending bounds the keys waiting to be sent.
	maxEphemeralPending = 4096
)

// ephemeral is the node's ephemeral channel: handlers, the senders'
// buckets, and the sends waiting for the sender.
type ephemeral struct {
	mu       sync.Mutex
	handlers map[string]EphemeralHandler
	buckets  map[string]*bucket
	pending  map[string]ephemeralSend // by room, type and key: the latest wins
	order    []string                 // pending keys in arrival order
	kick     chan struct{}
}

type bucket struct {
	tokens float64
	last   time.Time
}

type ephemeralSend struct {
	req     EphemeralReq
	servers []string
}

// allow takes a token from the server's bucket.
func (e *ephemeral) allow(server string, now time.Time) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.buckets == nil {
		e.buckets = map[string]*bucket{}
	}
	b, ok := e.buckets[server]
	if !ok {
		if len(e.buckets) >= maxEphemeralServers {
			n := 0
			for s := range e.buckets {
				if n >= maxEphemeralServers/2 {
					break
				}
				delete(e.buckets, s)
				n++
			}
		}
		b = &bucket{tokens: ephemeralBurst, last: now}
		e.buckets[server] = b
	}
	b.tokens = min(ephemeralBurst, b.tokens+now.Sub(b.last).Seconds()*ephemeralRate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// onEphemeral serves MethodEphemeral (it comes sealed: handleSealed has
// checked the room is the one its secret names).
func (ps *Peers) onEphemeral(server string, body []byte) (any, error) {
	var req EphemeralReq
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	if len(req.Content) > MaxEphemeralBytes {
		return nil, remoteErr("M_TOO_LARGE", "ephemeral content of %d bytes exceeds %d", len(req.Content), MaxEphemeralBytes)
	}
	r := ps.Room(req.RoomID)
	if r == nil {
		return nil, remoteErr("M_NOT_FOUND", "room %s is not on this node", req.RoomID)
	}
	if !ps.serverHas(r.State(), server, func(m string) bool { return m == "join" }) {
		return nil, remoteErr("M_FORBIDDEN", "server has no user joined to %s", req.RoomID)
	}
	ps.eph.mu.Lock()
	h := ps.eph.handlers[req.Type]
	ps.eph.mu.Unlock()
	if h == nil {
		return nil, remoteErr("M_UNRECOGNIZED", "unknown ephemeral type %q", req.Type)
	}
	if !ps.eph.allow(server, time.Now()) {
		return nil, remoteErr("M_LIMIT_EXCEEDED", "too many ephemeral requests")
	}
	if err := h(server, req.RoomID, req.Content); err != nil {
		return nil, remoteErr("M_INVALID_PARAM", "%v", err)
	}
	return struct{}{}, nil
}

// SendEphemeral queues ephemeral data for the connected member nodes of
// a room: servers, or (nil) every server with a user joined. key tells
// what a later send replaces: of the sends of one room, type and key
// still waiting, only the latest goes. Best-effort: a node offline or
// not answering misses it.
func (ps *Peers) SendEphemeral(roomID, typ, key string, content json.RawMessage, servers []string) {
	k := roomID + "\x00" + typ + "\x00" + key
	e := &ps.eph
	e.mu.Lock()
	if e.pending == nil {
		e.pending = map[string]ephemeralSend{}
	}
	if _, ok := e.pending[k]; !ok {
		if len(e.pending) >= maxEphemeralPending {
			e.mu.Unlock()
			ps.log.Warn("ephemeral queue full; dropped", "room", roomID, "type", typ)
			return
		}
		e.order = append(e.order, k)
	}
	e.pending[k] = ephemeralSend{req: EphemeralReq{RoomID: roomID, Type: typ, Content: content}, servers: servers}
	e.mu.Unlock()
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// sendEphemeralLoop sends the queued ephemeral data until the node
// closes: each round takes every waiting send and sends them side by
// side, so that two values of one key are never on the wire at once
// (which could arrive out of order).
func (ps *Peers) sendEphemeralLoop(ctx context.Context) {
	e := &ps.eph
	for {
		select {
		case <-ctx.Done():
			return
		case <-e.kick:
		}
		e.mu.Lock()
		var round []ephemeralSend
		for _, k := range e.order {
			round = append(round, e.pending[k])
		}
		e.pending, e.order = nil, nil
		e.mu.Unlock()
		var wg sync.WaitGroup
		for _, s := range round {
			for _, p := range ps.ephemeralTargets(s) {
				wg.Add(1)
				go func() {
					defer wg.Done()
					rctx, cancel := context.WithTimeout(ctx, ephemeralSendTimeout)
					defer cancel()
					var resp struct{}
					if err := ps.request(rctx, p, MethodEphemeral, s.req, &resp); err != nil {
						ps.log.Debug("ephemeral send", "room", s.req.RoomID, "type", s.req.Type, "peer", shortPeer(p), "err", err)
					}
				}()
			}
		}
		wg.Wait()
	}
}

// ephemeralTargets are the connected nodes a send goes to: of the servers
// named (or all), those with a user joined to the room now.
func (ps *Peers) ephemeralTargets(s ephemeralSend) []peer.ID {
	r := ps.Room(s.req.RoomID)
	if r == nil || ps.host == nil {
		return nil
	}
	connected := ps.host.ConnectedPeers()
	var out []peer.ID
	for _, server := range ps.RoomServers(r) {
		if s.servers != nil && !slices.Contains(s.servers, server) {
			continue
		}
		if p, err := peerOf(server); err == nil && slices.Contains(connected, p) {
			out = append(out, p)
		}
	}
	return out
}

// JoinedServers lists the other servers with a user joined to the room
// (none for a room not on this node).
func (ps *Peers) JoinedServers(roomID string) []string {
	r := ps.Room(roomID)
	if r == nil {
		return nil
	}
	return ps.RoomServers(r)
}

// Joined reports whether the user is joined to the room, as this node
// sees it.
func (ps *Peers) Joined(roomID, user string) bool {
	r := ps.Room(roomID)
	return r != nil && ps.Membership(r, user) == "join"
}

// OfServer reports whether the user ID names a user of server.
func OfServer(user, server string) bool {
	s, err := rooms.ServerOf(user)
	return err == nil && s == server
}

// ConnectedTo reports whether the node has a connection to the server's
// node (ephemeral data goes only to those).
func (ps *Peers) ConnectedTo(server string) bool {
	if ps.host == nil {
		return false // a node without a network (tests of the client API)
	}
	p, err := peerOf(server)
	return err == nil && slices.Contains(ps.host.ConnectedPeers(), p)
}
