package dag_test

import (
	"errors"
	"maps"
	"slices"
	"testing"

	"github.com/parley-p2p/parley/node/dag"
	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/rooms"
)

// joinedLate is a room this node joined after carol's first messages: it
// holds the room's setup events as outliers (the auth chain and state a
// join fetches) and the latest message, admitted with the state before
// it as send_join reports it. It returns the fixture, the room, the
// setup events, the three messages it missed and the latest one.
func joinedLate(t *testing.T) (*fixture, *dag.Room, *branch, []*rooms.Event, []*rooms.Event, *rooms.Event) {
	t.Helper()
	return joinedLateWith(t, nil)
}

// joinedLateWith is joinedLate on an engine whose config adjust changes.
func joinedLateWith(t *testing.T, adjust func(*dag.Config)) (*fixture, *dag.Room, *branch, []*rooms.Event, []*rooms.Event, *rooms.Event) {
	t.Helper()
	f := newFixture(t, adjust)
	b, evs := setupRoom(t, rooms.V12)
	r := f.room(b)
	missed := []*rooms.Event{b.msg(carol, "one"), b.msg(carol, "two"), b.msg(carol, "three")}
	if err := f.e.StoreOutliers(r, evs); err != nil {
		t.Fatal(err)
	}
	state := stateOf(slices.Collect(maps.Values(b.state))...)
	latest := b.msg(carol, "four")
	out, err := f.e.Admit(r, latest, dag.Opts{StateBefore: state})
	if err != nil || out.Rejected != nil {
		t.Fatalf("admit the latest message: %v %v", err, out)
	}
	if err := <-out.Committed; err != nil {
		t.Fatal(err)
	}
	return f, r, b, evs, missed, latest
}

func (f *fixture) timeline(roomID string) []string {
	f.t.Helper()
	var tl []store.TimelineEntry
	if err := f.st.View(func(t *store.Txn) error {
		var err error
		tl, err = t.Timeline(roomID, 0, 0, true, 0)
		return err
	}); err != nil {
		f.t.Fatal(err)
	}
	var out []string
	for _, e := range tl {
		out = append(out, e.EventID)
	}
	return out
}

// TestHistoryIsPlacedBelowTheTimeline: backfilled events, newest first,
// get decreasing timeline orders below everything the node saw live, so
// the timeline reads oldest first; the room's head does not move.
func TestHistoryIsPlacedBelowTheTimeline(t *testing.T) {
	f, r, _, evs, missed, latest := joinedLate(t)
	head := *r.Head()
	if got := f.timeline(r.ID); !slices.Equal(got, ids(latest)) {
		t.Fatalf("timeline before backfill %v, want the latest message only", got)
	}

	newestFirst := slices.Clone(missed)
	slices.Reverse(newestFirst)
	n, err := f.e.PlaceHistory(r, newestFirst)
	if err != nil || n != len(missed) {
		t.Fatalf("PlaceHistory: %d, %v; want %d placed", n, err, len(missed))
	}
	live, _ := f.stored(latest.ID())
	prev := live.TimelineOrder()
	for _, ev := range newestFirst {
		rec, ok := f.stored(ev.ID())
		if !ok {
			t.Fatalf("%s not stored", ev.ID())
		}
		if rec.Order == 0 || rec.Order >= prev || rec.Order >= store.LiveBase || rec.Pos != 0 {
			t.Errorf("%s placed at order %d (pos %d), want below %d and below the live base", ev.ID(), rec.Order, rec.Pos, prev)
		}
		prev = rec.Order
	}
	if rr := f.storedRoom(r.ID); rr.MinOrder != prev || r.Head().MinOrder != prev {
		t.Errorf("room's lowest order: stored %d, in memory %d, want %d", rr.MinOrder, r.Head().MinOrder, prev)
	}

	// The setup events, held as outliers, join the timeline below.
	setupNewestFirst := slices.Clone(evs)
	slices.Reverse(setupNewestFirst)
	if n, err := f.e.PlaceHistory(r, setupNewestFirst); err != nil || n != len(evs) {
		t.Fatalf("PlaceHistory of the outliers: %d, %v", n, err)
	}
	want := ids(append(append(slices.Clone(evs), missed...), latest)...)
	if got := f.timeline(r.ID); !slices.Equal(got, want) {
		t.Errorf("timeline %d events, want the room in order (%d)", len(got), len(want))
	}
	// Placing them again adds nothing.
	if n, err := f.e.PlaceHistory(r, newestFirst); err != nil || n != 0 {
		t.Errorf("PlaceHistory again: %d, %v; want nothing placed", n, err)
	}
	if h := r.Head(); !slices.Equal(h.Ext, head.Ext) || h.StateID != head.StateID || h.Depth != head.Depth {
		t.Errorf("history moved the head: %v, was %v", h.Ext, head.Ext)
	}
}

// TestHistoryThatFailsItsAuthEventsIsNotPlaced: a backfilled event is
// checked against its own auth events; one that fails is stored as
// rejected and takes no place in the timeline; one whose auth events the
// node lacks is an error naming them.
func TestHistoryThatFailsItsAuthEventsIsNotPlaced(t *testing.T) {
	f, r, b, _, missed, latest := joinedLate(t)
	// carol (level 0) may not rename the room.
	bad := b.build(carol, "m.room.name", "", `{"name":"carol's"}`)
	n, err := f.e.PlaceHistory(r, []*rooms.Event{missed[2], bad, missed[1], missed[0]})
	if err != nil || n != 3 {
		t.Fatalf("PlaceHistory: %d, %v; want the three messages placed", n, err)
	}
	rec, ok := f.stored(bad.ID())
	if !ok || rec.Rejected == "" || rec.TimelineOrder() != 0 {
		t.Errorf("the bad event stored %v as %+v, want rejected and outside the timeline", ok, rec)
	}
	if got := f.timeline(r.ID); !slices.Equal(got, ids(append(slices.Clone(missed), latest)...)) {
		t.Errorf("timeline %v", got)
	}

	c := b.fork()
	rename := c.add(carol, "m.room.member", carol, `{"membership":"join","displayname":"C"}`)
	orphan := c.msg(carol, "after a rename the node never saw")
	_, err = f.e.PlaceHistory(r, []*rooms.Event{orphan})
	var miss *dag.Missing
	if !errors.As(err, &miss) || !slices.Equal(miss.Auth, ids(rename)) {
		t.Errorf("PlaceHistory without the auth event: %v, want *Missing naming %s", err, rename.ID())
	}
	if _, ok := f.stored(orphan.ID()); ok {
		t.Error("an event that could not be checked is stored")
	}
}

// TestASoftFailedEventStaysOutOfTheTimelineWhenBackfilled: an event this
// node soft-failed is hidden from clients; a peer that accepted it may
// send it back as history, and it must stay hidden.
func TestASoftFailedEventStaysOutOfTheTimelineWhenBackfilled(t *testing.T) {
	f := newFixture(t, nil)
	b, evs := setupRoom(t, rooms.V12)
	r := f.room(b)
	f.admit(r, evs...)
	old := b.fork()
	f.admit(r, b.member(alice, carol, "ban"))
	late := old.msg(carol, "late")
	if out := f.admitted(r, late); out.Rejected == nil || !out.Rejected.Soft {
		t.Fatalf("carol's message: %+v, want soft-failed", out.Rejected)
	}
	before := f.timeline(r.ID)
	n, err := f.e.PlaceHistory(r, []*rooms.Event{late})
	if err != nil {
		t.Fatal(err)
	}
	if rec, _ := f.stored(late.ID()); n != 0 || rec.TimelineOrder() != 0 {
		t.Errorf("backfilled soft-failed event: %d placed, order %d; want it kept out of the timeline", n, rec.TimelineOrder())
	}
	if got := f.timeline(r.ID); !slices.Equal(got, before) {
		t.Errorf("timeline grew from %d to %d events", len(before), len(got))
	}
}

// TestAnEventAdmittedLiveIsNotPlacedAgainAsHistory: a peer's backfill may
// send back an event this node admitted live (a gap fill can reach past
// the node's join); it keeps its one place in the timeline.
func TestAnEventAdmittedLiveIsNotPlacedAgainAsHistory(t *testing.T) {
	f, r, _, _, missed, latest := joinedLate(t)
	newestFirst := []*rooms.Event{latest, missed[2], missed[1], missed[0]}
	n, err := f.e.PlaceHistory(r, newestFirst)
	if err != nil || n != len(missed) {
		t.Fatalf("PlaceHistory: %d, %v; want the %d missed messages placed", n, err, len(missed))
	}
	if got := f.timeline(r.ID); !slices.Equal(got, ids(append(slices.Clone(missed), latest)...)) {
		t.Errorf("timeline %v, want the missed messages then the live one, once each", got)
	}
}
