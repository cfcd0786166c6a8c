package dag_test

import (
	"testing"

	"github.com/parley-p2p/parley/node/dag"
	"github.com/parley-p2p/parley/rooms"
)

func redacts(id string) string { return `{"redacts":"` + id + `"}` }

// TestARedactionAppliesByTheSpecsRule: RedactedBy applies a redaction of
// carol's message when it was accepted and its sender had the redact
// level in the state before it, or shares carol's server; never one that
// was rejected or soft-failed, nor one from a powerless user of another
// server (which the auth rules of v11 and v12 accept all the same).
func TestARedactionAppliesByTheSpecsRule(t *testing.T) {
	cases := []struct {
		name    string
		applies bool
		// redact admits what comes before the redaction and returns it.
		redact func(f *fixture, r *dag.Room, b *branch, orig *rooms.Event) *rooms.Event
		// after, if set, is admitted after the redaction.
		after func(b *branch) *rooms.Event
	}{
		{
			name: "a moderator of another server redacts", applies: true,
			redact: func(f *fixture, r *dag.Room, b *branch, orig *rooms.Event) *rooms.Event {
				return b.add(bob, "m.room.redaction", "-", redacts(orig.ID()))
			},
		},
		{
			name: "the room's creator redacts", applies: true,
			redact: func(f *fixture, r *dag.Room, b *branch, orig *rooms.Event) *rooms.Event {
				return b.add(alice, "m.room.redaction", "-", redacts(orig.ID()))
			},
		},
		{
			name: "the sender redacts her own message", applies: true,
			redact: func(f *fixture, r *dag.Room, b *branch, orig *rooms.Event) *rooms.Event {
				return b.add(carol, "m.room.redaction", "-", redacts(orig.ID()))
			},
		},
		{
			name: "a powerless user of the sender's server redacts", applies: true,
			redact: func(f *fixture, r *dag.Room, b *branch, orig *rooms.Event) *rooms.Event {
				return b.add(carol2, "m.room.redaction", "-", redacts(orig.ID()))
			},
		},
		{
			name: "a moderator redacts and is demoted afterwards", applies: true,
			redact: func(f *fixture, r *dag.Room, b *branch, orig *rooms.Event) *rooms.Event {
				return b.add(bob, "m.room.redaction", "-", redacts(orig.ID()))
			},
			after: func(b *branch) *rooms.Event {
				return b.add(alice, "m.room.power_levels", "", powerLevels(b.version, 0))
			},
		},
		{
			name: "a powerless user of another server redacts", applies: false,
			redact: func(f *fixture, r *dag.Room, b *branch, orig *rooms.Event) *rooms.Event {
				return b.add(dave, "m.room.redaction", "-", redacts(orig.ID()))
			},
		},
		{
			name: "a powerless user redacts and is promoted afterwards", applies: false,
			redact: func(f *fixture, r *dag.Room, b *branch, orig *rooms.Event) *rooms.Event {
				return b.add(dave, "m.room.redaction", "-", redacts(orig.ID()))
			},
			after: func(b *branch) *rooms.Event {
				return b.add(alice, "m.room.power_levels", "", powerLevelsFor(b.version, `"BOB":50,"DAVE":50`))
			},
		},
		{
			name: "a moderator's redaction on a branch that predates his ban soft-fails", applies: false,
			redact: func(f *fixture, r *dag.Room, b *branch, orig *rooms.Event) *rooms.Event {
				old := b.fork()
				f.admit(r, b.member(alice, bob, "ban"))
				return old.add(bob, "m.room.redaction", "-", redacts(orig.ID()))
			},
		},
		{
			name: "a redaction from someone outside the room is rejected", applies: false,
			redact: func(f *fixture, r *dag.Room, b *branch, orig *rooms.Event) *rooms.Event {
				return b.build(eve, "m.room.redaction", "-", redacts(orig.ID()))
			},
		},
	}
	for _, version := range versions {
		for _, c := range cases {
			t.Run("v"+version+"/"+c.name, func(t *testing.T) {
				f := newFixture(t, nil)
				b, evs := setupRoom(t, version)
				r := f.room(b)
				f.admit(r, evs...)
				orig := b.msg(carol, "secret")
				f.admit(r, orig)
				red := c.redact(f, r, b, orig)
				out, err := f.e.Admit(r, red, dag.Opts{})
				if err != nil {
					t.Fatalf("admit redaction: %v", err)
				}
				if err := <-out.Committed; err != nil {
					t.Fatalf("write redaction: %v", err)
				}
				if c.after != nil {
					f.admit(r, c.after(b))
				}

				by := f.e.RedactedBy(orig)
				switch {
				case c.applies && by == nil:
					t.Errorf("the redaction does not apply")
				case c.applies && by.Event.ID() != red.ID():
					t.Errorf("redacted by %s, want %s", by.Event.ID(), red.ID())
				case !c.applies && by != nil:
					t.Errorf("redacted by %s (%s), want not redacted", by.Event.ID(), by.Event.Sender())
				}
				if f.e.RedactedBy(red) != nil {
					t.Error("a redaction is itself redacted")
				}
			})
		}
	}
}

// TestARedactionStillAppliesAfterReopening: what RedactedBy decides rests
// on the store, not on memory.
func TestARedactionStillAppliesAfterReopening(t *testing.T) {
	f := newFixture(t, nil)
	b, evs := setupRoom(t, rooms.V12)
	r := f.room(b)
	f.admit(r, evs...)
	orig := b.msg(carol, "secret")
	red := b.add(bob, "m.room.redaction", "-", redacts(orig.ID()))
	f.admit(r, orig, red)
	f.reopen()
	if by := f.e.RedactedBy(orig); by == nil || by.Event.ID() != red.ID() {
		t.Errorf("after reopening, redacted by %v, want %s", by, red.ID())
	}
}

// TestARedactionThatCannotApplyDoesNotUndoOneThatDoes: bob's redaction
// applies; a later one of the same message from dave (powerless, another
// server) is accepted but cannot apply, and must not make the message
// whole again.
func TestARedactionThatCannotApplyDoesNotUndoOneThatDoes(t *testing.T) {
	f := newFixture(t, nil)
	b, evs := setupRoom(t, rooms.V12)
	r := f.room(b)
	f.admit(r, evs...)
	orig := b.msg(carol, "secret")
	byBob := b.add(bob, "m.room.redaction", "-", redacts(orig.ID()))
	f.admit(r, orig, byBob)
	if by := f.e.RedactedBy(orig); by == nil {
		t.Fatal("bob's redaction does not apply")
	}
	f.admit(r, b.add(dave, "m.room.redaction", "-", redacts(orig.ID())))
	if by := f.e.RedactedBy(orig); by == nil || by.Event.ID() != byBob.ID() {
		t.Errorf("after dave's redaction, redacted by %v, want bob's %s", by, byBob.ID())
	}
}
