package dag_test

import (
	"errors"
	"maps"
	"slices"
	"testing"

	"github.com/parley-p2p/parley/errs"
	"github.com/parley-p2p/parley/node/dag"
	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/rooms"
)

var versions = []string{rooms.V10, rooms.V11, rooms.V12}

// TestAdmitBuildsTheRoomFromEventsOfSeveralServers: a room made by alice
// and joined by users of three other servers is admitted event by event;
// each event enters the timeline in order, and the room's head is the
// last event with the state the events set.
func TestAdmitBuildsTheRoomFromEventsOfSeveralServers(t *testing.T) {
	for _, version := range versions {
		t.Run("v"+version, func(t *testing.T) {
			f := newFixture(t, nil)
			b, evs := setupRoom(t, version)
			r := f.room(b)
			f.admit(r, evs...)
			msg := b.msg(carol, "hello")
			out := f.admitted(r, msg)
			if out.Rejected != nil {
				t.Fatalf("message: %v", out.Rejected)
			}

			h := r.Head()
			if !slices.Equal(h.Ext, ids(msg)) {
				t.Errorf("extremities %v, want the message %s", h.Ext, msg.ID())
			}
			if h.Depth != msg.Depth() {
				t.Errorf("depth %d, want %d", h.Depth, msg.Depth())
			}
			want := store.StateMap{}
			for _, ev := range b.state {
				want[ev.Key()] = ev.ID()
			}
			if !maps.Equal(h.State, want) {
				t.Errorf("current state %v\nwant %v", h.State, want)
			}
			var last uint64
			for _, ev := range append(evs, msg) {
				rec, ok := f.stored(ev.ID())
				if !ok {
					t.Fatalf("%s %s is not stored", ev.Type(), ev.ID())
				}
				if rec.Pos <= last || rec.Rejected != "" || rec.SoftFailed != "" || rec.Outlier {
					t.Errorf("%s stored at %d after %d (rejected %q, soft-failed %q, outlier %v)", ev.Type(), rec.Pos, last, rec.Rejected, rec.SoftFailed, rec.Outlier)
				}
				last = rec.Pos
			}
			if rr := f.storedRoom(r.ID); !slices.Equal(rr.Extremities, h.Ext) || rr.State != h.StateID || rr.Pos != last {
				t.Errorf("stored room record %+v, want extremities %v, state %s, pos %d", rr, h.Ext, h.StateID, last)
			}
		})
	}
}

// rejectionCase is an event that admission refuses at one stage. make
// may admit what the event needs first (a rejected event to cite, a
// ban); it returns the event to refuse.
type rejectionCase struct {
	name  string
	stage dag.Stage
	make  func(f *fixture, r *dag.Room, b *branch) *rooms.Event
}

var rejectionCases = []rejectionCase{
	{
		name:  "an event citing a rejected auth event is rejected",
		stage: dag.StageAuthEvents,
		make: func(f *fixture, r *dag.Room, b *branch) *rooms.Event {
			// eve was never invited: her join is rejected, and a message
			// that cites it cannot stand on it.
			join := b.build(eve, "m.room.member", eve, `{"membership":"join"}`)
			if out := f.admitted(r, join); out.Rejected == nil || out.Rejected.Stage != dag.StageAuthEvents {
				f.t.Fatalf("eve's join: rejection %v, want one at the auth events", out.Rejected)
			}
			c := b.fork()
			c.state[join.Key()] = join
			return c.build(eve, "m.room.message", "-", `{"body":"let me in"}`)
		},
	},
	{
		name:  "an event citing an auth event of another room is rejected",
		stage: dag.StageAuthEvents,
		make: func(f *fixture, r *dag.Room, b *branch) *rooms.Event {
			other, evs := setupRoom(f.t, b.version)
			f.admit(f.room(other), evs...)
			c := b.fork()
			c.state[rooms.StateKey{Type: "m.room.power_levels"}] = other.state[rooms.StateKey{Type: "m.room.power_levels"}]
			return c.build(alice, "m.room.message", "-", `{"body":"wrong room"}`)
		},
	},
	{
		name:  "an event citing an auth event the selection rules do not pick is rejected",
		stage: dag.StageAuthEvents,
		make: func(f *fixture, r *dag.Room, b *branch) *rooms.Event {
			p := b.proto(alice, "m.room.message", "-", `{"body":"too many auth events"}`)
			p.AuthEvents = append(p.AuthEvents, b.state[rooms.StateKey{Type: "m.room.join_rules"}].ID())
			return b.sign(p)
		},
	},
	{
		name:  "an event its auth events do not allow is rejected",
		stage: dag.StageAuthEvents,
		make: func(f *fixture, r *dag.Room, b *branch) *rooms.Event {
			// carol has level 0; a topic needs state_default (50).
			return b.build(carol, "m.room.topic", "", `{"topic":"carol's"}`)
		},
	},
	{
		name:  "an event whose only prev event was rejected is rejected",
		stage: dag.StagePrevEvents,
		make: func(f *fixture, r *dag.Room, b *branch) *rooms.Event {
			join := b.build(eve, "m.room.member", eve, `{"membership":"join"}`)
			if out := f.admitted(r, join); out.Rejected == nil {
				f.t.Fatal("eve's join was accepted")
			}
			c := b.fork()
			c.tips = []*rooms.Event{join}
			return c.build(alice, "m.room.message", "-", `{"body":"after eve"}`)
		},
	},
	{
		name:  "an event its stale auth events allow but the state before it does not is rejected",
		stage: dag.StageStateBefore,
		make: func(f *fixture, r *dag.Room, b *branch) *rooms.Event {
			// carol is banned, then sends on top of the ban citing her
			// old join as if it still held.
			stale := b.fork()
			f.admit(r, b.member(alice, carol, "ban"))
			stale.tips, stale.depth = b.tips, b.depth
			return stale.build(carol, "m.room.message", "-", `{"body":"still here?"}`)
		},
	},
}

// TestAPeersRejectedEventIsStoredButNotUsed: an event from a peer that
// fails a check is stored with its reason, so it is not fetched and
// checked again, but it moves neither the room's head nor its timeline.
func TestAPeersRejectedEventIsStoredButNotUsed(t *testing.T) {
	for _, version := range versions {
		for _, c := range rejectionCases {
			t.Run("v"+version+"/"+c.name, func(t *testing.T) {
				f := newFixture(t, nil)
				b, evs := setupRoom(t, version)
				r := f.room(b)
				f.admit(r, evs...)
				ev := c.make(f, r, b)
				before := *r.Head()

				out := f.admitted(r, ev)
				if out.Rejected == nil || out.Rejected.Soft || out.Rejected.Stage != c.stage {
					t.Fatalf("rejection %+v, want a hard one at stage %q", out.Rejected, c.stage)
				}
				rec, ok := f.stored(ev.ID())
				if !ok {
					t.Fatal("the rejected event is not stored")
				}
				if rec.Rejected == "" || rec.Pos != 0 || rec.StateAfter != "" {
					t.Errorf("stored with rejected %q, pos %d, state after %q; want a reason, no position, no state", rec.Rejected, rec.Pos, rec.StateAfter)
				}
				if i, err := f.e.Event(ev.ID()); err != nil || i.Usable() {
					t.Errorf("engine's view: %v, usable %v; want a known, unusable event", err, err == nil && i.Usable())
				}
				h := r.Head()
				if !slices.Equal(h.Ext, before.Ext) || h.StateID != before.StateID {
					t.Errorf("head moved: extremities %v state %s, was %v %s", h.Ext, h.StateID, before.Ext, before.StateID)
				}
				if rr := f.storedRoom(r.ID); !slices.Equal(rr.Extremities, before.Ext) || rr.State != before.StateID {
					t.Errorf("stored head moved: %+v", rr)
				}
				var verdicts []*store.Verdict
				f.st.View(func(t *store.Txn) error {
					var err error
					verdicts, err = t.Verdicts(r.ID, 0)
					return err
				})
				if !slices.ContainsFunc(verdicts, func(v *store.Verdict) bool { return v.EventID == ev.ID() && !v.Soft }) {
					t.Errorf("no verdict recorded for %s among %d", ev.ID(), len(verdicts))
				}
				// A second admission of the same event is answered from
				// what is stored: still rejected.
				again, err := f.e.Admit(r, ev, dag.Opts{})
				if err != nil || again.Info.Usable() {
					t.Errorf("second admission: %v, usable %v", err, err == nil && again.Info.Usable())
				}
			})
		}
	}
}

// TestALocalRejectedEventIsNotStored: the same events, built on this
// node, are refused with the stage (Admit) or as Forbidden (AdmitLocal)
// and leave nothing behind.
func TestALocalRejectedEventIsNotStored(t *testing.T) {
	for _, c := range rejectionCases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, nil)
			b, evs := setupRoom(t, rooms.V12)
			r := f.room(b)
			f.admit(r, evs...)
			ev := c.make(f, r, b)
			before := *r.Head()

			_, err := f.e.Admit(r, ev, dag.Opts{Local: true})
			var rj *dag.Rejection
			if !errors.As(err, &rj) || rj.Stage != c.stage || rj.Soft {
				t.Fatalf("Admit: %v, want a rejection at stage %q", err, c.stage)
			}
			err = f.e.AdmitLocal(r, ev, nil)
			if errs.KindOf(err) != errs.Forbidden {
				t.Errorf("AdmitLocal: %v (kind %v), want Forbidden", err, errs.KindOf(err))
			}
			if _, ok := f.stored(ev.ID()); ok {
				t.Error("the rejected local event is stored")
			}
			if f.e.Known(ev.ID()) {
				t.Error("the engine knows the rejected local event")
			}
			if h := r.Head(); !slices.Equal(h.Ext, before.Ext) || h.StateID != before.StateID {
				t.Errorf("head moved: %v %s, was %v %s", h.Ext, h.StateID, before.Ext, before.StateID)
			}
		})
	}
}

// TestSendRefusesWhatTheRoomForbids: a local user who is not in the room,
// or lacks the level, gets Forbidden from Send, and the room is unchanged.
func TestSendRefusesWhatTheRoomForbids(t *testing.T) {
	var published []*rooms.Event
	f := newFixture(t, func(c *dag.Config) {
		c.Publish = func(_ *dag.Room, ev *rooms.Event) { published = append(published, ev) }
	})
	owner, stranger := serverL.user("owner"), serverL.user("stranger")
	r, err := f.e.CreateRoom(rooms.V12, owner, []byte(`{"room_version":"12"}`), []dag.Step{
		{Type: "m.room.member", StateKey: owner, Content: []byte(`{"membership":"join"}`)},
		{Type: "m.room.power_levels", Content: []byte(`{"users_default":0,"state_default":50}`)},
		{Type: "m.room.join_rules", Content: []byte(`{"join_rule":"invite"}`)},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if _, err := f.e.Send(ctx, r, owner, "m.room.member", rooms.NewStateKey(stranger), []byte(`{"membership":"invite"}`), "", ""); err != nil {
		t.Fatal(err)
	}
	before := *r.Head()
	cases := []struct {
		name, sender, typ string
		stateKey          *string
	}{
		{"a user who is only invited cannot send a message", stranger, "m.room.message", nil},
		{"a user who was never invited cannot send a message", serverL.user("nobody"), "m.room.message", nil},
		{"a user who was never invited cannot join an invite-only room", serverL.user("nobody"), "m.room.member", rooms.NewStateKey(serverL.user("nobody"))},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			content := []byte(`{"body":"hi"}`)
			if c.typ == "m.room.member" {
				content = []byte(`{"membership":"join"}`)
			}
			n := len(published)
			_, err := f.e.Send(ctx, r, c.sender, c.typ, c.stateKey, content, "t1", "dev")
			if errs.KindOf(err) != errs.Forbidden {
				t.Fatalf("Send: %v, want Forbidden", err)
			}
			if h := r.Head(); !slices.Equal(h.Ext, before.Ext) || h.StateID != before.StateID {
				t.Errorf("head moved to %v", h.Ext)
			}
			if len(published) != n {
				t.Error("a refused event was published")
			}
		})
	}
	var tl []store.TimelineEntry
	f.st.View(func(t *store.Txn) error {
		var err error
		tl, err = t.Timeline(r.ID, 0, 0, true, 0)
		return err
	})
	if len(tl) != 5 {
		t.Errorf("timeline holds %d events, want the 5 sent", len(tl))
	}
	if len(published) != 1 {
		t.Errorf("%d events published, want the invite only (CreateRoom publishes nothing)", len(published))
	}
}

// TestAnEventOnABranchThatPredatesABanSoftFails: carol is banned on one
// branch and sends on another that does not know it. The message passes
// its auth events and the state before it, but not the room's current
// state: it is stored, soft-failed, and the head does not move.
func TestAnEventOnABranchThatPredatesABanSoftFails(t *testing.T) {
	for _, version := range versions {
		t.Run("v"+version, func(t *testing.T) {
			f := newFixture(t, nil)
			b, evs := setupRoom(t, version)
			r := f.room(b)
			f.admit(r, evs...)
			old := b.fork()
			ban := b.member(alice, carol, "ban")
			f.admit(r, ban)
			before := *r.Head()

			sibling := old.fork()
			msg := old.msg(carol, "did I miss something?")
			out := f.admitted(r, msg)
			if out.Rejected == nil || !out.Rejected.Soft || out.Rejected.Stage != dag.StageCurrentState {
				t.Fatalf("outcome %+v, want soft-failed against the current state", out.Rejected)
			}
			rec, ok := f.stored(msg.ID())
			if !ok {
				t.Fatal("the soft-failed event is not stored")
			}
			if rec.SoftFailed == "" || rec.Rejected != "" || rec.Pos != 0 || rec.StateAfter == "" {
				t.Errorf("stored with soft %q, rejected %q, pos %d, state %q; want soft-failed with state, outside the timeline", rec.SoftFailed, rec.Rejected, rec.Pos, rec.StateAfter)
			}
			h := r.Head()
			if !slices.Equal(h.Ext, before.Ext) || h.StateID != before.StateID {
				t.Errorf("head moved: %v, was %v", h.Ext, before.Ext)
			}
			if !slices.Equal(h.Ext, ids(ban)) {
				t.Errorf("extremities %v, want the ban only", h.Ext)
			}

			// On the same old branch, a message from someone the ban does
			// not touch is accepted and forks the room.
			other := sibling.msg(dave, "me too")
			if out := f.admitted(r, other); out.Rejected != nil {
				t.Fatalf("dave's message: %v", out.Rejected)
			}
			if h := r.Head(); !sameSet(h.Ext, ids(ban, other)) {
				t.Errorf("extremities %v, want the ban and dave's message", h.Ext)
			}
		})
	}
}

// TestASecondAdmissionReportsTheSameVerdict: an event admitted again (a
// peer resends it, a gap fill brings it back) is answered from what is
// stored, and the answer must carry the verdict of the first admission:
// a caller that sees no Rejection relays the event, or answers a
// send_join with it.
func TestASecondAdmissionReportsTheSameVerdict(t *testing.T) {
	cases := []struct {
		name string
		soft bool
		make func(f *fixture, r *dag.Room, b *branch) *rooms.Event
	}{
		{
			name: "a rejected join is rejected again",
			make: func(f *fixture, r *dag.Room, b *branch) *rooms.Event {
				return b.build(eve, "m.room.member", eve, `{"membership":"join"}`)
			},
		},
		{
			name: "a soft-failed message is soft-failed again", soft: true,
			make: func(f *fixture, r *dag.Room, b *branch) *rooms.Event {
				old := b.fork()
				f.admit(r, b.member(alice, carol, "ban"))
				return old.build(carol, "m.room.message", "-", `{"body":"late"}`)
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, nil)
			b, evs := setupRoom(t, rooms.V12)
			r := f.room(b)
			f.admit(r, evs...)
			ev := c.make(f, r, b)
			first := f.admitted(r, ev)
			if first.Rejected == nil || first.Rejected.Soft != c.soft {
				t.Fatalf("first admission: %+v, want soft %v", first.Rejected, c.soft)
			}
			again := f.admitted(r, ev)
			if again.Rejected == nil || again.Rejected.Soft != c.soft || again.Rejected.Reason != first.Rejected.Reason {
				t.Errorf("second admission: %+v, want the first verdict %+v", again.Rejected, first.Rejected)
			}
			f.reopen()
			r = f.e.Room(r.ID)
			third := f.admitted(r, ev)
			if third.Rejected == nil || third.Rejected.Soft != c.soft {
				t.Errorf("admission after reopening: %+v, want the first verdict %+v", third.Rejected, first.Rejected)
			}
		})
	}
}
