package node

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/resolver"
	"github.com/parley-p2p/parley/rooms"
)

// room is a room's head in memory. Its lock serialises every change to
// the room's DAG on this node.
type room struct {
	id      string
	version string

	mu      sync.Mutex
	ext     []string       // forward extremities
	state   store.StateMap // current state (never mutated in place)
	stateID string
	depth   int64
	// minOrder is the lowest timeline order given to backfilled history.
	minOrder uint64

	linkMu sync.Mutex // serialises counting link uses and making links; never held across a request
	// linkPending counts, per link, the uses under way (invites sent,
	// not yet answered). Guarded by linkMu.
	linkPending map[string]int
	finding     atomic.Bool // a DHT rendezvous lookup is under way

	// follow is set while the node follows the room (see follow.go).
	followMu sync.Mutex
	follow   *following

	// broken is set when a write of the room failed. Memory moves ahead
	// of the disk while writes are in flight, so it may then hold events
	// the disk does not: every later write of the room fails too, until
	// rollBack (under mu) makes memory what the disk holds again.
	broken  atomic.Bool
	failMu  sync.Mutex
	failed  []string // events whose write failed, to forget
	failErr error    // the last failure
	// rollingBack is set while a rollBack is scheduled.
	rollingBack atomic.Bool
	// batch, when set, gathers the room's writes for one transaction
	// (createRoom) instead of queueing each.
	batch *[]batchedWrite

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

// evInfo is an event plus what this node knows about it.
type evInfo struct {
	ev  *rooms.Event
	rec store.EventRecord // PDU not kept here
	pos atomic.Uint64     // stream position once committed

	// durable is closed once the write of an event this node just
	// admitted has ended, with writeErr its result; nil for events read
	// from the store.
	durable  chan struct{}
	writeErr error
}

// written reports the result of the event's write: at once for an event
// read from the store, else once the write queued for it has ended. A
// second admission of an event whose write is still in flight so waits
// for it, and nothing publishes an event before its node holds it.
func (i *evInfo) written() <-chan error {
	if i.durable == nil {
		return closedNil()
	}
	ch := make(chan error, 1)
	select {
	case <-i.durable:
		ch <- i.writeErr
		return ch
	default:
	}
	go func() {
		<-i.durable
		ch <- i.writeErr
	}()
	return ch
}

func (i *evInfo) usable() bool { return i.rec.Rejected == "" }

// hasState reports whether the state after the event is known.
func (i *evInfo) hasState() bool { return i.rec.StateAfter != "" && i.rec.Rejected == "" }

// errMissing lists events that must be fetched before an event can be
// processed.
type errMissing struct {
	auth, prev []string
}

func (e *errMissing) Error() string {
	return fmt.Sprintf("missing %d auth and %d prev events", len(e.auth), len(e.prev))
}

// rejection is why an event was rejected or soft-failed.
type rejection struct {
	soft   bool
	reason string
}

func (e *rejection) Error() string {
	if e.soft {
		return "soft-failed: " + e.reason
	}
	return "rejected: " + e.reason
}

// getRoom returns the room if this node holds it.
func (n *Node) getRoom(id string) *room {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.rooms[id]
}

// loadRooms brings every stored room's head into memory and rejoins its
// pubsub topic.
func (n *Node) loadRooms() error {
	var recs []*store.RoomRecord
	err := n.store.View(func(t *store.Txn) error {
		var err error
		recs, err = t.Rooms()
		return err
	})
	if err != nil {
		return err
	}
	for _, rec := range recs {
		state, err := n.snapshot(rec.State)
		if err != nil {
			return fmt.Errorf("room %s: %w", rec.ID, err)
		}
		r := n.newRoom(rec.ID, rec.Version)
		r.ext, r.state, r.stateID, r.depth, r.minOrder = rec.Extremities, state, rec.State, rec.Depth, rec.MinOrder
		if !n.hasLocalMember(r) {
			// Every local user left: keep its history readable, but
			// do not follow it.
			n.mu.Lock()
			n.rooms[r.id] = r
			n.mu.Unlock()
			continue
		}
		if err := n.activateRoom(r); err != nil {
			return err
		}
	}
	return nil
}

func (n *Node) newRoom(id, version string) *room {
	return &room{id: id, version: version, inbox: make(chan gossipMsg, 8192), done: make(chan struct{})}
}

// activateRoom registers the room and follows it: subscribes to its topic
// and starts its worker.
func (n *Node) activateRoom(r *room) error {
	n.mu.Lock()
	if _, ok := n.rooms[r.id]; ok {
		n.mu.Unlock()
		return nil
	}
	n.rooms[r.id] = r
	n.mu.Unlock()
	return n.startFollowing(r)
}

// eventInfo loads an event and its record, from cache or store.
func (n *Node) eventInfo(id string) (*evInfo, error) {
	if i, ok := n.events.get(id); ok {
		return i, nil
	}
	var rec *store.EventRecord
	err := n.store.View(func(t *store.Txn) error {
		var err error
		rec, err = t.Event(id)
		return err
	})
	if err != nil {
		return nil, err
	}
	ev, err := parseStored(id, rec)
	if err != nil {
		return nil, err
	}
	i := &evInfo{ev: ev, rec: *rec}
	i.rec.PDU = nil
	i.pos.Store(rec.Pos)
	n.events.put(id, i)
	return i, nil
}

func parseStored(id string, rec *store.EventRecord) (*rooms.Event, error) {
	ev, err := rooms.ParseEvent(rec.PDU, rec.Version)
	if err != nil {
		return nil, fmt.Errorf("stored event %s: %w", id, err)
	}
	if ev.ID() != id {
		return nil, fmt.Errorf("stored event %s has ID %s", id, ev.ID())
	}
	return ev, nil
}

// known reports whether the event is stored (in any status).
func (n *Node) known(id string) bool {
	_, err := n.eventInfo(id)
	return err == nil
}

func (n *Node) snapshot(id string) (store.StateMap, error) {
	if m, ok := n.snapshots.get(id); ok {
		return m, nil
	}
	var m store.StateMap
	err := n.store.View(func(t *store.Txn) error {
		var err error
		m, err = t.Snapshot(id, n.snapshots.get)
		return err
	})
	if err != nil {
		return nil, err
	}
	n.snapshots.put(id, m)
	return m, nil
}

// fetchEvent is the resolver's lookup.
func (n *Node) fetchEvent(id string) (*rooms.Event, error) {
	i, err := n.eventInfo(id)
	if err != nil {
		return nil, fmt.Errorf("event %s: %w", id, err)
	}
	return i.ev, nil
}

// stateFunc views a state map as the auth rules' lookup.
func (n *Node) stateFunc(m store.StateMap) rooms.StateFunc {
	return func(k rooms.StateKey) *rooms.Event {
		id, ok := m[k]
		if !ok {
			return nil
		}
		i, err := n.eventInfo(id)
		if err != nil {
			return nil
		}
		return i.ev
	}
}

// createEventID is the create event's ID when the room ID implies it
// (room v12).
func createEventID(r *room) string {
	if r.version == rooms.V11 {
		return ""
	}
	return "$" + r.id[1:]
}

// authState builds the state the auth rules see from an event's auth
// events (plus the implied create event of v12 rooms).
func (n *Node) authState(r *room, ev *rooms.Event) (rooms.StateFunc, []*rooms.Event, error) {
	ids := ev.AuthEvents()
	var missing []string
	var evs []*rooms.Event
	m := make(store.StateMap, len(ids)+1)
	for _, id := range ids {
		i, err := n.eventInfo(id)
		if err != nil {
			missing = append(missing, id)
			continue
		}
		if !i.usable() {
			return nil, nil, &rejection{reason: fmt.Sprintf("auth event %s was rejected", id)}
		}
		if i.ev.RoomID() != r.id {
			return nil, nil, &rejection{reason: fmt.Sprintf("auth event %s is from another room", id)}
		}
		evs = append(evs, i.ev)
		if i.ev.IsState() {
			m[i.ev.Key()] = id
		}
	}
	if cid := createEventID(r); cid != "" && ev.Type() != "m.room.create" {
		if _, err := n.eventInfo(cid); err != nil {
			missing = append(missing, cid)
		}
		m[rooms.StateKey{Type: "m.room.create"}] = cid
	}
	if len(missing) > 0 {
		return nil, nil, &errMissing{auth: missing}
	}
	return n.stateFunc(m), evs, nil
}

// stateBefore resolves the state before an event from the states after
// its prev events.
func (n *Node) stateBefore(r *room, ev *rooms.Event) (*stateSnap, error) {
	var missing []string
	var ids []string
	for _, p := range ev.PrevEvents() {
		i, err := n.eventInfo(p)
		if err != nil || (!i.hasState() && i.usable()) {
			missing = append(missing, p)
			continue
		}
		if !i.usable() {
			continue // a rejected prev contributes nothing
		}
		if !slices.Contains(ids, i.rec.StateAfter) {
			ids = append(ids, i.rec.StateAfter)
		}
	}
	if len(missing) > 0 {
		return nil, &errMissing{prev: missing}
	}
	if len(ids) == 0 {
		if ev.Type() == "m.room.create" {
			return wholeSnap(store.StateMap{}), nil
		}
		return nil, &rejection{reason: "no usable prev events"}
	}
	snaps := make([]*stateSnap, 0, len(ids))
	for _, id := range ids {
		m, err := n.snapshot(id)
		if err != nil {
			return nil, err
		}
		snaps = append(snaps, storedSnap(id, m))
	}
	return n.resolve(r, snaps)
}

// resolve runs state resolution over states. pending, if set, is an event
// being processed: not stored yet, but part of one of the states. States
// that are all equal resolve to the first without running the algorithm.
func (n *Node) resolve(r *room, states []*stateSnap, pending ...*rooms.Event) (*stateSnap, error) {
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
	fetch := n.fetchEvent
	if len(pending) > 0 {
		fetch = func(id string) (*rooms.Event, error) {
			for _, p := range pending {
				if p.ID() == id {
					return p, nil
				}
			}
			return n.fetchEvent(id)
		}
	}
	res, err := resolver.ResolveWith(r.version, sets, fetch, resolver.Options{
		Rejected: func(id string) bool {
			i, err := n.eventInfo(id)
			return err == nil && !i.usable()
		},
	})
	if err != nil {
		return nil, fmt.Errorf("resolve state of %s: %w", r.id, err)
	}
	s := derived(store.StateMap(res), states)
	n.snapshots.put(s.id, s.m)
	return s, nil
}

// outcome is what process did with an event.
type outcome struct {
	info      *evInfo
	committed <-chan error
	rejected  *rejection // nil when accepted
}

// processOpts tune process for local events and for joins.
type processOpts struct {
	// local: built on this node; a rejected local event is not stored.
	local bool
	// stateBefore overrides the computation from prev events (the first
	// event of a room joined through send_join).
	stateBefore store.StateMap
	txnID       string
	txnDevice   string
}

// process checks an event whose signatures are verified and stores it
// with its verdict. The caller holds r.mu. It returns *errMissing when
// auth or prev events must be fetched first.
func (n *Node) process(r *room, ev *rooms.Event, o processOpts) (*outcome, error) {
	if err := n.rollBack(r); err != nil {
		return nil, err
	}
	if i, err := n.eventInfo(ev.ID()); err == nil {
		return &outcome{info: i, committed: i.written()}, nil
	}
	rec := store.EventRecord{Version: r.version, PDU: ev.JSON(), TxnID: o.txnID, TxnDevice: o.txnDevice, Received: nowMS()}
	reject := func(rj *rejection) (*outcome, error) {
		if o.local {
			return nil, rj
		}
		rec.Rejected = rj.reason
		n.log.Info("event rejected", "room", r.id, "event", ev.ID(), "type", ev.Type(), "sender", ev.Sender(), "reason", rj.reason)
		return n.commit(r, ev, rec, nil, nil, rj), nil
	}

	// 1. Against its auth events.
	authFn, authEvs, err := n.authState(r, ev)
	var rj *rejection
	var miss *errMissing
	switch {
	case errors.As(err, &rj):
		return reject(rj)
	case errors.As(err, &miss):
		// Check prevs too, so one round trip fetches both.
		if _, err2 := n.stateBefore(r, ev); errors.As(err2, &miss) {
			miss = &errMissing{auth: err.(*errMissing).auth, prev: miss.prev}
		}
		return nil, miss
	case err != nil:
		return nil, err
	}
	if err := rooms.CheckAuthEvents(ev, authEvs); err != nil {
		return reject(&rejection{reason: err.Error()})
	}
	if err := rooms.Allowed(ev, authFn); err != nil {
		return reject(&rejection{reason: "against its auth events: " + err.Error()})
	}

	// 2. Against the state before it.
	var before *stateSnap
	if o.stateBefore != nil {
		before = wholeSnap(o.stateBefore)
	} else if before, err = n.stateBefore(r, ev); err != nil {
		if errors.As(err, &rj) {
			return reject(rj)
		}
		return nil, err
	}
	if ev.Type() != "m.room.create" {
		if err := rooms.Allowed(ev, n.stateFunc(withCreate(r, before.m))); err != nil {
			return reject(&rejection{reason: "against the state before it: " + err.Error()})
		}
	}

	// 3. Against the current state, resolved together with the state
	// before the event (as Synapse does): a node that simply lacks events
	// the sender had still accepts it, while an event that the room's
	// present state forbids (its sender since banned, say) soft-fails.
	var soft *rejection
	if r.stateID != "" && before.id != r.stateID && ev.Type() != "m.room.create" {
		current, err := n.resolve(r, []*stateSnap{storedSnap(r.stateID, r.state), before})
		if err != nil {
			return nil, err
		}
		if err := rooms.Allowed(ev, n.stateFunc(withCreate(r, current.m))); err != nil {
			soft = &rejection{soft: true, reason: "against current state: " + err.Error()}
			rec.SoftFailed = soft.reason
			n.log.Info("event soft-failed", "room", r.id, "event", ev.ID(), "type", ev.Type(), "sender", ev.Sender(), "reason", soft.reason)
		}
	}

	after := before
	if ev.IsState() {
		after = before.withEntry(ev.Key(), ev.ID())
		rec.StateBefore = before.id
	}
	rec.StateAfter = after.id
	n.snapshots.put(before.id, before.m)
	n.snapshots.put(after.id, after.m)
	snaps := appendNew(nil, before, after)
	if soft != nil {
		out := n.commit(r, ev, rec, snaps, nil, nil)
		out.rejected = soft
		return out, nil
	}

	// New extremities and current state.
	prevs := ev.PrevEvents()
	ext := []string{ev.ID()}
	for _, e := range r.ext {
		if !slices.Contains(prevs, e) {
			ext = append(ext, e)
		}
	}
	head := &roomHead{ext: ext, depth: max(r.depth, ev.Depth())}
	states := []*stateSnap{after}
	for _, e := range ext[1:] {
		i, err := n.eventInfo(e)
		if err != nil {
			return nil, fmt.Errorf("extremity %s: %w", e, err)
		}
		if slices.ContainsFunc(states, func(s *stateSnap) bool { return s.id == i.rec.StateAfter }) {
			continue
		}
		m, err := n.snapshot(i.rec.StateAfter)
		if err != nil {
			return nil, fmt.Errorf("extremity %s: %w", e, err)
		}
		states = append(states, storedSnap(i.rec.StateAfter, m))
	}
	hs, err := n.resolve(r, states, ev)
	if err != nil {
		return nil, err
	}
	head.state, head.stateID = hs.m, hs.id
	snaps = appendNew(snaps, hs)
	var red *store.Redaction
	if ev.Type() == "m.room.redaction" && ev.Redacts() != "" {
		red = &store.Redaction{Target: ev.Redacts(), RedactionID: ev.ID()}
		if pl, err := rooms.PowerLevelsFrom(n.stateFunc(withCreate(r, before.m))); err == nil {
			red.ByPower = pl.UserLevel(ev.Sender()) >= pl.Redact()
		}
	}
	return n.commitWith(r, ev, rec, snaps, head, nil, red), nil
}

// roomHead is a room's new head after an event.
type roomHead struct {
	ext     []string
	state   store.StateMap
	stateID string
	depth   int64
}

// withCreate adds the implied create event of a v12 room to a state map
// for auth lookups.
func withCreate(r *room, m store.StateMap) store.StateMap {
	cid := createEventID(r)
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
// the returned outcome's channel. If the write fails, the room is marked
// broken and memory is rolled back before the room's next change. The
// caller holds r.mu.
func (n *Node) commit(r *room, ev *rooms.Event, rec store.EventRecord, snaps []*stateSnap, head *roomHead, rj *rejection) *outcome {
	return n.commitWith(r, ev, rec, snaps, head, rj, nil)
}

// commitWith is commit plus a redaction to record in the same write.
func (n *Node) commitWith(r *room, ev *rooms.Event, rec store.EventRecord, snaps []*stateSnap, head *roomHead, rj *rejection, red *store.Redaction) *outcome {
	info := &evInfo{ev: ev, rec: rec, durable: make(chan struct{})}
	info.rec.PDU = nil
	n.events.put(ev.ID(), info)
	var txn string
	if rec.TxnID != "" {
		txn = txnKey(ev.Sender(), rec.TxnDevice, rec.TxnID)
		n.txns.begin(txn, ev.ID())
	}
	var roomRec *store.RoomRecord
	if head != nil {
		r.ext, r.state, r.stateID, r.depth = head.ext, head.state, head.stateID, head.depth
		roomRec = n.roomRecord(r)
	}
	visible := head != nil
	roomID := r.id
	done := n.queueWrite(r, ev, func(t *store.Txn) error {
		rec := rec
		if visible {
			rec.Pos = t.NextPos()
			info.pos.Store(rec.Pos)
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
			roomRec.Pos = rec.Pos
			if err := t.PutRoom(roomRec); err != nil {
				return err
			}
		}
		if red != nil {
			if err := t.PutRedaction(red); err != nil {
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
		if rec.TxnID != "" {
			return t.PutTxnEvent(ev.Sender(), rec.TxnDevice, rec.TxnID, ev.ID())
		}
		return nil
	}, func(err error) {
		if txn != "" {
			n.txns.end(txn, ev.ID(), err == nil)
		}
		info.writeErr = err
		close(info.durable)
	})
	return &outcome{info: info, committed: done, rejected: rj}
}

// authVerdict checks an event against its own auth events only (the check
// for events outside the timeline: auth chains, state, backfilled
// history). It returns why the event is rejected, or "" if it passes; an
// error means the check could not be made (auth events missing).
func (n *Node) authVerdict(r *room, ev *rooms.Event) (string, error) {
	authFn, authEvs, err := n.authState(r, ev)
	var rj *rejection
	switch {
	case errors.As(err, &rj):
		return rj.reason, nil
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
func (n *Node) storeOutlier(r *room, ev *rooms.Event, stateAfter store.StateMap) (*outcome, error) {
	if i, err := n.eventInfo(ev.ID()); err == nil && (i.hasState() || stateAfter == nil) {
		return &outcome{info: i, committed: i.written()}, nil
	}
	rec := store.EventRecord{Version: r.version, PDU: ev.JSON(), Outlier: true, Received: nowMS()}
	reason, err := n.authVerdict(r, ev)
	if err != nil {
		return nil, err
	}
	rec.Rejected = reason
	var snaps []*stateSnap
	if stateAfter != nil && rec.Rejected == "" {
		s := wholeSnap(stateAfter)
		rec.StateAfter = s.id
		snaps = []*stateSnap{s}
		n.snapshots.put(s.id, s.m)
	}
	if rec.Rejected != "" {
		n.log.Info("outlier rejected", "room", r.id, "event", ev.ID(), "reason", rec.Rejected)
	}
	return n.commit(r, ev, rec, snaps, nil, nil), nil
}
