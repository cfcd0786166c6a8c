package dag_test

import (
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-p2p/parley/node/dag"
	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/rooms"
)

var errInjected = errors.New("injected write failure")

// failer fails the writes of the events it is told to, through
// Config.FailWrite.
type failer struct {
	mu  sync.Mutex
	all bool
	ids map[string]bool
}

func (fl *failer) failWrite(ev *rooms.Event, _ []byte) error {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	if fl.all || fl.ids[ev.ID()] {
		return errInjected
	}
	return nil
}

func (fl *failer) fail(id string) {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	if fl.ids == nil {
		fl.ids = map[string]bool{}
	}
	fl.ids[id] = true
}

func (fl *failer) failAll(on bool) {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	fl.all = on
}

// TestAFailedWriteRollsTheHeadBackToTheStore: memory moves ahead of the
// disk while a write is in flight; when the write fails, Committed
// carries the error, the engine forgets the event, and the room's head
// becomes what the store holds again, whether the background roll-back
// or the room's next admission gets there first.
func TestAFailedWriteRollsTheHeadBackToTheStore(t *testing.T) {
	cases := []struct {
		name string
		// settle runs after the failure is reported, before the check.
		settle func(f *fixture, r *dag.Room, lost *rooms.Event, head []string)
	}{
		{
			name: "the background roll-back restores the stored head",
			settle: func(f *fixture, r *dag.Room, lost *rooms.Event, head []string) {
				waitFor(f.t, "the roll-back", func() bool {
					return !f.e.Known(lost.ID()) && slices.Equal(r.Head().Ext, head)
				})
			},
		},
		{
			name:   "the next admission rolls back first",
			settle: func(*fixture, *dag.Room, *rooms.Event, []string) {},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fl := &failer{}
			f := newFixture(t, func(cfg *dag.Config) { cfg.FailWrite = fl.failWrite })
			b, evs := setupRoom(t, rooms.V12)
			r := f.room(b)
			f.admit(r, evs...)
			head := *r.Head()
			old := b.fork()

			lost := b.msg(carol, "lost")
			fl.fail(lost.ID())
			out, err := f.e.Admit(r, lost, dag.Opts{})
			if err != nil {
				t.Fatalf("Admit: %v", err)
			}
			if err := <-out.Committed; !errors.Is(err, errInjected) {
				t.Fatalf("Committed: %v, want the injected failure", err)
			}
			c.settle(f, r, lost, head.Ext)

			next := old.msg(dave, "kept")
			f.admit(r, next)
			if f.e.Known(lost.ID()) {
				t.Error("the engine still knows the event whose write failed")
			}
			if _, ok := f.stored(lost.ID()); ok {
				t.Error("the event whose write failed is stored")
			}
			h := r.Head()
			if !slices.Equal(h.Ext, ids(next)) {
				t.Errorf("extremities %v, want the next event only (not the lost one)", h.Ext)
			}
			if rr := f.storedRoom(r.ID); !slices.Equal(rr.Extremities, h.Ext) || rr.State != h.StateID {
				t.Errorf("stored head %v %s, in memory %v %s", rr.Extremities, rr.State, h.Ext, h.StateID)
			}
			// The lost event, offered again once the disk works, is admitted.
			fl.failAll(false)
			fl.mu.Lock()
			delete(fl.ids, lost.ID())
			fl.mu.Unlock()
			if out := f.admitted(r, lost); out.Rejected != nil {
				t.Errorf("the lost event offered again: %v", out.Rejected)
			}
			if h := r.Head(); !sameSet(h.Ext, ids(next, lost)) {
				t.Errorf("extremities %v, want both messages", h.Ext)
			}
		})
	}
}

// TestAFailedSendLeavesNothingBehind: Send waits for the write; when it
// fails, Send returns the error, nothing is published, and a retry of the
// same client transaction makes a new event once the disk works.
func TestAFailedSendLeavesNothingBehind(t *testing.T) {
	fl := &failer{}
	var mu sync.Mutex
	var published []string
	f := newFixture(t, func(cfg *dag.Config) {
		cfg.FailWrite = fl.failWrite
		cfg.Publish = func(_ *dag.Room, ev *rooms.Event) {
			mu.Lock()
			defer mu.Unlock()
			published = append(published, ev.ID())
		}
	})
	r, owner := localRoom(t, f)
	head := *r.Head()
	ctx := t.Context()
	body := json.RawMessage(`{"msgtype":"m.text","body":"hi"}`)

	fl.failAll(true)
	if _, err := f.e.Send(ctx, r, owner, "m.room.message", nil, body, "txn1", "dev"); !errors.Is(err, errInjected) {
		t.Fatalf("Send: %v, want the injected failure", err)
	}
	fl.failAll(false)
	mu.Lock()
	if len(published) != 0 {
		t.Errorf("published %v", published)
	}
	mu.Unlock()
	ev, err := f.e.Send(ctx, r, owner, "m.room.message", nil, body, "txn1", "dev")
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	if !slices.Equal(ev.PrevEvents(), head.Ext) {
		t.Errorf("the retry follows %v, want the stored head %v", ev.PrevEvents(), head.Ext)
	}
	again, err := f.e.Send(ctx, r, owner, "m.room.message", nil, body, "txn1", "dev")
	if err != nil || again.ID() != ev.ID() {
		t.Errorf("a second retry: %v, %v; want the same event %s", again, err, ev.ID())
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(published, ids(ev)) {
		t.Errorf("published %v, want the retried event once", published)
	}
}

// TestAFailedCreateRoomLeavesNoRoom: CreateRoom commits the room's events
// in one transaction: when it fails, neither the engine nor the store
// holds the room.
func TestAFailedCreateRoomLeavesNoRoom(t *testing.T) {
	fl := &failer{all: true}
	f := newFixture(t, func(cfg *dag.Config) { cfg.FailWrite = fl.failWrite })
	owner := serverL.user("owner")
	_, err := f.e.CreateRoom(rooms.V12, owner, []byte(`{"room_version":"12"}`), []dag.Step{
		{Type: "m.room.member", StateKey: owner, Content: []byte(`{"membership":"join"}`)},
	})
	if !errors.Is(err, errInjected) {
		t.Fatalf("CreateRoom: %v, want the injected failure", err)
	}
	if n := f.e.RoomCount(); n != 0 {
		t.Errorf("the engine holds %d rooms", n)
	}
	var recs []*store.RoomRecord
	f.st.View(func(t *store.Txn) error {
		var err error
		recs, err = t.Rooms()
		return err
	})
	if len(recs) != 0 {
		t.Errorf("the store holds %d rooms", len(recs))
	}
}

// localRoom is a room created on the fixture's engine by a local user.
func localRoom(t *testing.T, f *fixture) (*dag.Room, string) {
	t.Helper()
	owner := serverL.user("owner")
	r, err := f.e.CreateRoom(rooms.V12, owner, []byte(`{"room_version":"12"}`), []dag.Step{
		{Type: "m.room.member", StateKey: owner, Content: []byte(`{"membership":"join"}`)},
		{Type: "m.room.power_levels", Content: []byte(`{"users_default":0,"state_default":50}`)},
		{Type: "m.room.join_rules", Content: []byte(`{"join_rule":"invite"}`)},
	})
	if err != nil {
		t.Fatal(err)
	}
	return r, owner
}

// TestReopeningRestoresEveryRoomsHead: after the store is closed and
// opened again, Load brings back each room's extremities, state, depth
// and lowest history order as they were, and new events build on them.
func TestReopeningRestoresEveryRoomsHead(t *testing.T) {
	f := newFixture(t, nil)
	local, owner := localRoom(t, f)
	topic, err := f.e.Send(t.Context(), local, owner, "m.room.topic", rooms.NewStateKey(""), []byte(`{"topic":"kept"}`), "t", "d")
	if err != nil {
		t.Fatal(err)
	}
	// A peer's room left forked in two.
	left, evs := setupRoom(t, rooms.V11)
	forked := f.room(left)
	f.admit(forked, evs...)
	right := left.fork()
	f.admit(forked, left.msg(bob, "left"), right.add(bob, "m.room.topic", "", `{"topic":"right"}`))
	if len(forked.Head().Ext) != 2 {
		t.Fatalf("extremities %v, want two", forked.Head().Ext)
	}
	// A room joined late, with backfilled history.
	late, lateRoom, _, _, missed, _ := joinedLate(t)
	slices.Reverse(missed)
	if _, err := late.e.PlaceHistory(lateRoom, missed); err != nil {
		t.Fatal(err)
	}

	for _, fx := range []*fixture{f, late} {
		heads := map[string]dag.Head{}
		for _, r := range fx.e.Rooms() {
			heads[r.ID] = *r.Head()
		}
		loaded := fx.reopen()
		if len(loaded) != len(heads) {
			t.Fatalf("loaded %d rooms, had %d", len(loaded), len(heads))
		}
		for _, r := range loaded {
			want, ok := heads[r.ID]
			got := r.Head()
			switch {
			case !ok:
				t.Errorf("loaded a room %s that was not there", r.ID)
			case !slices.Equal(got.Ext, want.Ext) || got.StateID != want.StateID || got.Depth != want.Depth || got.MinOrder != want.MinOrder:
				t.Errorf("room %s: head %v %s %d %d, was %v %s %d %d", r.ID, got.Ext, got.StateID, got.Depth, got.MinOrder, want.Ext, want.StateID, want.Depth, want.MinOrder)
			case !maps.Equal(got.State, want.State):
				t.Errorf("room %s: state differs:%s", r.ID, stateDiff(got.State, want.State))
			}
			if fx.e.Room(r.ID) != r {
				t.Errorf("room %s is not registered", r.ID)
			}
		}
	}

	// New events build on the loaded heads.
	local = f.e.Room(local.ID)
	before := local.Head().Ext
	ev, err := f.e.Send(t.Context(), local, owner, "m.room.message", nil, []byte(`{"body":"after"}`), "t2", "d")
	if err != nil || !slices.Equal(ev.PrevEvents(), before) {
		t.Fatalf("send after reopening: %v, prevs %v, want %v", err, ev.PrevEvents(), before)
	}
	// The transaction sent before the reopening is remembered.
	if again, err := f.e.Send(t.Context(), local, owner, "m.room.topic", rooms.NewStateKey(""), []byte(`{"topic":"kept"}`), "t", "d"); err != nil || again.ID() != topic.ID() {
		t.Errorf("retried transaction after reopening: %v, %v; want the first event %s", again, err, topic.ID())
	}
	forked = f.e.Room(forked.ID)
	left.merge(right, left.state)
	m := left.msg(alice, "merged after the restart")
	f.admit(forked, m)
	if h := forked.Head(); !slices.Equal(h.Ext, ids(m)) {
		t.Errorf("forked room after the merge: %v", h.Ext)
	}
}

// TestMemoryRunsAheadOfTheDiskWhileAWriteIsInFlight: while an event's
// write is held up, the engine already builds on it (the next event is
// admitted on top), the store does not hold it yet, and a second
// admission of it waits for its write. When the write ends, every event
// built on it shares its fate.
func TestMemoryRunsAheadOfTheDiskWhileAWriteIsInFlight(t *testing.T) {
	for _, result := range []error{nil, errInjected} {
		name := "the held write succeeds and both events are stored"
		if result != nil {
			name = "the held write fails and the event built on it is dropped too"
		}
		t.Run(name, func(t *testing.T) {
			var held atomic.Pointer[string]
			entered, release := make(chan struct{}), make(chan struct{})
			var once sync.Once
			f := newFixture(t, func(cfg *dag.Config) {
				cfg.FailWrite = func(ev *rooms.Event, _ []byte) error {
					if id := held.Load(); id == nil || *id != ev.ID() {
						return nil
					}
					first := false
					once.Do(func() { first = true })
					if first {
						close(entered)
						<-release
					}
					return result
				}
			})
			released := false
			defer func() {
				if !released {
					close(release)
				}
			}()
			b, evs := setupRoom(t, rooms.V12)
			r := f.room(b)
			f.admit(r, evs...)
			head := *r.Head()

			x := b.msg(carol, "held")
			id := x.ID()
			held.Store(&id)
			outX, err := f.e.Admit(r, x, dag.Opts{})
			if err != nil || outX.Rejected != nil {
				t.Fatalf("admit: %v %v", err, outX)
			}
			select {
			case <-entered:
			case <-time.After(10 * time.Second):
				t.Fatal("the write never started")
			}
			if !f.e.Known(x.ID()) || !slices.Equal(r.Head().Ext, ids(x)) {
				t.Errorf("while its write is held: known %v, extremities %v; want the event as the head", f.e.Known(x.ID()), r.Head().Ext)
			}
			if _, ok := f.stored(x.ID()); ok {
				t.Error("the store holds an event whose write has not ended")
			}
			dup, err := f.e.Admit(r, x, dag.Opts{})
			if err != nil {
				t.Fatalf("second admission: %v", err)
			}
			select {
			case err := <-dup.Committed:
				t.Errorf("the second admission reported %v before the write ended", err)
			default:
			}
			y := b.msg(dave, "on top of the held one")
			outY, err := f.e.Admit(r, y, dag.Opts{})
			if err != nil || outY.Rejected != nil {
				t.Fatalf("admit the next event: %v %v", err, outY)
			}

			close(release)
			released = true
			for what, c := range map[string]<-chan error{"held event": outX.Committed, "second admission": dup.Committed} {
				if err := <-c; !errors.Is(err, result) {
					t.Errorf("%s: write result %v, want %v", what, err, result)
				}
			}
			errY := <-outY.Committed
			if result == nil {
				if errY != nil {
					t.Fatalf("next event: %v", errY)
				}
				for _, ev := range []*rooms.Event{x, y} {
					if _, ok := f.stored(ev.ID()); !ok {
						t.Errorf("%s not stored", ev.ID())
					}
				}
				if rr := f.storedRoom(r.ID); !slices.Equal(rr.Extremities, ids(y)) {
					t.Errorf("stored extremities %v, want the next event", rr.Extremities)
				}
				return
			}
			if errY == nil {
				t.Fatal("the event built on a failed write was written")
			}
			waitFor(t, "the roll-back", func() bool {
				return !f.e.Known(x.ID()) && !f.e.Known(y.ID()) && slices.Equal(r.Head().Ext, head.Ext)
			})
			if _, ok := f.stored(y.ID()); ok {
				t.Error("the event built on a failed write is stored")
			}
		})
	}
}
