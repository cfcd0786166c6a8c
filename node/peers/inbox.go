package peers

import (
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Bounds of a room's inbox. A burst of a busy room (a 200-member room
// where everyone answers at once, or a member's backlog after a
// partition) fits; beyond it events are dropped, and catch-up fetches
// them from the room's members later. No one peer may take more than a
// quarter of it, so a flooding member cannot crowd out the others.
const (
	maxInbox        = 4096
	maxInboxPerPeer = maxInbox / 4
)

// inbox is a room's queue of gossiped events for its worker. Unlike a
// buffered channel sized for bursts, it takes memory only for what it
// holds: a node with a thousand quiet rooms keeps a thousand empty
// slices, not a thousand 8,192-slot buffers.
type inbox struct {
	mu     sync.Mutex
	items  []gossipMsg
	byPeer map[peer.ID]int
	ready  chan struct{} // holds a token while items is not empty
}

func newInbox() *inbox { return &inbox{ready: make(chan struct{}, 1)} }

// push queues m, unless the inbox, or m's peer's share of it, is full.
func (q *inbox) push(m gossipMsg) bool {
	q.mu.Lock()
	if len(q.items) >= maxInbox || q.byPeer[m.from] >= maxInboxPerPeer {
		q.mu.Unlock()
		return false
	}
	if q.byPeer == nil {
		q.byPeer = make(map[peer.ID]int)
	}
	q.byPeer[m.from]++
	q.items = append(q.items, m)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
	return true
}

// take returns everything queued, oldest first, and empties the inbox.
func (q *inbox) take() []gossipMsg {
	q.mu.Lock()
	defer q.mu.Unlock()
	items := q.items
	q.items, q.byPeer = nil, nil
	return items
}

// len is the number of events queued.
func (q *inbox) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items)
}
