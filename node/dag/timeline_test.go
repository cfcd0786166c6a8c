package dag_test

import (
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/parley-p2p/parley/node/dag"
	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/rooms"
)

// hookCall is one call of Config.OnTimeline a test heard.
type hookCall struct {
	id    string
	plain string
	how   dag.Arrival
}

// timelineHook records the hook's calls and has each write a notice for
// "@hook" at the order it is given, failing the write of the event
// failID.
type timelineHook struct {
	mu     sync.Mutex
	calls  []hookCall
	failID string
}

func (h *timelineHook) hook(r *dag.Room, ev *rooms.Event, plain []byte, how dag.Arrival) func(*store.Txn, uint64) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls = append(h.calls, hookCall{ev.ID(), string(plain), how})
	fail := ev.ID() == h.failID
	return func(t *store.Txn, order uint64) error {
		if fail {
			return errors.New("the hook's write fails")
		}
		return t.PutNotice("@hook", r.ID, &store.Notice{Order: order, Notify: true, Thread: ev.ID(), TS: int64(len(plain))})
	}
}

func (h *timelineHook) heard() []hookCall {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]hookCall(nil), h.calls...)
}

// notices maps the event each of @hook's notices was written for (its
// Thread) to its order.
func notices(t *testing.T, f *fixture, roomID string) map[string]store.Notice {
	t.Helper()
	out := map[string]store.Notice{}
	if err := f.st.View(func(tx *store.Txn) error {
		return tx.Notices("@hook", roomID, 0, ^uint64(0), func(n store.Notice) bool {
			out[n.Thread] = n
			return true
		})
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestOnTimelineWritesWithTheEvent: the hook hears each event accepted
// into the live timeline, and no rejected one; its write is part of the
// event's own transaction, given the event's timeline order (so a
// failure of either stores neither); and a plain view that comes late
// is heard again, marked late, at the event's first order.
func TestOnTimelineWritesWithTheEvent(t *testing.T) {
	h := &timelineHook{}
	f, _ := newCodecFixture(t, func(cfg *dag.Config) { cfg.OnTimeline = h.hook })
	b, evs := setupRoom(t, rooms.V12)
	r := f.room(b)
	f.admit(r, evs...)
	withheld := b.sealedMsg(bob, "withheld key")
	f.admit(r, withheld)

	t.Run("each accepted event, with the order it is stored at", func(t *testing.T) {
		got := notices(t, f, r.ID)
		for _, ev := range append(evs, withheld) {
			rec, ok := f.stored(ev.ID())
			if !ok {
				t.Fatalf("%s not stored", ev.ID())
			}
			if n, ok := got[ev.ID()]; !ok || n.Order != rec.TimelineOrder() {
				t.Errorf("%s %s: notice %+v, want one at order %d", ev.Type(), ev.ID(), n, rec.TimelineOrder())
			}
		}
		if calls := h.heard(); len(calls) != len(evs)+1 || calls[len(calls)-1].how != dag.Live || calls[len(calls)-1].plain != "" {
			t.Errorf("calls = %+v, want %d, the withheld one not late and without a plain view", calls, len(evs)+1)
		}
	})
	t.Run("no rejected event", func(t *testing.T) {
		before := len(h.heard())
		out, err := f.e.Admit(r, b.build(eve, "m.room.message", "-", `{"body":"let me in"}`), dag.Opts{})
		if err != nil {
			t.Fatal(err)
		}
		<-out.Committed
		if out.Rejected == nil {
			t.Fatal("a stranger's message was accepted")
		}
		if n := len(h.heard()); n != before {
			t.Fatalf("the hook heard %d calls for a rejected event", n-before)
		}
	})
	t.Run("the hook's write fails the event's", func(t *testing.T) {
		ev := b.msg(bob, "doomed")
		h.mu.Lock()
		h.failID = ev.ID()
		h.mu.Unlock()
		out, err := f.e.Admit(r, ev, dag.Opts{})
		if err != nil {
			t.Fatal(err)
		}
		if err := <-out.Committed; err == nil {
			t.Fatal("the event's write succeeded though the hook's failed")
		}
		if _, ok := f.stored(ev.ID()); ok {
			t.Fatal("the event was stored without the hook's write")
		}
		if err := f.e.RollBack(r); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("a late plain view, at the event's first order", func(t *testing.T) {
		first := notices(t, f, r.ID)[withheld.ID()]
		plain := plainJSON("m.room.message", json.RawMessage(`{"body":"withheld key","msgtype":"m.text"}`))
		if err := f.e.SetPlain(r, withheld.ID(), plain); err != nil {
			t.Fatal(err)
		}
		calls := h.heard()
		if last := calls[len(calls)-1]; last.id != withheld.ID() || last.how != dag.LatePlain || last.plain != string(plain) {
			t.Fatalf("the last call = %+v, want the withheld event, late, with its plain view", last)
		}
		n := notices(t, f, r.ID)[withheld.ID()]
		if n.Order != first.Order || n.TS != int64(len(plain)) {
			t.Fatalf("notice after the plain view = %+v, want order %d, rewritten", n, first.Order)
		}
	})
}

// TestOnTimelineHearsHistory: backfilled events reach the hook as
// History, and its write runs in theirs, at each one's history order.
func TestOnTimelineHearsHistory(t *testing.T) {
	h := &timelineHook{}
	f, r, _, _, missed, latest := joinedLateWith(t, func(cfg *dag.Config) { cfg.OnTimeline = h.hook })
	before := len(h.heard())
	newestFirst := slices.Clone(missed)
	slices.Reverse(newestFirst)
	if n, err := f.e.PlaceHistory(r, newestFirst); err != nil || n != len(missed) {
		t.Fatalf("PlaceHistory: %d, %v; want %d placed", n, err, len(missed))
	}
	calls := h.heard()[before:]
	if len(calls) != len(missed) {
		t.Fatalf("the hook heard %d calls for %d backfilled events", len(calls), len(missed))
	}
	for i, c := range calls {
		if c.id != newestFirst[i].ID() || c.how != dag.History {
			t.Errorf("call %d = %+v, want %s as History", i, c, newestFirst[i].ID())
		}
	}
	got := notices(t, f, r.ID)
	for _, ev := range missed {
		rec, _ := f.stored(ev.ID())
		if n, ok := got[ev.ID()]; !ok || n.Order != rec.Order || rec.Order >= store.LiveBase {
			t.Errorf("%s: notice %+v, want one at its history order %d", ev.ID(), n, rec.Order)
		}
	}
	if _, ok := got[latest.ID()]; !ok {
		t.Errorf("the live event has no notice")
	}
}

// TestMemberEventReadsMembershipAndPosition: MemberEvent gives each
// stored member event's membership and stream position, the same when
// asked again (from its own cache), and an error for an unknown event.
func TestMemberEventReadsMembershipAndPosition(t *testing.T) {
	f := newFixture(t, nil)
	b, evs := setupRoom(t, rooms.V12)
	r := f.room(b)
	f.admit(r, evs...)
	seen := 0
	for _, ev := range evs {
		if ev.Type() != "m.room.member" {
			continue
		}
		seen++
		rec, ok := f.stored(ev.ID())
		if !ok {
			t.Fatalf("%s not stored", ev.ID())
		}
		for range 2 {
			m, err := f.e.MemberEvent(nil, ev.ID())
			if err != nil || m.Membership != ev.Membership() || m.Pos == 0 || m.Pos != rec.Pos {
				t.Fatalf("MemberEvent(%s) = %+v, %v; want %q at position %d", ev.ID(), m, err, ev.Membership(), rec.Pos)
			}
		}
	}
	if seen == 0 {
		t.Fatal("the room has no member events")
	}
	if _, err := f.e.MemberEvent(nil, "$unknown"); err == nil {
		t.Fatal("an unknown event has a membership")
	}
}
