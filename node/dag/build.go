package dag

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/parley-p2p/parley/errs"
	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/rooms"
)

// Building local events: on top of the room's head, signed with the
// node's key, admitted like any other event, and published only once
// the node holds them.

// maxPrevEvents is the spec's bound on prev_events.
const maxPrevEvents = 20

// MaxTxnIDLen bounds a client transaction ID (the spec sets no limit; 255
// bytes is what Synapse-era clients use at most, and keys stay small).
const MaxTxnIDLen = 255

// Proto prepares an event on top of the room's current head: prev events
// are the extremities, auth events the selection from current state.
// The codec does not seal it: such an event is signed elsewhere too (an
// invite, a join through make_join), and its content is what auth needs.
func (e *Engine) Proto(r *Room, sender, evType string, stateKey *string, content json.RawMessage) (rooms.ProtoEvent, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := e.rollBack(r); err != nil {
		return rooms.ProtoEvent{}, err
	}
	return e.protoLocked(r, sender, evType, stateKey, content), nil
}

func (e *Engine) protoLocked(r *Room, sender, evType string, stateKey *string, content json.RawMessage) rooms.ProtoEvent {
	h := r.Head()
	p := rooms.ProtoEvent{
		RoomID: r.ID, Sender: sender, Type: evType, StateKey: stateKey, Content: content,
		Depth: h.Depth + 1, OriginServerTS: nowMS(),
	}
	ext := h.Ext
	if len(ext) > maxPrevEvents {
		ext = ext[:maxPrevEvents]
	}
	p.PrevEvents = slices.Clone(ext)
	for _, k := range rooms.AuthEventKeys(p, r.Version) {
		if id, ok := h.State[k]; ok {
			p.AuthEvents = append(p.AuthEvents, id)
		}
	}
	if p.Depth > 1<<53-1 {
		p.Depth = 1<<53 - 1
	}
	return p
}

// Send builds, signs, checks and stores an event from a local user,
// waits until it is durable, and then publishes it: no member hears of
// an event this node does not hold, and a failed write leaves nothing
// behind (the room's memory is rolled back before its next change). A
// retried client transaction (txnID from the same device) returns the
// event the first made.
func (e *Engine) Send(ctx context.Context, r *Room, sender, evType string, stateKey *string, content json.RawMessage, txnID, device string) (*rooms.Event, error) {
	if len(txnID) > MaxTxnIDLen {
		return nil, errs.Invalidf("transaction ID is %d bytes, at most %d allowed", len(txnID), MaxTxnIDLen)
	}
	// A transaction committed before is looked up in the store before the
	// room's lock is taken: a read from Badger waits for the commit in
	// flight, and every other send and gossiped event of the room would
	// wait behind it.
	scoped := scopedTxn(r.ID, evType, txnID)
	if txnID != "" {
		if id := e.storedTxnEvent(sender, device, scoped); id != "" {
			return e.txnEvent(id)
		}
	}
	// The codec prepares (and may send a key share of its own) outside
	// the room's lock, once it is certain the event is to be built: not
	// for a retried transaction that returns the first's event.
	prepare := e.cfg.Codec != nil && !e.cfg.Codec.Sealed(evType)
	if prepare && (txnID == "" || !e.txns.known(txnKey(sender, device, scoped))) {
		if err := e.cfg.Codec.Prepare(ctx, r, sender, evType, stateKey); err != nil {
			return nil, fmt.Errorf("prepare %s: %w", evType, err)
		}
		prepare = false
	}
	r.mu.Lock()
	for {
		if txnID != "" {
			// Committed or in flight since the look-up above: the cache
			// holds it.
			id, wait := e.txns.lookup(txnKey(sender, device, scoped))
			if id != "" {
				r.mu.Unlock()
				return e.txnEvent(id)
			}
			if wait != nil {
				// The same transaction is being written: its result decides.
				r.mu.Unlock()
				select {
				case <-wait:
				case <-ctx.Done():
					return nil, ctx.Err()
				}
				r.mu.Lock()
				continue
			}
		}
		if !prepare {
			break
		}
		// The transaction was in flight and failed: this send builds.
		r.mu.Unlock()
		if err := e.cfg.Codec.Prepare(ctx, r, sender, evType, stateKey); err != nil {
			return nil, fmt.Errorf("prepare %s: %w", evType, err)
		}
		prepare = false
		r.mu.Lock()
	}
	ev, out, err := e.buildLocked(r, sender, evType, stateKey, content, txnID, device)
	r.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if err := <-out.Committed; err != nil {
		return nil, fmt.Errorf("store event: %w", err)
	}
	e.Publish(r, ev)
	return ev, nil
}

// AdmitLocal admits an event built here but signed elsewhere too (an
// invite the invitee's node co-signed, a join built from a make_join
// template), waits until it is durable and publishes it. A rejection is
// a Forbidden error.
func (e *Engine) AdmitLocal(r *Room, ev *rooms.Event, stateBefore store.StateMap) error {
	out, err := e.Admit(r, ev, Opts{Local: true, StateBefore: stateBefore})
	var rj *Rejection
	if errors.As(err, &rj) {
		return errs.Forbiddenf("%s", rj.Reason)
	}
	if err != nil {
		return err
	}
	if err := <-out.Committed; err != nil {
		return err
	}
	e.Publish(r, ev)
	return nil
}

// Publish hands an event to the publish hook.
func (e *Engine) Publish(r *Room, ev *rooms.Event) {
	if e.cfg.Publish != nil {
		e.cfg.Publish(r, ev)
	}
}

// buildLocked builds, signs and checks an event from a local user on top
// of the room's head, and queues its write. The codec, if any, seals its
// content first, and the plain view it returns goes in the event's
// record. The caller holds r.mu.
func (e *Engine) buildLocked(r *Room, sender, evType string, stateKey *string, content json.RawMessage, txnID, device string) (*rooms.Event, *Outcome, error) {
	if err := e.rollBack(r); err != nil {
		return nil, nil, err
	}
	var plain []byte
	if c := e.cfg.Codec; c != nil && !c.Sealed(evType) {
		wireType, wire, pl, err := c.Seal(r, sender, evType, stateKey, content)
		if err != nil {
			return nil, nil, fmt.Errorf("seal %s: %w", evType, err)
		}
		evType, content, plain = wireType, wire, pl
	}
	p := e.protoLocked(r, sender, evType, stateKey, content)
	ev, err := rooms.Build(p, r.Version, e.serverName, e.key)
	if err != nil {
		if len(content) > rooms.MaxEventSize/2 {
			return nil, nil, errs.TooLargef("event too large: %v", err)
		}
		return nil, nil, errs.Invalidf("%v", err)
	}
	out, err := e.process(r, ev, Opts{Local: true, TxnID: txnID, TxnDevice: device, plain: plain})
	var rj *Rejection
	if errors.As(err, &rj) {
		return nil, nil, errs.Forbiddenf("%s", strings.TrimPrefix(rj.Reason, "against the state before it: "))
	}
	if err != nil {
		return nil, nil, err
	}
	return ev, out, nil
}

// storedTxnEvent finds the event a committed client transaction
// (scopedTxn) created, in the cache or else in the store; "" if there is
// none.
func (e *Engine) storedTxnEvent(user, device, txnID string) string {
	key := txnKey(user, device, txnID)
	if id, _ := e.txns.lookup(key); id != "" {
		return id
	}
	var id string
	// A failed read counts as no transaction, as it always has: the
	// event's own write then fails too, or it is sent anew.
	e.store.View(func(t *store.Txn) error {
		var err error
		id, err = t.TxnEvent(user, device, txnID)
		return err
	})
	if id != "" {
		e.txns.add(key, id)
	}
	return id
}

// txnEvent is what a retried client transaction gets: the event the
// first made.
func (e *Engine) txnEvent(id string) (*rooms.Event, error) {
	i, err := e.Event(id)
	if err != nil {
		return nil, err
	}
	return i.Event, nil
}

// Step is one event of a new room after its create event.
type Step struct {
	Type, StateKey string
	Content        json.RawMessage
}

// CreateRoom builds a room's create event and then each step, every one
// checked like any other event, and commits them in one transaction, so
// the room appears whole or not at all. The codec, if any, seals the
// steps as it seals any local event (the create event stays as it is);
// Prepare is not called, since the room exists for no one else yet. The room is registered with the
// engine once stored.
func (e *Engine) CreateRoom(version, creator string, createContent json.RawMessage, steps []Step) (*Room, error) {
	createEv, err := e.buildCreate(version, creator, createContent)
	if err != nil {
		return nil, err
	}
	r := NewRoom(createEv.RoomID(), version)
	var writes []batchedWrite
	var built []string
	r.batch = &writes // no one else sees r before Add
	err = func() error {
		r.mu.Lock()
		defer r.mu.Unlock()
		if _, err := e.process(r, createEv, Opts{Local: true}); err != nil {
			return fmt.Errorf("create event: %w", err)
		}
		built = append(built, createEv.ID())
		for _, st := range steps {
			key := st.StateKey
			ev, _, err := e.buildLocked(r, creator, st.Type, &key, st.Content, "", "")
			if err != nil {
				return err
			}
			built = append(built, ev.ID())
		}
		return nil
	}()
	if err == nil {
		err = e.store.Update(func(t *store.Txn) error {
			for _, w := range writes {
				if err := w.write(t); err != nil {
					return err
				}
			}
			return nil
		})
		r.batch = nil
		if err == nil {
			// Registered before the writes' results go out, so that a
			// /sync woken by them finds the room.
			r, _ = e.Add(r)
		}
		for _, w := range writes {
			w.finish(err)
		}
		if err != nil {
			err = fmt.Errorf("create room: %w", err)
		}
	}
	r.batch = nil
	if err != nil {
		for _, id := range built {
			e.events.Del(id)
		}
		return nil, err
	}
	return r, nil
}

// buildCreate builds a room's create event. Its timestamp is unique on
// this node, so two rooms created by one user in the same millisecond
// still differ (a v12 room's ID is its create event's hash), and a clock
// that went back cannot recreate a room this node already holds.
func (e *Engine) buildCreate(version, sender string, content json.RawMessage) (*rooms.Event, error) {
	empty := ""
	for range 100 {
		ev, err := rooms.Build(rooms.ProtoEvent{
			Sender: sender, Type: "m.room.create", StateKey: &empty, Content: content,
			Depth: 1, OriginServerTS: e.uniqueMS(), PrevEvents: []string{}, AuthEvents: []string{},
			RoomID: roomIDForCreate(version, e.serverName),
		}, version, e.serverName, e.key)
		if err != nil {
			return nil, errs.Invalidf("create event: %v", err)
		}
		if !e.Known(ev.ID()) && e.Room(ev.RoomID()) == nil {
			return ev, nil
		}
	}
	return nil, errors.New("create event: no unused room ID found")
}

// uniqueMS is the time in milliseconds, but never the same value twice.
func (e *Engine) uniqueMS() int64 {
	for {
		last := e.lastCreateMS.Load()
		now := max(nowMS(), last+1)
		if e.lastCreateMS.CompareAndSwap(last, now) {
			return now
		}
	}
}

// roomIDForCreate is the create event's room_id: none for v12 (the room
// ID is the create event's hash), a random one on this server for v10
// and v11.
func roomIDForCreate(version, server string) string {
	if !rooms.RoomIDHasServer(version) {
		return ""
	}
	b := make([]byte, 18)
	rand.Read(b)
	return "!" + base64.RawURLEncoding.EncodeToString(b)[:18] + ":" + server
}
