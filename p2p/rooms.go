package p2p

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime/debug"
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

// RoomTopic returns the GossipSub topic that carries a room's messages.
func RoomTopic(roomID string) string { return RoomTopicPrefix + roomID }

// room is one joined room: its topic, subscription and the goroutines
// feeding the Receiver and protecting members' connections.
type room struct {
	id     string
	stream uint64        // our stream number in this room (see order.go)
	seq    atomic.Uint64 // our last publish's sequence number
	order  *orderer      // used by the receive goroutine only
	topic  *pubsub.Topic
	sub    *pubsub.Subscription
	events *pubsub.TopicEventHandler
	ctx    context.Context
	cancel context.CancelFunc
}

// protectTag is the connection manager tag that keeps a room's peers connected.
func (r *room) protectTag() string { return "parley-room:" + r.id }

// JoinRoom subscribes to the room's topic. v vets messages from other peers
// before they are delivered or relayed (nil accepts everything); r receives
// them (nil drops them, which still relays). Joining a room already joined
// does nothing and keeps the first v and r.
//
// JoinRoom does not wait for the mesh: as soon as a peer's subscription is
// known, Publish reaches it directly (flood publishing).
func (h *Host) JoinRoom(roomID string, v Validator, r Receiver) error {
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
	if _, ok := h.rooms[roomID]; ok {
		return nil
	}
	rm, err := h.openRoom(roomID, v)
	if err != nil {
		return fmt.Errorf("p2p: join room %s: %w", roomID, err)
	}
	h.rooms[roomID] = rm
	h.goLocked(func() { h.receiveLoop(rm, r) })
	h.goLocked(func() { h.protectLoop(rm) })
	return nil
}

// openRoom registers the validator, joins the topic and subscribes. Caller
// holds h.mu. On error nothing is left registered.
func (h *Host) openRoom(roomID string, v Validator) (_ *room, err error) {
	name := RoomTopic(roomID)
	if !h.subs.CanSubscribe(name) {
		return nil, fmt.Errorf("room ID of %d bytes", len(roomID))
	}
	h.subs.join(name)
	if err := h.ps.RegisterTopicValidator(name, h.topicValidator(v), pubsub.WithValidatorInline(true)); err != nil {
		return nil, err
	}
	rm := &room{id: roomID, stream: uint64(rand.Uint32()) + 1, order: newOrderer()}
	defer func() {
		if err != nil {
			rm.cancelAll()
			if rm.topic != nil {
				rm.topic.Close()
			}
			h.ps.UnregisterTopicValidator(name)
			h.subs.leave(name)
		}
	}()
	if rm.topic, err = h.ps.Join(name); err != nil {
		return nil, err
	}
	if err = rm.topic.SetScoreParams(roomScoreParams()); err != nil {
		return nil, err
	}
	self := h.id
	rm.sub, err = rm.topic.Subscribe(
		pubsub.WithBufferSize(roomBuffer),
		pubsub.WithMessageFilter(func(m *pubsub.Message) bool { return m.ReceivedFrom != self }),
	)
	if err != nil {
		return nil, err
	}
	if rm.events, err = rm.topic.EventHandler(); err != nil {
		return nil, err
	}
	rm.ctx, rm.cancel = context.WithCancel(h.ctx)
	return rm, nil
}

func (r *room) cancelAll() {
	if r.cancel != nil {
		r.cancel()
	}
	if r.events != nil {
		r.events.Cancel()
	}
	if r.sub != nil {
		r.sub.Cancel()
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
	rm.cancelAll()
	h.subs.leave(rm.topic.String())
	var errs []error
	if err := rm.topic.Close(); err != nil {
		errs = append(errs, err)
	}
	if err := h.ps.UnregisterTopicValidator(rm.topic.String()); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("p2p: leave room %s: %w", rm.id, err)
	}
	return nil
}

// Publish sends data to the room's other members. It returns once the message
// is queued for every peer known to be in the room; delivery is best-effort.
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
	msg := appendEnvelope(make([]byte, 0, 2*binary.MaxVarintLen64+len(data)), rm.stream, rm.seq.Add(1), data)
	if err := rm.topic.Publish(ctx, msg); err != nil {
		return fmt.Errorf("p2p: publish to %s: %w", roomID, err)
	}
	return nil
}

// RoomPeers returns the connected peers seen subscribed to the room's topic.
// It works for rooms the host has not joined too.
func (h *Host) RoomPeers(roomID string) []peer.ID {
	h.mu.Lock()
	ps := h.ps
	running := h.state == stateRunning
	h.mu.Unlock()
	if !running {
		return nil
	}
	return ps.ListPeers(RoomTopic(roomID))
}

// meshPeers returns the room's peers that we relay messages to (our GossipSub
// mesh for the topic), as opposed to RoomPeers, which includes every member
// we know of.
func (h *Host) meshPeers(roomID string) []peer.ID {
	h.mu.Lock()
	tr := h.tracer
	h.mu.Unlock()
	if tr == nil {
		return nil
	}
	return tr.meshPeers(RoomTopic(roomID))
}

// topicValidator adapts a Validator to pubsub. Our own publishes are not
// validated: the caller vouches for what it publishes. Messages without a
// valid header are rejected whatever v says.
func (h *Host) topicValidator(v Validator) pubsub.ValidatorEx {
	return func(ctx context.Context, _ peer.ID, msg *pubsub.Message) (res pubsub.ValidationResult) {
		from := msg.ReceivedFrom
		if from == h.id {
			return pubsub.ValidationAccept
		}
		_, _, payload, err := openEnvelope(msg.Data)
		if err != nil {
			return pubsub.ValidationReject
		}
		if v == nil {
			return pubsub.ValidationAccept
		}
		defer func() {
			if p := recover(); p != nil {
				h.log.Error("room validator panicked; message rejected",
					"topic", msg.GetTopic(), "from", from, "panic", p, "stack", string(debug.Stack()))
				res = pubsub.ValidationReject
			}
		}()
		verdict, validated := v(ctx, from, payload)
		switch verdict {
		case Accept:
			// pubsub hands this same *Message to the subscription, so
			// the value rides along to receiveLoop.
			msg.ValidatorData = validated
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
	for {
		// While messages wait for a gap to fill, wait for the next one only
		// until the gap is given up.
		ctx, cancel := rm.ctx, context.CancelFunc(nil)
		if d, ok := rm.order.deadline(); ok {
			ctx, cancel = context.WithDeadline(rm.ctx, d)
		}
		msg, err := rm.sub.Next(ctx)
		if cancel != nil {
			cancel()
		}
		if rm.ctx.Err() != nil {
			return
		}
		var ready []delivery
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			ready = rm.order.expire(time.Now())
		case err != nil:
			return // subscription cancelled
		default:
			stream, seq, payload, err := openEnvelope(msg.Data)
			if err != nil {
				continue // the validator rejects these; defensive
			}
			// Messages carry no author (see newPubSub): a publisher is
			// known by its stream, and a message by who delivered it.
			ready = rm.order.pushVia(streamAuthor(stream), msg.ReceivedFrom, stream, seq, payload, msg.ValidatorData, time.Now())
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

// protectLoop keeps connections to the room's members out of the connection
// manager's trimming while they are in the room, and lifts the protection
// when the room is left.
func (h *Host) protectLoop(rm *room) {
	cm := h.lh.ConnManager()
	tag := rm.protectTag()
	protected := make(map[peer.ID]struct{})
	defer func() {
		for p := range protected {
			cm.Unprotect(p, tag)
		}
	}()
	for {
		ev, err := rm.events.NextPeerEvent(rm.ctx)
		if err != nil || rm.ctx.Err() != nil {
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
