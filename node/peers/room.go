package peers

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-p2p/parley/node/dag"
	"github.com/parley-p2p/parley/rooms"
)

// room is a room as the node follows it: the engine's room (its head and
// lock) plus what following it over the network takes.
type Room struct {
	*dag.Room

	LinkMu sync.Mutex // serialises counting link uses and making links; never held across a request
	// linkPending counts, per link, the uses under way (invites sent,
	// not yet answered). Guarded by linkMu.
	linkPending map[string]int
	finding     atomic.Bool // a DHT rendezvous lookup is under way

	// follow is set while the node follows the room (see follow.go).
	followMu sync.Mutex
	follow   *following

	gate *roomGate     // who may speak, and take part in the room's topics
	rot  rotationWatch // departures seen, for rotating the room secret
	// readvertise wakes the room's DHT advertisement when the room
	// moves to a new epoch (so a new rendezvous key).
	readvertise chan struct{}
	inbox       *inbox       // events from pubsub, handled by the room's worker
	held        atomic.Int64 // events the worker holds for their ancestors
	// refetching is set while the events of a failed write are being
	// fetched again from the room's members.
	refetching atomic.Bool
	stopOnce   sync.Once
	done       chan struct{}
}

type gossipMsg struct {
	from peer.ID
	ev   *rooms.Event
}

func (r *Room) stop() { r.stopOnce.Do(func() { close(r.done) }) }

// Room returns the room if this node holds it.
func (ps *Peers) Room(id string) *Room {
	ps.mu.Lock()
	r := ps.rooms[id]
	ps.mu.Unlock()
	if r != nil {
		return r
	}
	if dr := ps.dag.Room(id); dr != nil {
		return ps.wrapRoom(dr)
	}
	return nil
}

// wrapRoom returns the node's room for an engine room, making it the
// first time.
func (ps *Peers) wrapRoom(dr *dag.Room) *Room {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if r, ok := ps.rooms[dr.ID]; ok {
		return r
	}
	r := newRoom(dr)
	ps.rooms[dr.ID] = r
	return r
}

func newRoom(dr *dag.Room) *Room {
	return &Room{Room: dr, gate: newRoomGate(), inbox: newInbox(), done: make(chan struct{}), readvertise: make(chan struct{}, 1)}
}

// loadRooms brings every stored room's head into memory and rejoins the
// pubsub topics of those a local user is in.
func (ps *Peers) loadRooms() error {
	loaded, err := ps.dag.Load()
	if err != nil {
		return err
	}
	for _, dr := range loaded {
		r := ps.wrapRoom(dr)
		if !ps.hasLocalMember(r) {
			// Every local user left: keep its history readable, but
			// do not follow it.
			continue
		}
		if err := ps.startFollowing(r); err != nil {
			return err
		}
	}
	return nil
}

// activate registers a room the node just came to hold (by creating
// or joining it) and follows it. It returns the room as registered: r,
// or the one registered under its ID before.
func (ps *Peers) activate(r *Room) (*Room, error) {
	dr, _ := ps.dag.Add(r.Room)
	ps.mu.Lock()
	if old, ok := ps.rooms[dr.ID]; ok {
		r = old
	} else {
		if dr != r.Room {
			r = newRoom(dr)
		}
		ps.rooms[dr.ID] = r
	}
	ps.mu.Unlock()
	return r, ps.startFollowing(r)
}

// Activate registers and follows a room the engine just created.
func (ps *Peers) Activate(dr *dag.Room) (*Room, error) {
	return ps.activate(newRoom(dr))
}

// ConnectSoon dials the room's servers in the background.
func (ps *Peers) ConnectSoon(r *Room) {
	ps.goBackground(func(ctx context.Context) { ps.connectRoomPeers(ctx, r) })
}

// Enqueue queues an event for the room's worker as if it had come by
// gossip from the peer from. The event must be verified.
func (ps *Peers) Enqueue(r *Room, from peer.ID, ev *rooms.Event) {
	r.inbox.push(gossipMsg{from: from, ev: ev})
}

// Held is how many events the room's worker holds for their ancestors.
func (r *Room) Held() int64 { return r.held.Load() }
