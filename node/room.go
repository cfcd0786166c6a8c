package node

import (
	"sync"
	"sync/atomic"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-p2p/parley/node/dag"
	"github.com/parley-p2p/parley/rooms"
)

// room is a room as the node follows it: the engine's room (its head and
// lock) plus what following it over the network takes.
type room struct {
	*dag.Room

	linkMu sync.Mutex // serialises counting link uses and making links; never held across a request
	// linkPending counts, per link, the uses under way (invites sent,
	// not yet answered). Guarded by linkMu.
	linkPending map[string]int
	finding     atomic.Bool // a DHT rendezvous lookup is under way

	// follow is set while the node follows the room (see follow.go).
	followMu sync.Mutex
	follow   *following

	inbox    chan gossipMsg // events from pubsub, handled by the room's worker
	held     atomic.Int64   // events the worker holds for their ancestors
	stopOnce sync.Once
	done     chan struct{}
}

type gossipMsg struct {
	from peer.ID
	ev   *rooms.Event
}

func (r *room) stop() { r.stopOnce.Do(func() { close(r.done) }) }

// getRoom returns the room if this node holds it.
func (n *Node) getRoom(id string) *room {
	n.mu.Lock()
	r := n.rooms[id]
	n.mu.Unlock()
	if r != nil {
		return r
	}
	if dr := n.dag.Room(id); dr != nil {
		return n.wrapRoom(dr)
	}
	return nil
}

// wrapRoom returns the node's room for an engine room, making it the
// first time.
func (n *Node) wrapRoom(dr *dag.Room) *room {
	n.mu.Lock()
	defer n.mu.Unlock()
	if r, ok := n.rooms[dr.ID]; ok {
		return r
	}
	r := newRoom(dr)
	n.rooms[dr.ID] = r
	return r
}

func newRoom(dr *dag.Room) *room {
	return &room{Room: dr, inbox: make(chan gossipMsg, 8192), done: make(chan struct{})}
}

// loadRooms brings every stored room's head into memory and rejoins the
// pubsub topics of those a local user is in.
func (n *Node) loadRooms() error {
	loaded, err := n.dag.Load()
	if err != nil {
		return err
	}
	for _, dr := range loaded {
		r := n.wrapRoom(dr)
		if !n.hasLocalMember(r) {
			// Every local user left: keep its history readable, but
			// do not follow it.
			continue
		}
		if err := n.startFollowing(r); err != nil {
			return err
		}
	}
	return nil
}

// activateRoom registers a room the node just came to hold (by creating
// or joining it) and follows it. It returns the room as registered: r,
// or the one registered under its ID before.
func (n *Node) activateRoom(r *room) (*room, error) {
	dr, _ := n.dag.Add(r.Room)
	n.mu.Lock()
	if old, ok := n.rooms[dr.ID]; ok {
		r = old
	} else {
		if dr != r.Room {
			r = newRoom(dr)
		}
		n.rooms[dr.ID] = r
	}
	n.mu.Unlock()
	return r, n.startFollowing(r)
}
