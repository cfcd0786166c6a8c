package p2p

import (
	"errors"
	"strings"
	"sync"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"
)

// GossipSub remembers, for every topic any peer announces, which peers are
// in it, whether or not we are: a stranger announcing 100,000 made-up
// topics made us hold 48 MiB. subFilter keeps every announcement for rooms
// we are in, and only a few for other rooms (knowing who is in a room
// before joining it spares a wait after joining).
const (
	// maxOtherTopicsPerPeer bounds the topics we are not in that we track
	// for one peer, until it disconnects.
	maxOtherTopicsPerPeer = 32
	// maxOtherTopics bounds them for all peers together.
	maxOtherTopics = 4096
	// maxSubsPerRPC: an RPC announcing more is dropped whole. An honest
	// peer announces its rooms, a few hundred at most.
	maxSubsPerRPC = 1024
	// maxTopicLen: the prefix and a room ID (at most 255 bytes in Matrix).
	maxTopicLen = len(RoomTopicPrefix) + 255
)

var errTooManySubs = errors.New("p2p: too many subscriptions in one RPC")

type subFilter struct {
	// mu is never held while calling pubsub: the filter runs on pubsub's
	// event loop.
	mu     sync.Mutex
	joined map[string]bool
	others map[peer.ID]map[string]struct{}
	total  int // entries in others
}

var _ pubsub.SubscriptionFilter = (*subFilter)(nil)

func newSubFilter() *subFilter {
	return &subFilter{joined: make(map[string]bool), others: make(map[peer.ID]map[string]struct{})}
}

// CanSubscribe accepts room topics only.
func (f *subFilter) CanSubscribe(topic string) bool {
	return strings.HasPrefix(topic, RoomTopicPrefix) && len(topic) > len(RoomTopicPrefix) && len(topic) <= maxTopicLen
}

// FilterIncomingSubscriptions keeps a peer's announcements for rooms we
// are in, and for others while the peer's and the node's allowances last.
func (f *subFilter) FilterIncomingSubscriptions(p peer.ID, subs []*pb.RPC_SubOpts) ([]*pb.RPC_SubOpts, error) {
	if len(subs) > maxSubsPerRPC {
		return nil, errTooManySubs
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	out := subs[:0:0]
	for _, s := range subs {
		topic := s.GetTopicid()
		if !f.CanSubscribe(topic) {
			continue
		}
		mine := f.others[p]
		if !s.GetSubscribe() {
			if _, ok := mine[topic]; ok {
				delete(mine, topic)
				f.total--
			}
			out = append(out, s)
			continue
		}
		if f.joined[topic] {
			out = append(out, s)
			continue
		}
		if _, ok := mine[topic]; ok {
			out = append(out, s)
			continue
		}
		if len(mine) >= maxOtherTopicsPerPeer || f.total >= maxOtherTopics {
			continue
		}
		if mine == nil {
			mine = make(map[string]struct{})
			f.others[p] = mine
		}
		mine[topic] = struct{}{}
		f.total++
		out = append(out, s)
	}
	return out, nil
}

// join and leave keep track of the rooms we are in.
func (f *subFilter) join(topic string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.joined[topic] = true
}

func (f *subFilter) leave(topic string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.joined, topic)
}

// isJoined reports whether we are in topic.
func (f *subFilter) isJoined(topic string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.joined[topic]
}

// forget drops a disconnected peer's allowance (pubsub forgets its topics).
func (f *subFilter) forget(p peer.ID) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.total -= len(f.others[p])
	delete(f.others, p)
}

// otherTopics returns how many topics we are not in are tracked.
func (f *subFilter) otherTopics() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.total
}
