package peers

import (
	"hash/fnv"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/libp2p/go-libp2p/core/peer"
)

// The room peers are the nodes of the servers joined to the rooms this
// node follows: the peers its relay serves (p2p.Config.Members, the relay
// ACL) and reserves with (MemberPeers). The ACL asks on libp2p's
// goroutines, for every reservation and circuit, so it reads a snapshot
// through an atomic pointer and never takes a lock the room workers hold;
// the snapshot is rebuilt by maintainPeers when a followed room's state
// or the set of followed rooms changed, so at most once a tick (1 s).

// roomPeerSet is one snapshot of the room peers.
type roomPeerSet struct {
	set  map[peer.ID]struct{}
	list []peer.ID // sorted
	// key identifies the followed rooms' states the set was built from
	// (a hash of their IDs and state IDs).
	key uint64
}

// roomPeers holds the snapshot; mu serialises rebuilds only.
type roomPeers struct {
	mu  sync.Mutex
	cur atomic.Pointer[roomPeerSet]
}

// IsRoomPeer reports whether p is the node of a server joined to a room
// this node follows (this node's own peer is not). Lock-free: safe on
// libp2p's goroutines.
func (ps *Peers) IsRoomPeer(p peer.ID) bool {
	s := ps.roomPeers.cur.Load()
	if s == nil {
		return false
	}
	_, ok := s.set[p]
	return ok
}

// RoomPeers lists the room peers (see IsRoomPeer), sorted.
func (ps *Peers) RoomPeers() []peer.ID {
	if s := ps.roomPeers.cur.Load(); s != nil {
		return slices.Clone(s.list)
	}
	return nil
}

// refreshRoomPeers rebuilds the room peers if a followed room's state, or
// which rooms are followed, changed since the last build.
func (ps *Peers) refreshRoomPeers() {
	ps.roomPeers.mu.Lock()
	defer ps.roomPeers.mu.Unlock()
	rs := ps.followedRooms()
	slices.SortFunc(rs, func(x, y *Room) int { return strings.Compare(x.ID, y.ID) })
	h := fnv.New64a()
	for _, r := range rs {
		h.Write([]byte(r.ID))
		h.Write([]byte{0})
		h.Write([]byte(r.Head().StateID))
		h.Write([]byte{0})
	}
	key := h.Sum64()
	old := ps.roomPeers.cur.Load()
	if old != nil && old.key == key {
		return
	}
	next := &roomPeerSet{set: make(map[peer.ID]struct{}), key: key}
	self := ps.host.ID()
	for _, r := range rs {
		for _, s := range ps.RoomServers(r) {
			p, err := peerOf(s)
			if err != nil || p == self {
				continue
			}
			if _, dup := next.set[p]; !dup {
				next.set[p] = struct{}{}
				next.list = append(next.list, p)
			}
		}
	}
	slices.Sort(next.list)
	// A peer that became a room peer while connected: note where it is
	// reached (peeraddrs.go), as onPeerUp does for one that connects.
	connected := ps.host.ConnectedPeers()
	for _, p := range next.list {
		if old != nil {
			if _, was := old.set[p]; was {
				continue
			}
		}
		if slices.Contains(connected, p) {
			ps.notePeerAddrs(p)
		}
	}
	ps.roomPeers.cur.Store(next)
}
