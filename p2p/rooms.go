package p2p

import (
	"context"
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Validator decides what becomes of a room message from another peer. from
// is the peer that delivered it: messages carry no pubsub author or
// signature (the payload must authenticate itself, as room events do), and
// a rejected message counts against the peer that delivered it. Validators run synchronously on the single pubsub
// validation goroutine, in arrival order, so they must be cheap (size, form,
// signature, a look at the room's members) and must not block.
//
// With Accept, the Validator may return what it learnt about the message
// (say, the parsed and verified event): the Receiver gets that value with
// the message, so that nothing is parsed or checked twice. The value is
// dropped with Ignore and Reject. GossipSub validates a message once,
// however many copies arrive, so the value is computed once per message.
type Validator func(ctx context.Context, from peer.ID, data []byte) (Verdict, any)

// Verdict is a Validator's decision.
type Verdict int

const (
	// Accept delivers the message and relays it.
	Accept Verdict = iota
	// Ignore drops the message without relaying it and without holding it
	// against the peer that sent it: for messages that may be honest but
	// that this node cannot use (its view of the room may lag).
	Ignore
	// Reject drops the message and counts against the peer that sent it
	// in GossipSub's peer score (see options.go): for forgeries and
	// malformed messages, which no honest peer relays.
	Reject
)

// Receiver is called for every validated message in a room from another peer
// (never for our own publishes), one call at a time per room. from is the
// peer that delivered it (its author, or a member relaying it): messages are
// not signed by pubsub, since what a room carries is signed by its own
// authors. Each publisher's messages arrive in the order it published them: a message that overtakes an earlier one on the network waits for it up
// to reorderWait (200 ms), after which the earlier one is given up. Delivery is
// best-effort; a given-up message that turns up later is still delivered, late.
//
// validated is exactly what the room's Validator returned with Accept for this
// message. It is nil when the room has no Validator (JoinRoom with v nil) or
// the Validator returned nil. Our own publishes are not validated by us and
// are never handed to the Receiver; were a copy of one to come back (it does
// not: they are filtered out), it would carry nil.
type Receiver func(from peer.ID, data []byte, validated any)

// ErrNotJoined is returned for operations on a room the host has not joined.
var ErrNotJoined = errors.New("p2p: room not joined")

// TopicKey is a topic a room's messages travel on and the key that seals
// them there (envelope.go). Both are opaque to p2p: the caller derives
// them from what only the room's members know, so that neither names the
// room.
type TopicKey struct {
	Topic string
	Key   [32]byte
}

// RoomKeys are the topics of a room: Publish is where our messages go, and
// Listen the other topics we stay subscribed to (the neighbouring period's
// in its grace hour, say). We always listen on Publish too.
type RoomKeys struct {
	Publish TopicKey
	Listen  []TopicKey
}

// topics lists every topic of the keys, Publish first, without repeats.
func (k RoomKeys) topics() []TopicKey {
	out := []TopicKey{k.Publish}
	for _, t := range k.Listen {
		if !slices.ContainsFunc(out, func(o TopicKey) bool { return o.Topic == t.Topic }) {
			out = append(out, t)
		}
	}
	return out
}

// room is one joined room: its topics and the goroutines feeding the
// Receiver and protecting members' connections. The room ID is the
// caller's handle and never goes on the wire.
type room struct {
	id     string
	stream uint64        // our stream number in this room (see order.go)
	seq    atomic.Uint64 // our last publish's sequence number
	order  *orderer      // used by the receive goroutine only
	v      Validator
	in     chan *pubsub.Message // from the topics' pumps to the receive loop
	ctx    context.Context
	cancel context.CancelFunc

	// mu guards topics and publish; the pubsub loop never takes it.
	mu      sync.RWMutex
	topics  map[string]*roomTopic
	publish *roomTopic
}

// roomTopic is one topic of a joined room.
type roomTopic struct {
	name   string
	aead   cipher.AEAD
	topic  *pubsub.Topic
	sub    *pubsub.Subscription
	events *pubsub.TopicEventHandler
	ctx    context.Context
	cancel context.CancelFunc
}

// JoinRoom subscribes to the room's topics. v vets messages from other
// peers before they are delivered or relayed (nil accepts everything); r
// receives them (nil drops them, which still relays). Joining a room
// already joined only sets its keys (SetRoomKeys) and keeps the first v
// and r.
//
// JoinRoom does not wait for the mesh: as soon as a peer's subscription is
// known, Publish reaches it directly (flood publishing). A peer's
// subscription is kept only if the room's members filter allows it
// (SetRoomMembers).
func (h *Host) JoinRoom(roomID string, keys RoomKeys, v Validator, r Receiver) error {
	if roomID == "" {
		return errors.New("p2p: join room: empty room ID")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	switch h.state {
	case stateNew:
		return ErrNotStarted
	case stateClosed:
		return ErrClosed
	}
	if rm, ok := h.rooms[roomID]; ok {
		return h.setKeysLocked(rm, keys)
	}
	rm := &room{id: roomID, stream: uint64(rand.Uint32()) + 1, order: newOrderer(time.Now()), v: v,
		in: make(chan *pubsub.Message, 64), topics: make(map[string]*roomTopic)}
	rm.ctx, rm.cancel = context.WithCancel(h.ctx)
	if err := h.setKeysLocked(rm, keys); err != nil {
		rm.cancel()
		return fmt.Errorf("p2p: join room %s: %w", roomID, err)
	}
	h.rooms[roomID] = rm
	h.goLocked(func() { h.receiveLoop(rm, r) })
	return nil
}

// SetRoomKeys moves a joined room to new topics: it subscribes to those it
// is not on and leaves those no longer listed.
func (h *Host) SetRoomKeys(roomID string, keys RoomKeys) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	rm, ok := h.rooms[roomID]
	if !ok || h.state != stateRunning {
		return fmt.Errorf("p2p: set keys of %s: %w", roomID, ErrNotJoined)
	}
	if err := h.setKeysLocked(rm, keys); err != nil {
		return fmt.Errorf("p2p: set keys of %s: %w", roomID, err)
	}
	return nil
}

// setKeysLocked opens the topics of keys the room is not on and closes
// those it no longer lists. Caller holds h.mu. On error the room keeps
// its previous topics.
func (h *Host) setKeysLocked(rm *room, keys RoomKeys) error {
	want := keys.topics()
	var opened []*roomTopic
	for _, tk := range want {
		if !h.subs.CanSubscribe(tk.Topic) {
			for _, t := range opened {
				h.closeTopic(t)
			}
			return fmt.Errorf("topic %q is not a room topic", tk.Topic)
		}
		rm.mu.RLock()
		_, have := rm.topics[tk.Topic]
		rm.mu.RUnlock()
		if have {
			continue
		}
		t, err := h.openTopic(rm, tk)
		if err != nil {
			for _, t := range opened {
				h.closeTopic(t)
			}
			return err
		}
		opened = append(opened, t)
	}
	rm.mu.Lock()
	for _, t := range opened {
		rm.topics[t.name] = t
	}
	var gone []*roomTopic
	for name, t := range rm.topics {
		if !slices.ContainsFunc(want, func(tk TopicKey) bool { return tk.Topic == name }) {
			gone = append(gone, t)
			delete(rm.topics, name)
		}
	}
	rm.publish = rm.topics[want[0].Topic]
	rm.mu.Unlock()
	for _, t := range gone {
		h.closeTopic(t)
	}
	return nil
}

// openTopic registers the validator, joins the topic, subscribes, and
// starts the goroutines that pump its messages to the room's receive loop
// and protect its peers' connections. Caller holds h.mu. On error nothing
// is left registered.
func (h *Host) openTopic(rm *room, tk TopicKey) (_ *roomTopic, err error) {
	name := tk.Topic
	t := &roomTopic{name: name, aead: newTopicAEAD(&tk.Key)}
	h.subs.join(name, rm.id)
	if err := h.ps.RegisterTopicValidator(name, h.topicValidator(rm, t), pubsub.WithValidatorInline(true)); err != nil {
		h.subs.leave(name)
		return nil, err
	}
	t.ctx, t.cancel = context.WithCancel(rm.ctx)
	defer func() {
		if err != nil {
			h.closeTopic(t)
		}
	}()
	if t.topic, err = h.ps.Join(name); err != nil {
		return nil, err
	}
	if err = t.topic.SetScoreParams(roomScoreParams()); err != nil {
		return nil, err
	}
	self := h.id
	t.sub, err = t.topic.Subscribe(
		pubsub.WithBufferSize(roomBuffer),
		pubsub.WithMessageFilter(func(m *pubsub.Message) bool { return m.ReceivedFrom != self }),
	)
	if err != nil {
		return nil, err
	}
	if t.events, err = t.topic.EventHandler(); err != nil {
		return nil, err
	}
	h.goLocked(func() { h.pump(rm, t) })
	h.goLocked(func() { h.protectLoop(t) })
	return t, nil
}

// closeTopic undoes openTopic; its goroutines stop on their own.
func (h *Host) closeTopic(t *roomTopic) error {
	t.cancel()
	if t.events != nil {
		t.events.Cancel()
	}
	if t.sub != nil {
		t.sub.Cancel()
	}
	var errs []error
	if t.topic != nil {
		if err := t.topic.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := h.ps.UnregisterTopicValidator(t.name); err != nil && t.topic != nil {
		errs = append(errs, err)
	}
	h.subs.leave(t.name)
	return errors.Join(errs...)
}

// pump hands a topic's messages to its room's receive loop.
func (h *Host) pump(rm *room, t *roomTopic) {
	for {
		msg, err := t.sub.Next(t.ctx)
		if err != nil {
			return
		}
		select {
		case rm.in <- msg:
		case <-t.ctx.Done():
			return
		}
	}
}

// LeaveRoom unsubscribes from the room. After it returns no new Receiver call
// starts (one already under way may finish). Leaving a room not joined does
// nothing.
func (h *Host) LeaveRoom(roomID string) error {
	h.mu.Lock()
	rm, ok := h.rooms[roomID]
	delete(h.rooms, roomID)
	h.mu.Unlock()
	if !ok {
		return nil
	}
	return h.closeRoom(rm)
}

func (h *Host) closeRoom(rm *room) error {
	rm.cancel()
	rm.mu.Lock()
	topics := rm.topics
	rm.topics = map[string]*roomTopic{}
	rm.publish = nil
	rm.mu.Unlock()
	var errs []error
	for _, t := range topics {
		errs = append(errs, h.closeTopic(t))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("p2p: leave room %s: %w", rm.id, err)
	}
	return nil
}

// Publish sends data to the room's other members, sealed for the room's
// publish topic. It returns once the message is queued for every peer
// known to be in the room; delivery is best-effort.
func (h *Host) Publish(ctx context.Context, roomID string, data []byte) error {
	if len(data) > MaxMessageSize {
		return fmt.Errorf("p2p: publish to %s: message of %d bytes exceeds %d", roomID, len(data), MaxMessageSize)
	}
	h.mu.Lock()
	rm, ok := h.rooms[roomID]
	state := h.state
	h.mu.Unlock()
	switch {
	case state == stateNew:
		return ErrNotStarted
	case state == stateClosed:
		return ErrClosed
	case !ok:
		return fmt.Errorf("p2p: publish to %s: %w", roomID, ErrNotJoined)
	}
	rm.mu.RLock()
	t := rm.publish
	rm.mu.RUnlock()
	if t == nil {
		return fmt.Errorf("p2p: publish to %s: %w", roomID, ErrNotJoined)
	}
	msg := sealMessage(t.aead, t.name, rm.stream, rm.seq.Add(1), data)
	if err := t.topic.Publish(ctx, msg); err != nil {
		return fmt.Errorf("p2p: publish to %s: %w", roomID, err)
	}
	return nil
}

// RoomPeers returns the connected peers seen subscribed to the joined
// room's topics (nil for a room not joined).
func (h *Host) RoomPeers(roomID string) []peer.ID {
	return h.roomPeers(roomID, func(_ *pubsub.PubSub, t *roomTopic) []peer.ID { return t.topic.ListPeers() })
}

// meshPeers returns the room's peers that we relay messages to (our GossipSub
// mesh for its topics), as opposed to RoomPeers, which includes every member
// we know of.
func (h *Host) meshPeers(roomID string) []peer.ID {
	h.mu.Lock()
	tr := h.tracer
	h.mu.Unlock()
	if tr == nil {
		return nil
	}
	return h.roomPeers(roomID, func(_ *pubsub.PubSub, t *roomTopic) []peer.ID { return tr.meshPeers(t.name) })
}

func (h *Host) roomPeers(roomID string, list func(*pubsub.PubSub, *roomTopic) []peer.ID) []peer.ID {
	h.mu.Lock()
	rm, ok := h.rooms[roomID]
	ps := h.ps
	running := h.state == stateRunning
	h.mu.Unlock()
	if !running || !ok {
		return nil
	}
	rm.mu.RLock()
	topics := make([]*roomTopic, 0, len(rm.topics))
	for _, t := range rm.topics {
		topics = append(topics, t)
	}
	rm.mu.RUnlock()
	var out []peer.ID
	for _, t := range topics {
		for _, p := range list(ps, t) {
			if !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	return out
}

// opened is a room message the validator opened, with what the room's
// Validator made of it.
type opened struct {
	stream, seq uint64
	payload     []byte
	validated   any
}

// topicValidator adapts a Validator to pubsub for one topic of a room. Our
// own publishes are not validated: the caller vouches for what it
// publishes. A message from a peer the room's members filter does not
// allow is ignored unread; one that does not open under the topic's key is
// rejected whatever v says.
func (h *Host) topicValidator(rm *room, t *roomTopic) pubsub.ValidatorEx {
	v := rm.v
	return func(ctx context.Context, _ peer.ID, msg *pubsub.Message) (res pubsub.ValidationResult) {
		from := msg.ReceivedFrom
		if from == h.id {
			return pubsub.ValidationAccept
		}
		if !h.subs.allowed(rm.id, from) {
			h.stats.strangers.Add(1)
			return pubsub.ValidationIgnore
		}
		stream, seq, payload, err := openMessage(t.aead, t.name, msg.Data)
		if err != nil {
			h.stats.unopened.Add(1)
			return pubsub.ValidationReject
		}
		o := &opened{stream: stream, seq: seq, payload: payload}
		if v == nil {
			msg.ValidatorData = o
			return pubsub.ValidationAccept
		}
		defer func() {
			if p := recover(); p != nil {
				h.log.Error("room validator panicked; message rejected",
					"from", from, "panic", p, "stack", string(debug.Stack()))
				res = pubsub.ValidationReject
			}
		}()
		verdict, validated := v(ctx, from, payload)
		switch verdict {
		case Accept:
			// pubsub hands this same *Message to the subscription, so
			// the value rides along to receiveLoop.
			o.validated = validated
			msg.ValidatorData = o
			return pubsub.ValidationAccept
		case Ignore:
			return pubsub.ValidationIgnore
		default:
			return pubsub.ValidationReject
		}
	}
}

// receiveLoop hands the room's messages to r until the room is left, putting
// each author's messages back in publishing order on the way.
func (h *Host) receiveLoop(rm *room, r Receiver) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		// While messages wait for a gap to fill, wait for the next one only
		// until the gap is given up.
		var expired <-chan time.Time
		if d, ok := rm.order.deadline(); ok {
			timer.Reset(time.Until(d))
			expired = timer.C
		}
		var ready []delivery
		select {
		case <-rm.ctx.Done():
			return
		case <-expired:
			ready = rm.order.expire(time.Now())
		case msg := <-rm.in:
			timer.Stop()
			o, ok := msg.ValidatorData.(*opened)
			if !ok {
				continue // not opened by the validator; defensive
			}
			// Messages carry no author (see newPubSub): a publisher is
			// known by its stream, and a message by who delivered it.
			ready = rm.order.pushVia(streamAuthor(o.stream), msg.ReceivedFrom, o.stream, o.seq, o.payload, o.validated, time.Now())
		}
		if r == nil {
			continue
		}
		for _, d := range ready {
			if rm.ctx.Err() != nil {
				return
			}
			h.deliver(rm, r, d)
		}
	}
}

func (h *Host) deliver(rm *room, r Receiver, d delivery) {
	defer func() {
		if p := recover(); p != nil {
			h.log.Error("room receiver panicked", "room", rm.id, "from", d.from,
				"panic", p, "stack", string(debug.Stack()))
		}
	}()
	r(d.from, d.data, d.validated)
}

// protectLoop keeps connections to a topic's peers out of the connection
// manager's trimming while we are on it, and lifts the protection when the
// topic is left.
func (h *Host) protectLoop(t *roomTopic) {
	cm := h.lh.ConnManager()
	tag := "parley-room:" + t.name
	protected := make(map[peer.ID]struct{})
	defer func() {
		for p := range protected {
			cm.Unprotect(p, tag)
		}
	}()
	for {
		ev, err := t.events.NextPeerEvent(t.ctx)
		if err != nil || t.ctx.Err() != nil {
			return
		}
		switch ev.Type {
		case pubsub.PeerJoin:
			cm.Protect(ev.Peer, tag)
			protected[ev.Peer] = struct{}{}
		case pubsub.PeerLeave:
			cm.Unprotect(ev.Peer, tag)
			delete(protected, ev.Peer)
		}
	}
}

// streamAuthor is the orderer's key for a publisher's stream.
func streamAuthor(stream uint64) peer.ID {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], stream)
	return peer.ID(b[:])
}
