package dag_test

import (
	"maps"
	"slices"
	"testing"

	"github.com/parley-p2p/parley/node/dag"
	"github.com/parley-p2p/parley/rooms"
)

// TestTwoBranchesOfMessagesMergeIntoOneExtremity: two servers send on the
// same event at once; both messages are accepted and become forward
// extremities, and an event that names both as prev events merges them.
func TestTwoBranchesOfMessagesMergeIntoOneExtremity(t *testing.T) {
	f := newFixture(t, nil)
	left, evs := setupRoom(t, rooms.V12)
	r := f.room(left)
	f.admit(r, evs...)
	right := left.fork()
	a := left.msg(bob, "from B")
	c := right.msg(carol, "from C")
	f.admit(r, a, c)
	h := r.Head()
	if !sameSet(h.Ext, ids(a, c)) {
		t.Fatalf("extremities %v, want both messages", h.Ext)
	}
	if h.Depth != a.Depth() {
		t.Errorf("depth %d, want %d", h.Depth, a.Depth())
	}
	state := h.State

	left.merge(right, left.state)
	m := left.msg(alice, "both seen")
	if len(m.PrevEvents()) != 2 {
		t.Fatalf("merge names %v", m.PrevEvents())
	}
	f.admit(r, m)
	h = r.Head()
	if !slices.Equal(h.Ext, ids(m)) || h.Depth != a.Depth()+1 {
		t.Errorf("after the merge: extremities %v depth %d, want the merge at %d", h.Ext, h.Depth, a.Depth()+1)
	}
	if !maps.Equal(h.State, state) {
		t.Errorf("messages changed the state")
	}
}

// forkCase: two branches off one event, each admitted whole in turn (the
// first, then the second), then merged by alice.
type forkCase struct {
	name string
	// first and second add their events to their branch and return them.
	first, second func(b *branch) []*rooms.Event
	// soft lists which of the second branch's events soft-fail.
	soft []int
	// want returns, of all events, those the resolved state holds on top
	// of the state at the fork.
	want func(first, second []*rooms.Event) []*rooms.Event
}

func forkCases(version string) []forkCase {
	topic := func(b *branch) []*rooms.Event {
		return []*rooms.Event{b.add(bob, "m.room.topic", "", `{"topic":"bob's"}`)}
	}
	demote := func(b *branch) []*rooms.Event {
		return []*rooms.Event{b.add(alice, "m.room.power_levels", "", powerLevels(version, 0))}
	}
	return []forkCase{
		{
			name:  "a moderator's topic, then his demotion on another branch: the demotion wins and the topic is undone",
			first: topic, second: demote,
			want: func(first, second []*rooms.Event) []*rooms.Event { return second },
		},
		{
			name:  "a demotion, then the demoted moderator's topic on a branch before it: the topic soft-fails",
			first: demote, second: topic, soft: []int{0},
			want: func(first, second []*rooms.Event) []*rooms.Event { return first },
		},
		{
			name:  "a name and a topic that each pass the auth rules are both kept",
			first: topic,
			second: func(b *branch) []*rooms.Event {
				return []*rooms.Event{b.add(alice, "m.room.name", "", `{"name":"alice's"}`)}
			},
			want: func(first, second []*rooms.Event) []*rooms.Event { return append(first, second...) },
		},
		{
			name: "a ban on one branch beats the banned user's topic on the other",
			first: func(b *branch) []*rooms.Event {
				return []*rooms.Event{b.add(bob, "m.room.topic", "", `{"topic":"bob's"}`)}
			},
			second: func(b *branch) []*rooms.Event {
				return []*rooms.Event{b.member(alice, bob, "ban")}
			},
			want: func(first, second []*rooms.Event) []*rooms.Event { return second },
		},
	}
}

// TestAForkResolvesToThePowerLevelWinner: a power change on one branch and
// a conflicting state change on the other; the room's current state is
// the resolution across both extremities, as state resolution v2 (v11)
// and v2.1 (v12) order it: power events first, then the rest checked
// against the resolved power levels. A merging event sees the same state.
func TestAForkResolvesToThePowerLevelWinner(t *testing.T) {
	for _, version := range versions {
		for _, c := range forkCases(version) {
			t.Run("v"+version+"/"+c.name, func(t *testing.T) {
				f := newFixture(t, nil)
				first, evs := setupRoom(t, version)
				r := f.room(first)
				f.admit(r, evs...)
				atFork := maps.Clone(first.state)
				second := first.fork()

				firstEvs := c.first(first)
				f.admit(r, firstEvs...)
				secondEvs := c.second(second)
				for i, ev := range secondEvs {
					out := f.admitted(r, ev)
					soft := out.Rejected != nil && out.Rejected.Soft && out.Rejected.Stage == dag.StageCurrentState
					if soft != slices.Contains(c.soft, i) || (out.Rejected != nil && !soft) {
						t.Fatalf("second branch event %d (%s): outcome %+v, soft-fail expected: %v", i, ev.Type(), out.Rejected, slices.Contains(c.soft, i))
					}
				}

				// The extremities: each branch's last accepted event.
				wantExt := []string{firstEvs[len(firstEvs)-1].ID()}
				if len(c.soft) == 0 {
					wantExt = append(wantExt, secondEvs[len(secondEvs)-1].ID())
				}
				h := r.Head()
				if !sameSet(h.Ext, wantExt) {
					t.Errorf("extremities %v, want %v", h.Ext, wantExt)
				}

				resolved := maps.Clone(atFork)
				for _, ev := range c.want(firstEvs, secondEvs) {
					resolved[ev.Key()] = ev
				}
				want := stateOf(slices.Collect(maps.Values(resolved))...)
				if !maps.Equal(h.State, want) {
					t.Errorf("current state differs from the expected resolution:%s", stateDiff(h.State, want))
				}
				if rr := f.storedRoom(r.ID); rr.State != h.StateID {
					t.Errorf("stored current state %s, in memory %s", rr.State, h.StateID)
				}

				// alice merges both branches: the state before her event
				// is the same resolution.
				first.merge(second, resolved)
				m := first.msg(alice, "merged")
				f.admit(r, m)
				h = r.Head()
				if !slices.Equal(h.Ext, ids(m)) {
					t.Errorf("after the merge: extremities %v, want the merge", h.Ext)
				}
				if !maps.Equal(h.State, want) {
					t.Errorf("state after the merge differs:%s", stateDiff(h.State, want))
				}
				rec, _ := f.stored(m.ID())
				at, err := f.e.Snapshot(rec.StateAfter)
				if err != nil || !maps.Equal(at, want) {
					t.Errorf("state at the merge (%v) differs:%s", err, stateDiff(at, want))
				}
			})
		}
	}
}

// stateDiff describes how two states differ, for failure messages.
func stateDiff(got, want map[rooms.StateKey]string) string {
	var s string
	for k, id := range want {
		if got[k] != id {
			s += "\n\t(" + k.Type + ", " + k.StateKey + "): " + got[k] + ", want " + id
		}
	}
	for k, id := range got {
		if _, ok := want[k]; !ok {
			s += "\n\t(" + k.Type + ", " + k.StateKey + "): " + id + ", want none"
		}
	}
	return s
}
