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
	// maxTopicLen: the prefix and an opaque name (peers derives 32
	// characters).
	maxTopicLen = len(RoomTopicPrefix) + 64
	// maxRefused bounds the (peer, topic) subscriptions to rooms we are in
	// that were refused and are remembered, so that the peer can be asked
	// to announce them again once it is allowed (see rehello).
	maxRefused = 4096
)

var errTooManySubs = errors.New("p2p: too many subscriptions in one RPC")

// For the topics of rooms we are in, it keeps a peer's subscription only if
// the room's members filter (SetRoomMembers) allows the peer: flood
// publishing sends our messages to every subscriber pubsub keeps, whatever
// pubsub's peer filter says, so a subscription dropped here is the only
// stock way to keep a room's messages from a stranger that learnt a topic's
// name.
type subFilter struct {
	// mu is never held while calling pubsub: the filter runs on pubsub's
	// event loop. Nor is anything called under it but the members
	// filters, which must not call p2p.
	mu      sync.Mutex
	joined  map[string]string // topic -> room
	members map[string]func(peer.ID) bool
	others  map[peer.ID]map[string]struct{}
	total   int                           // entries in others
	refused map[peer.ID]map[string]string // peer -> topic -> room, refused subscriptions
	nRefuse int
	wake    chan struct{} // the members of a room changed
	// announced holds the subscriptions to rooms we are in that each
	// peer announced and we kept, so that paths.go can tell when pubsub
	// has forgotten them (resync.go). Bounded by the connected peers
	// times the topics we are in: entries go when the peer unsubscribes
	// or disconnects, or we leave the topic.
	announced map[peer.ID]map[string]struct{}
}

var _ pubsub.SubscriptionFilter = (*subFilter)(nil)

func newSubFilter() *subFilter {
	return &subFilter{
		joined:    make(map[string]string),
		members:   make(map[string]func(peer.ID) bool),
		others:    make(map[peer.ID]map[string]struct{}),
		refused:   make(map[peer.ID]map[string]string),
		wake:      make(chan struct{}, 1),
		announced: make(map[peer.ID]map[string]struct{}),
	}
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
			f.unannounceLocked(p, topic)
			if _, ok := mine[topic]; ok {
				delete(mine, topic)
				f.total--
			}
			out = append(out, s)
			continue
		}
		if room, ok := f.joined[topic]; ok {
			if f.allowedLocked(room, p) {
				out = append(out, s)
				f.announceLocked(p, topic)
			} else {
				f.refuseLocked(p, topic, room)
			}
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

// join and leave keep track of the topics of the rooms we are in.
func (f *subFilter) join(topic, room string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.joined[topic] = room
}

func (f *subFilter) leave(topic string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.joined, topic)
	for p := range f.announced {
		f.unannounceLocked(p, topic)
	}
}

// isJoined reports whether we are in topic.
func (f *subFilter) isJoined(topic string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.joined[topic]
	return ok
}

// allowed reports whether the room's members filter allows the peer. A
// room without one allows everyone.
func (f *subFilter) allowed(room string, p peer.ID) bool {
	f.mu.Lock()
	allow := f.members[room]
	f.mu.Unlock()
	return allow == nil || allow(p)
}

func (f *subFilter) allowedLocked(room string, p peer.ID) bool {
	allow := f.members[room]
	return allow == nil || allow(p)
}

// peerAllowed is pubsub's peer filter: on a topic of a room we are in,
// only allowed peers are meshed, gossiped to or served.
func (f *subFilter) peerAllowed(p peer.ID, topic string) bool {
	f.mu.Lock()
	room, ok := f.joined[topic]
	allow := f.members[room]
	f.mu.Unlock()
	return !ok || allow == nil || allow(p)
}

// setMembers sets the room's members filter (nil allows everyone) and
// wakes rehello.
func (f *subFilter) setMembers(room string, allow func(peer.ID) bool) {
	f.mu.Lock()
	if allow == nil {
		delete(f.members, room)
	} else {
		f.members[room] = allow
	}
	f.mu.Unlock()
	f.changed()
}

// changed wakes rehello: some room's members changed.
func (f *subFilter) changed() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

func (f *subFilter) refuseLocked(p peer.ID, topic, room string) {
	mine := f.refused[p]
	if _, ok := mine[topic]; ok {
		return
	}
	if f.nRefuse >= maxRefused || len(mine) >= maxOtherTopicsPerPeer {
		return
	}
	if mine == nil {
		mine = make(map[string]string)
		f.refused[p] = mine
	}
	mine[topic] = room
	f.nRefuse++
}

// nowAllowed returns the peers with a refused subscription that their
// room's members filter now allows, and forgets those subscriptions.
func (f *subFilter) nowAllowed() []peer.ID {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []peer.ID
	for p, topics := range f.refused {
		for topic, room := range topics {
			if _, joined := f.joined[topic]; !joined {
				delete(topics, topic)
				f.nRefuse--
				continue
			}
			if f.allowedLocked(room, p) {
				out = append(out, p)
				f.nRefuse -= len(topics)
				delete(f.refused, p)
				break
			}
		}
		if len(topics) == 0 {
			delete(f.refused, p)
		}
	}
	return out
}

// forget drops a disconnected peer's allowance (pubsub forgets its topics).
func (f *subFilter) forget(p peer.ID) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.total -= len(f.others[p])
	delete(f.others, p)
	f.nRefuse -= len(f.refused[p])
	delete(f.refused, p)
	delete(f.announced, p)
}

func (f *subFilter) announceLocked(p peer.ID, topic string) {
	mine := f.announced[p]
	if mine == nil {
		mine = make(map[string]struct{})
		f.announced[p] = mine
	}
	mine[topic] = struct{}{}
}

func (f *subFilter) unannounceLocked(p peer.ID, topic string) {
	if mine, ok := f.announced[p]; ok {
		delete(mine, topic)
		if len(mine) == 0 {
			delete(f.announced, p)
		}
	}
}

// announcedTopics returns, for each peer, the topics of rooms we are in
// that it announced and that its room's members filter still allows.
func (f *subFilter) announcedTopics() map[peer.ID][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[peer.ID][]string, len(f.announced))
	add := func(p peer.ID, topics map[string]struct{}) {
		for topic := range topics {
			if room, ok := f.joined[topic]; ok && f.allowedLocked(room, p) {
				out[p] = append(out[p], topic)
			}
		}
	}
	for p, topics := range f.announced {
		add(p, topics)
	}
	// Announced before we joined: kept under others.
	for p, topics := range f.others {
		add(p, topics)
	}
	return out
}

// otherTopics returns how many topics we are not in are tracked.
func (f *subFilter) otherTopics() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.total
}
