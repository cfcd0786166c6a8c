package dag

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/resolver"
	"github.com/parley-p2p/parley/rooms"
)

// Admission: an event whose signatures are verified is checked against
// its auth events, the state before it and the room's current state, and
// stored with its verdict, in the room's DAG and timeline or as an
// outlier. Every change holds the room's lock.

// Admit checks an event from a peer or a local user and stores it with
// its verdict: a rejected or soft-failed event is stored with
// Outcome.Rejected set, except a local event, whose rejection is returned
// as the error *Rejection and which is not stored. An event that cannot
// be checked yet is the error *Missing, naming the auth and prev events
// to fetch first. The write's result comes on Outcome.Committed.
func (e *Engine) Admit(r *Room, ev *rooms.Event, o Opts) (*Outcome, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return e.process(r, ev, o)
}

// StoreOutliers stores events as outliers, each after its auth events
// (order them so), under one hold of the room's lock, and waits for
// their writes.
func (e *Engine) StoreOutliers(r *Room, evs []*rooms.Event) error {
	var pending []<-chan error
	r.mu.Lock()
	for _, ev := range evs {
		out, err := e.storeOutlier(r, ev, nil)
		if err != nil {
			r.mu.Unlock()
			return fmt.Errorf("outlier %s: %w", ev.ID(), err)
		}
		pending = append(pending, out.Committed)
	}
	r.mu.Unlock()
	for _, c := range pending {
		if err := <-c; err != nil {
			return err
		}
	}
	return nil
}

// StoreOutlier stores an event that is not part of this node's timeline
// (auth chain or state fetched from a peer), after checking it against
// its own auth events, which must be stored already. stateAfter, when
// given, is the state after the event as a peer reported it.
func (e *Engine) StoreOutlier(r *Room, ev *rooms.Event, stateAfter store.StateMap) (*Outcome, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return e.storeOutlier(r, ev, stateAfter)
}

// authState builds the state the auth rules see from an event's auth
// events (plus the implied create event of v12 rooms).
func (e *Engine) authState(r *Room, ev *rooms.Event) (rooms.StateFunc, []*rooms.Event, error) {
	ids := ev.AuthEvents()
	var missing []string
	var evs []*rooms.Event
	m := make(store.StateMap, len(ids)+1)
	for _, id := range ids {
		i, err := e.Event(id)
		if err != nil {
			missing = append(missing, id)
			continue
		}
		if !i.Usable() {
			return nil, nil, &Rejection{Stage: StageAuthEvents, Reason: fmt.Sprintf("auth event %s was rejected", id)}
		}
		if i.Event.RoomID() != r.ID {
			return nil, nil, &Rejection{Stage: StageAuthEvents, Reason: fmt.Sprintf("auth event %s is from another room", id)}
		}
		evs = append(evs, i.Event)
		if i.Event.IsState() {
			m[i.Event.Key()] = id
		}
	}
	if cid := CreateEventID(r); cid != "" && ev.Type() != "m.room.create" {
		if _, err := e.Event(cid); err != nil {
			missing = append(missing, cid)
		}
		m[rooms.StateKey{Type: "m.room.create"}] = cid
	}
	if len(missing) > 0 {
		return nil, nil, &Missing{Auth: missing}
	}
	return e.StateFunc(m), evs, nil
}

// stateBefore resolves the state before an event from the states after
// its prev events.
func (e *Engine) stateBefore(r *Room, ev *rooms.Event) (*stateSnap, error) {
	var missing []string
	var ids []string
	for _, p := range ev.PrevEvents() {
		i, err := e.Event(p)
		if err != nil || (!i.HasState() && i.Usable()) {
			missing = append(missing, p)
			continue
		}
		if !i.Usable() {
			continue // a rejected prev contributes nothing
		}
		if !slices.Contains(ids, i.Rec.StateAfter) {
			ids = append(ids, i.Rec.StateAfter)
		}
	}
	if len(missing) > 0 {
		return nil, &Missing{Prev: missing}
	}
	if len(ids) == 0 {
		if ev.Type() == "m.room.create" {
			return wholeSnap(store.StateMap{}), nil
		}
		return nil, &Rejection{Stage: StagePrevEvents, Reason: "no usable prev events"}
	}
	snaps := make([]*stateSnap, 0, len(ids))
	for _, id := range ids {
		m, err := e.Snapshot(id)
		if err != nil {
			return nil, err
		}
		snaps = append(snaps, storedSnap(id, m))
	}
	return e.resolve(r, snaps)
}

// resolve runs state resolution over states. pending, if set, is an event
// being processed: not stored yet, but part of one of the states. States
// that are all equal resolve to the first without running the algorithm.
func (e *Engine) resolve(r *Room, states []*stateSnap, pending ...*rooms.Event) (*stateSnap, error) {
	same := true
	for _, s := range states[1:] {
		same = same && (s.id == states[0].id || maps.Equal(s.m, states[0].m))
	}
	if same {
		return states[0], nil
	}
	sets := make([]resolver.StateMap, 0, len(states))
	for _, s := range states {
		sets = append(sets, resolver.StateMap(s.m))
	}
	fetch := e.fetchEvent
	if len(pending) > 0 {
		fetch = func(id string) (*rooms.Event, error) {
			for _, p := range pending {
				if p.ID() == id {
					return p, nil
				}
			}
			return e.fetchEvent(id)
		}
	}
	res, err := resolver.ResolveWith(r.Version, sets, fetch, resolver.Options{
		Rejected: func(id string) bool {
			i, err := e.Event(id)
			return err == nil && !i.Usable()
		},
	})
	if err != nil {
		return nil, fmt.Errorf("resolve state of %s: %w", r.ID, err)
	}
	s := derived(store.StateMap(res), states)
	e.snapshots.put(s.id, s.m)
	return s, nil
}

// process checks an event whose signatures are verified and stores it
// with its verdict. The caller holds r.mu. It returns *Missing when
// auth or prev events must be fetched first. An accepted event from a
// peer is opened by the codec, and a local one carries the plain view
// its Seal returned (o.plain), in its record.
func (e *Engine) process(r *Room, ev *rooms.Event, o Opts) (*Outcome, error) {
	if err := e.rollBack(r); err != nil {
		return nil, err
	}
	if i, err := e.Event(ev.ID()); err == nil {
		return e.again(i, o)
	}
	rec := store.EventRecord{Version: r.Version, PDU: ev.JSON(), TxnID: o.TxnID, TxnDevice: o.TxnDevice, Received: nowMS(), Plain: o.plain}
	reject := func(rj *Rejection) (*Outcome, error) {
		if o.Local {
			return nil, rj
		}
		rec.Rejected = rj.Reason
		e.log.Info("event rejected", "room", r.ID, "event", ev.ID(), "type", ev.Type(), "sender", ev.Sender(), "reason", rj.Reason)
		return e.commit(r, ev, rec, nil, nil, rj), nil
	}

	// 1. Against its auth events.
	authFn, authEvs, err := e.authState(r, ev)
	var rj *Rejection
	var miss *Missing
	switch {
	case errors.As(err, &rj):
		return reject(rj)
	case errors.As(err, &miss):
		// Check prevs too, so one round trip fetches both.
		if _, err2 := e.stateBefore(r, ev); errors.As(err2, &miss) {
			miss = &Missing{Auth: err.(*Missing).Auth, Prev: miss.Prev}
		}
		return nil, miss
	case err != nil:
		return nil, err
	}
	if err := rooms.CheckAuthEvents(ev, authEvs); err != nil {
		return reject(&Rejection{Stage: StageAuthEvents, Reason: err.Error()})
	}
	if err := rooms.Allowed(ev, authFn); err != nil {
		return reject(&Rejection{Stage: StageAuthEvents, Reason: "against its auth events: " + err.Error()})
	}

	// 2. Against the state before it.
	var before *stateSnap
	if o.StateBefore != nil {
		before = wholeSnap(o.StateBefore)
	} else if before, err = e.stateBefore(r, ev); err != nil {
		if errors.As(err, &rj) {
			return reject(rj)
		}
		return nil, err
	}
	if ev.Type() != "m.room.create" {
		if err := rooms.Allowed(ev, e.StateFunc(WithCreate(r, before.m))); err != nil {
			return reject(&Rejection{Stage: StageStateBefore, Reason: "against the state before it: " + err.Error()})
		}
	}

	// 3. Against the current state, resolved together with the state
	// before the event (as Synapse does): a node that simply lacks events
	// the sender had still accepts it, while an event that the room's
	// present state forbids (its sender since banned, say) soft-fails.
	var soft *Rejection
	h := r.Head()
	if h.StateID != "" && before.id != h.StateID && ev.Type() != "m.room.create" {
		current, err := e.resolve(r, []*stateSnap{storedSnap(h.StateID, h.State), before})
		if err != nil {
			return nil, err
		}
		if err := rooms.Allowed(ev, e.StateFunc(WithCreate(r, current.m))); err != nil {
			soft = &Rejection{Stage: StageCurrentState, Soft: true, Reason: "against current state: " + err.Error()}
			rec.SoftFailed = soft.Reason
			e.log.Info("event soft-failed", "room", r.ID, "event", ev.ID(), "type", ev.Type(), "sender", ev.Sender(), "reason", soft.Reason)
		}
	}

	after := before
	if ev.IsState() {
		after = before.withEntry(ev.Key(), ev.ID())
		rec.StateBefore = before.id
	}
	rec.StateAfter = after.id
	e.snapshots.put(before.id, before.m)
	e.snapshots.put(after.id, after.m)
	snaps := appendNew(nil, before, after)
	if soft != nil {
		out := e.commit(r, ev, rec, snaps, nil, nil)
		out.Rejected = soft
		return out, nil
	}

	// New extremities and current state.
	prevs := ev.PrevEvents()
	ext := []string{ev.ID()}
	for _, x := range h.Ext {
		if !slices.Contains(prevs, x) {
			ext = append(ext, x)
		}
	}
	head := &Head{Ext: ext, Depth: max(h.Depth, ev.Depth()), MinOrder: h.MinOrder}
	states := []*stateSnap{after}
	for _, x := range ext[1:] {
		i, err := e.Event(x)
		if err != nil {
			return nil, fmt.Errorf("extremity %s: %w", x, err)
		}
		if slices.ContainsFunc(states, func(s *stateSnap) bool { return s.id == i.Rec.StateAfter }) {
			continue
		}
		m, err := e.Snapshot(i.Rec.StateAfter)
		if err != nil {
			return nil, fmt.Errorf("extremity %s: %w", x, err)
		}
		states = append(states, storedSnap(i.Rec.StateAfter, m))
	}
	hs, err := e.resolve(r, states, ev)
	if err != nil {
		return nil, err
	}
	head.State, head.StateID = hs.m, hs.id
	snaps = appendNew(snaps, hs)
	if !o.Local {
		rec.Plain = e.open(r, ev)
	}
	return e.commitWith(r, ev, rec, snaps, head, nil, e.redaction(r, ev, before.m)), nil
}

// again is the outcome of admitting an event the node already holds: the
// verdict it was stored with, which a local event's caller gets as an
// error, as it would have the first time.
func (e *Engine) again(i *Info, o Opts) (*Outcome, error) {
	out := &Outcome{Info: i, Committed: i.Written()}
	switch {
	case i.Rec.Rejected != "":
		out.Rejected = &Rejection{Stage: StageStored, Reason: i.Rec.Rejected}
	case i.Rec.SoftFailed != "":
		out.Rejected = &Rejection{Stage: StageStored, Soft: true, Reason: i.Rec.SoftFailed}
	}
	if o.Local && out.Rejected != nil {
		return nil, out.Rejected
	}
	return out, nil
}

// redaction is the record an accepted redaction writes, or nil. The
// record of a target is its applying redaction (rooms.CanApplyRedaction,
// with the power levels before the redaction): one that cannot apply is
// not recorded, and one that applies does not replace another that does,
// so every node shows the same redaction whatever the order they came
// in. A redaction of an event not held yet is recorded only where no
// other is (it is checked again when shown).
func (e *Engine) redaction(r *Room, ev *rooms.Event, before store.StateMap) *redactionWrite {
	if ev.Type() != "m.room.redaction" || ev.Redacts() == "" {
		return nil
	}
	pl, err := rooms.PowerLevelsFrom(e.StateFunc(WithCreate(r, before)))
	if err != nil {
		return nil
	}
	red := &redactionWrite{Redaction: store.Redaction{Target: ev.Redacts(), RedactionID: ev.ID(), ByPower: pl.UserLevel(ev.Sender()) >= pl.Redact()}}
	target, err := e.Event(ev.Redacts())
	if err != nil {
		red.onlyIfNone = true
		return red
	}
	if !rooms.CanApplyRedaction(ev, target.Event, pl) || e.RedactedBy(target.Event) != nil {
		return nil
	}
	return red
}

// WithCreate adds the implied create event of a v12 room to a state map
// for auth lookups.
func WithCreate(r *Room, m store.StateMap) store.StateMap {
	return WithCreateOf(r.ID, r.Version, m)
}

// WithCreateOf is WithCreate for a room known by its ID and version.
func WithCreateOf(roomID, version string, m store.StateMap) store.StateMap {
	cid := createEventID(roomID, version)
	k := rooms.StateKey{Type: "m.room.create"}
	if cid == "" || m[k] != "" {
		return m
	}
	m2 := maps.Clone(m)
	m2[k] = cid
	return m2
}

// commit records an event (accepted, soft-failed or rejected) and, when
// head is set, the room's new head. Memory is updated at once so the next
// event can build on it; the disk write is queued and its result comes on
// the returned Outcome's channel. If the write fails, the room is marked
// broken and memory is rolled back before the room's next change. The
// caller holds r.mu.
func (e *Engine) commit(r *Room, ev *rooms.Event, rec store.EventRecord, snaps []*stateSnap, head *Head, rj *Rejection) *Outcome {
	return e.commitWith(r, ev, rec, snaps, head, rj, nil)
}

// commitWith is commit plus a redaction to record in the same write.
func (e *Engine) commitWith(r *Room, ev *rooms.Event, rec store.EventRecord, snaps []*stateSnap, head *Head, rj *Rejection, red *redactionWrite) *Outcome {
	info := &Info{Event: ev, Rec: rec, durable: make(chan struct{})}
	info.Rec.PDU = nil
	e.events.Put(ev.ID(), info)
	var txn string
	if rec.TxnID != "" {
		txn = txnKey(ev.Sender(), rec.TxnDevice, scopedTxn(ev.RoomID(), ev.Type(), rec.TxnID))
		e.txns.begin(txn, ev.ID())
	}
	var roomRec *store.RoomRecord
	if head != nil {
		r.setHead(*head)
		roomRec = r.record()
		if r.batch == nil {
			// A room joined from another node is the engine's from its
			// first event in the timeline, so that /sync sees it as soon
			// as that event commits.
			e.Add(r)
		}
	}
	visible := head != nil
	roomID := r.ID
	var onTimeline func(*store.Txn, uint64) error
	if visible && e.cfg.OnTimeline != nil {
		onTimeline = e.cfg.OnTimeline(r, ev, rec.Plain, Live)
	}
	done := e.queueWrite(r, ev, func(t *store.Txn) error {
		rec := rec
		if visible {
			rec.Pos = t.NextPos()
			info.pos.Store(rec.Pos)
			r.notePos(rec.Pos)
		}
		for _, s := range snaps {
			if err := s.put(t); err != nil {
				return err
			}
		}
		if err := t.PutEvent(roomID, ev.ID(), &rec); err != nil {
			return err
		}
		if roomRec != nil {
			r.stamp(roomRec)
			roomRec.Pos = rec.Pos
			if err := t.PutRoom(roomRec); err != nil {
				return err
			}
		}
		if red != nil {
			if err := putRedaction(t, red); err != nil {
				return err
			}
		}
		if rec.Rejected != "" || rec.SoftFailed != "" {
			v := &store.Verdict{EventID: ev.ID(), Type: ev.Type(), Sender: ev.Sender(), Reason: rec.Rejected, Received: rec.Received}
			if v.Reason == "" {
				v.Soft, v.Reason = true, rec.SoftFailed
			}
			if err := t.PutVerdict(roomID, v); err != nil {
				return err
			}
		}
		if onTimeline != nil {
			if err := onTimeline(t, rec.TimelineOrder()); err != nil {
				return err
			}
		}
		if rec.TxnID != "" {
			return t.PutTxnEvent(ev.Sender(), rec.TxnDevice, scopedTxn(ev.RoomID(), ev.Type(), rec.TxnID), ev.ID())
		}
		return nil
	}, func(err error) {
		if txn != "" {
			e.txns.end(txn, ev.ID(), err == nil)
		}
		info.writeErr = err
		close(info.durable)
		if err == nil && visible && e.cfg.OnCommitted != nil {
			e.cfg.OnCommitted(r)
		}
	})
	return &Outcome{Info: info, Committed: done, Rejected: rj}
}

// authVerdict checks an event against its own auth events only (the check
// for events outside the timeline: auth chains, state, backfilled
// history). It returns why the event is rejected, or "" if it passes; an
// error means the check could not be made (auth events missing).
func (e *Engine) authVerdict(r *Room, ev *rooms.Event) (string, error) {
	authFn, authEvs, err := e.authState(r, ev)
	var rj *Rejection
	switch {
	case errors.As(err, &rj):
		return rj.Reason, nil
	case err != nil:
		return "", err
	}
	if err := rooms.CheckAuthEvents(ev, authEvs); err != nil {
		return err.Error(), nil
	}
	if err := rooms.Allowed(ev, authFn); err != nil {
		return "against its auth events: " + err.Error(), nil
	}
	return "", nil
}

// storeOutlier stores an event that is not part of this node's timeline
// (auth chain or state fetched from a peer), after checking it against
// its own auth events. Its auth events must already be stored. state,
// when given, is the state after the event as the peer reported it.
func (e *Engine) storeOutlier(r *Room, ev *rooms.Event, stateAfter store.StateMap) (*Outcome, error) {
	if i, err := e.Event(ev.ID()); err == nil && (i.HasState() || stateAfter == nil) {
		return &Outcome{Info: i, Committed: i.Written()}, nil
	}
	rec := store.EventRecord{Version: r.Version, PDU: ev.JSON(), Outlier: true, Received: nowMS()}
	reason, err := e.authVerdict(r, ev)
	if err != nil {
		return nil, err
	}
	rec.Rejected = reason
	if i, err := e.Event(ev.ID()); err == nil {
		rec.Plain = i.Rec.Plain // held without its state: opened then
	} else if reason == "" {
		rec.Plain = e.open(r, ev)
	}
	var snaps []*stateSnap
	if stateAfter != nil && rec.Rejected == "" {
		s := wholeSnap(stateAfter)
		rec.StateAfter = s.id
		snaps = []*stateSnap{s}
		e.snapshots.put(s.id, s.m)
	}
	if rec.Rejected != "" {
		e.log.Info("outlier rejected", "room", r.ID, "event", ev.ID(), "reason", rec.Rejected)
	}
	return e.commit(r, ev, rec, snaps, nil, nil), nil
}

// redactionWrite is a redaction record to write, and whether to write it
// only where the target has none.
type redactionWrite struct {
	store.Redaction
	onlyIfNone bool
}

func putRedaction(t *store.Txn, red *redactionWrite) error {
	if red.onlyIfNone {
		if old, err := t.Redaction(red.Target); err == nil && old != nil {
			return nil
		}
	}
	return t.PutRedaction(&red.Redaction)
}

// open is the codec's plain view of an event from a peer, nil without a
// codec. The caller holds r.mu.
func (e *Engine) open(r *Room, ev *rooms.Event) []byte {
	if e.cfg.Codec == nil {
		return nil
	}
	return e.cfg.Codec.Open(r, ev)
}
