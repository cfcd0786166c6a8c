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

// TestAnEventThatCannotBeCheckedYetNamesWhatToFetch: an event whose auth
// or prev events this node does not hold is not stored; the error
// *Missing names them, so one round trip to a peer fetches both.
func TestAnEventThatCannotBeCheckedYetNamesWhatToFetch(t *testing.T) {
	cases := []struct {
		name string
		// make returns the event and the auth and prev events it lacks.
		make func(f *fixture, r *dag.Room, b *branch) (ev *rooms.Event, auth, prev []string)
	}{
		{
			name: "an unknown prev event is named as a prev event",
			make: func(f *fixture, r *dag.Room, b *branch) (*rooms.Event, []string, []string) {
				gap := b.msg(carol, "not seen")
				return b.msg(carol, "seen"), nil, ids(gap)
			},
		},
		{
			name: "an unknown auth event is named as an auth event",
			make: func(f *fixture, r *dag.Room, b *branch) (*rooms.Event, []string, []string) {
				c := b.fork()
				rename := c.add(carol, "m.room.member", carol, `{"membership":"join","displayname":"C"}`)
				c.tips = b.tips // the rename is in carol's state, not before her message
				return c.build(carol, "m.room.message", "-", `{"body":"renamed"}`), ids(rename), nil
			},
		},
		{
			name: "an event that is both auth and prev event is named twice",
			make: func(f *fixture, r *dag.Room, b *branch) (*rooms.Event, []string, []string) {
				rename := b.add(carol, "m.room.member", carol, `{"membership":"join","displayname":"C"}`)
				return b.msg(carol, "renamed"), ids(rename), ids(rename)
			},
		},
		{
			name: "a prev event stored as an outlier, without state, is named as a prev event",
			make: func(f *fixture, r *dag.Room, b *branch) (*rooms.Event, []string, []string) {
				gap := b.msg(carol, "fetched as an outlier")
				out, err := f.e.StoreOutlier(r, gap, nil)
				if err != nil || <-out.Committed != nil {
					f.t.Fatalf("store outlier: %v", err)
				}
				return b.msg(carol, "after it"), nil, ids(gap)
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, nil)
			b, evs := setupRoom(t, rooms.V12)
			r := f.room(b)
			f.admit(r, evs...)
			ev, auth, prev := c.make(f, r, b)
			before := *r.Head()

			_, err := f.e.Admit(r, ev, dag.Opts{})
			var miss *dag.Missing
			if !errors.As(err, &miss) {
				t.Fatalf("Admit: %v, want *Missing", err)
			}
			if !sameSet(miss.Auth, auth) || !sameSet(miss.Prev, prev) {
				t.Errorf("missing auth %v prev %v, want auth %v prev %v", miss.Auth, miss.Prev, auth, prev)
			}
			if _, ok := f.stored(ev.ID()); ok {
				t.Error("an event that could not be checked is stored")
			}
			if h := r.Head(); !slices.Equal(h.Ext, before.Ext) {
				t.Errorf("head moved to %v", h.Ext)
			}
		})
	}
}

// TestARoomsFirstEventWithoutItsCreateEventAsksForIt: in a v12 room the
// create event is implied by the room ID and cited by no event; a node
// that lacks it must still be told to fetch it.
func TestARoomsFirstEventWithoutItsCreateEventAsksForIt(t *testing.T) {
	f := newFixture(t, nil)
	b, evs := setupRoom(t, rooms.V12)
	r := f.room(b)
	_, err := f.e.Admit(r, evs[1], dag.Opts{})
	var miss *dag.Missing
	if !errors.As(err, &miss) || !slices.Contains(miss.Auth, b.create.ID()) {
		t.Fatalf("Admit alice's join before the create event: %v, want *Missing naming %s", err, b.create.ID())
	}
	if !slices.Equal(miss.Prev, ids(b.create)) {
		t.Errorf("missing prev %v, want the create event", miss.Prev)
	}
}

// TestOutliersAreStoredOutsideTheTimeline: events fetched as auth chain or
// state are checked against their own auth events and stored as outliers:
// no timeline position, the head untouched; with the state a peer
// reported after them, later events can build on them.
func TestOutliersAreStoredOutsideTheTimeline(t *testing.T) {
	for _, version := range versions {
		t.Run("v"+version, func(t *testing.T) {
			f := newFixture(t, nil)
			b, evs := setupRoom(t, version)
			r := f.room(b)
			// The auth chain of the room's latest event, as a joining node
			// fetches it, oldest first.
			if err := f.e.StoreOutliers(r, evs[:len(evs)-1]); err != nil {
				t.Fatal(err)
			}
			for _, ev := range evs[:len(evs)-1] {
				rec, ok := f.stored(ev.ID())
				if !ok || !rec.Outlier || rec.Pos != 0 || rec.Rejected != "" || rec.StateAfter != "" {
					t.Fatalf("%s stored %v as %+v, want an accepted outlier without state", ev.Type(), ok, rec)
				}
			}
			if h := r.Head(); len(h.Ext) != 0 || h.StateID != "" {
				t.Errorf("outliers moved the head to %v %s", h.Ext, h.StateID)
			}

			// The last event with the state after it: later events build
			// on it as on any other.
			last := evs[len(evs)-1]
			state := store.StateMap{}
			for _, ev := range b.state {
				state[ev.Key()] = ev.ID()
			}
			out, err := f.e.StoreOutlier(r, last, state)
			if err != nil || <-out.Committed != nil || out.Info.Rec.StateAfter == "" {
				t.Fatalf("store outlier with state: %v", err)
			}
			got, err := f.e.Snapshot(out.Info.Rec.StateAfter)
			if err != nil || !maps.Equal(got, state) {
				t.Errorf("state after the outlier %v (%v), want %v", got, err, state)
			}
			msg := b.msg(carol, "on top of the outlier")
			if o := f.admitted(r, msg); o.Rejected != nil {
				t.Fatalf("message on the outlier: %v", o.Rejected)
			}
			if h := r.Head(); !slices.Equal(h.Ext, ids(msg)) || !maps.Equal(h.State, state) {
				t.Errorf("head %v, want the message with the reported state", h.Ext)
			}

			// Storing it again adds nothing; a rejected outlier is kept
			// as rejected.
			again, err := f.e.StoreOutlier(r, last, state)
			if err != nil || again.Info.Rec.StateAfter != out.Info.Rec.StateAfter {
				t.Errorf("second store: %v", err)
			}
			bad := b.build(carol, "m.room.name", "", `{"name":"carol can't"}`)
			o, err := f.e.StoreOutlier(r, bad, nil)
			if err != nil || <-o.Committed != nil {
				t.Fatalf("store bad outlier: %v", err)
			}
			if rec, ok := f.stored(bad.ID()); !ok || rec.Rejected == "" || !rec.Outlier {
				t.Errorf("bad outlier stored %v as %+v, want rejected", ok, rec)
			}
		})
	}
}

// TestAnOutlierWhoseAuthEventIsMissingIsNotStored: an outlier is checked
// against its own auth events, which must be stored first.
func TestAnOutlierWhoseAuthEventIsMissingIsNotStored(t *testing.T) {
	f := newFixture(t, nil)
	b, evs := setupRoom(t, rooms.V12)
	r := f.room(b)
	// Everything but carol's join.
	carolJoin := b.state[rooms.StateKey{Type: "m.room.member", StateKey: carol}]
	var some []*rooms.Event
	for _, ev := range evs {
		if ev != carolJoin {
			some = append(some, ev)
		}
	}
	if err := f.e.StoreOutliers(r, some); err != nil {
		t.Fatal(err)
	}
	msg := b.msg(carol, "hi")
	_, err := f.e.StoreOutlier(r, msg, nil)
	var miss *dag.Missing
	if !errors.As(err, &miss) || !slices.Equal(miss.Auth, ids(carolJoin)) {
		t.Fatalf("StoreOutlier: %v, want *Missing naming carol's join", err)
	}
	if _, ok := f.stored(msg.ID()); ok {
		t.Error("the outlier is stored")
	}
	if err := f.e.StoreOutliers(r, []*rooms.Event{msg}); !errors.As(err, &miss) {
		t.Errorf("StoreOutliers: %v, want *Missing", err)
	}
}
