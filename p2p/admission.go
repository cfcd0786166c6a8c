package p2p

import (
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Requests a node answers at once. A request holds up to MaxRequestSize of
// body in memory from its first byte until its answer is written, so these
// caps, taken before the body is read, bound that memory: at most
// maxInflight x 256 KiB (16 MiB) for the whole node and maxInflightPerPeer
// x 256 KiB (4 MiB) for one peer, however many streams the peer opens.
const (
	maxInflight        = 64
	maxInflightPerPeer = 16
	// admitWait is how long a request waits for a free slot before its
	// stream is reset. Honest peers rarely have more than a few requests
	// out at once; a burst waits briefly instead of failing.
	admitWait = 2 * time.Second
	// requestReadTimeout bounds reading a whole request: a stream that
	// trickles its body cannot hold a slot longer than this.
	requestReadTimeout = 10 * time.Second
)

// admission hands out request slots: one semaphore for the node and one
// per peer, the latter dropped when its last user leaves.
type admission struct {
	global chan struct{}

	mu    sync.Mutex
	peers map[peer.ID]*peerSlots
}

type peerSlots struct {
	sem   chan struct{}
	users int // requests holding or waiting for a slot
}

func newAdmission() *admission {
	return &admission{global: make(chan struct{}, maxInflight), peers: make(map[peer.ID]*peerSlots)}
}

// acquire waits up to admitWait for a slot of p's and one of the node's.
// It returns the release func, or false when no slot came free in time.
func (a *admission) acquire(p peer.ID, done <-chan struct{}) (func(), bool) {
	a.mu.Lock()
	ps := a.peers[p]
	if ps == nil {
		ps = &peerSlots{sem: make(chan struct{}, maxInflightPerPeer)}
		a.peers[p] = ps
	}
	ps.users++
	a.mu.Unlock()
	leave := func() {
		a.mu.Lock()
		if ps.users--; ps.users == 0 {
			delete(a.peers, p)
		}
		a.mu.Unlock()
	}

	timer := time.NewTimer(admitWait)
	defer timer.Stop()
	select {
	case ps.sem <- struct{}{}:
	case <-timer.C:
		leave()
		return nil, false
	case <-done:
		leave()
		return nil, false
	}
	select {
	case a.global <- struct{}{}:
	case <-timer.C:
		<-ps.sem
		leave()
		return nil, false
	case <-done:
		<-ps.sem
		leave()
		return nil, false
	}
	return func() {
		<-a.global
		<-ps.sem
		leave()
	}, true
}
