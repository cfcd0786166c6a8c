package resolver

import (
	"fmt"
	"maps"
	"testing"

	"github.com/parley-p2p/parley/rooms"
)

// bigRoom is a room whose state holds size members, forked into two
// branches that disagree on conflicts keys: alice raises the power levels
// on one side and bans a member on the other, and members change their
// display names on both.
type bigRoom struct {
	b       *roomBuilder
	base    StateMap
	members []*rooms.Event // the joins, in order
	sets    []StateMap
}

func newBigRoom(tb testing.TB, version string, size, conflicts int) *bigRoom {
	b := newRoomBuilder(tb, version, "big")
	alice := "@alice:example.org"
	create := b.createRoom(alice)
	state := StateMap{createKey: create.ID()}
	prev := create.ID()
	ts := int64(1)
	push := func(sender, typ, key string, content map[string]any) *rooms.Event {
		e := b.event(sender, typ, key, content, []string{prev}, state, ts)
		state[e.Key()] = e.ID()
		prev = e.ID()
		ts++
		return e
	}
	push(alice, typeMember, alice, map[string]any{"membership": "join"})
	users := map[string]any{}
	if version != rooms.V12 {
		users[alice] = 100
	}
	push(alice, typePowerLevels, "", map[string]any{"users": users})
	push(alice, typeJoinRules, "", map[string]any{"join_rule": "public"})
	r := &bigRoom{b: b}
	for i := len(state); i < size; i++ {
		u := fmt.Sprintf("@user%05d:example.org", i)
		r.members = append(r.members, push(u, typeMember, u, map[string]any{"membership": "join"}))
	}
	r.base = maps.Clone(state)
	fork := prev

	branch := func(side int) StateMap {
		s := maps.Clone(r.base)
		prev = fork
		ts = int64(size + 10)
		state = s
		if side == 0 {
			users := maps.Clone(users)
			users[r.members[0].Sender()] = 50
			push(alice, typePowerLevels, "", map[string]any{"users": users})
		} else {
			push(alice, typeMember, r.members[1].Sender(), map[string]any{"membership": "ban"})
		}
		for i := 2 + side; i < conflicts; i += 2 {
			u := r.members[i].Sender()
			push(u, typeMember, u, map[string]any{"membership": "join", "displayname": fmt.Sprintf("u%d-%d", i, side)})
		}
		return s
	}
	r.sets = []StateMap{branch(0), branch(1)}
	return r
}

func (r *bigRoom) conflicted() int {
	n := 0
	for k, v := range r.sets[0] {
		if r.sets[1][k] != v {
			n++
		}
	}
	for k := range r.sets[1] {
		if _, ok := r.sets[0][k]; !ok {
			n++
		}
	}
	return n
}

func TestBigRoomResolves(t *testing.T) {
	for _, version := range []string{rooms.V11, rooms.V12} {
		t.Run("v"+version, func(t *testing.T) {
			r := newBigRoom(t, version, 2000, 100)
			if n := r.conflicted(); n != 100 {
				t.Fatalf("%d conflicted keys, want 100", n)
			}
			got, err := Resolve(version, r.sets, r.b.fetch)
			if err != nil {
				t.Fatal(err)
			}
			// Both the ban and the promotion are alice's to make, and
			// every display name change is its sender's own: all apply.
			for k := range r.sets[0] {
				want := r.sets[0][k]
				if r.sets[1][k] != r.base[k] {
					want = r.sets[1][k]
				}
				if got[k] != want {
					t.Errorf("%v: got %s, want %s", k, got[k], want)
				}
			}
			if len(got) != len(r.sets[0]) {
				t.Errorf("%d keys, want %d", len(got), len(r.sets[0]))
			}
		})
	}
}

func BenchmarkResolve10kWith100Conflicts(b *testing.B) {
	for _, version := range []string{rooms.V11, rooms.V12} {
		b.Run("v"+version, func(b *testing.B) {
			r := newBigRoom(b, version, 10000, 100)
			if n := r.conflicted(); n != 100 {
				b.Fatalf("%d conflicted keys, want 100", n)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Resolve(version, r.sets, r.b.fetch); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkAuthCheck10k(b *testing.B) {
	for _, version := range []string{rooms.V11, rooms.V12} {
		b.Run("v"+version, func(b *testing.B) {
			r := newBigRoom(b, version, 10000, 100)
			create, _ := r.b.fetch(r.base[createKey])
			// Check each join against the state before the joins began.
			before := make(map[rooms.StateKey]*rooms.Event)
			for k, id := range r.base {
				if k.Type != typeMember || k.StateKey == "@alice:example.org" {
					before[k], _ = r.b.fetch(id)
				}
			}
			lookup := func(k rooms.StateKey) *rooms.Event {
				if e, ok := before[k]; ok {
					return e
				}
				if k == createKey {
					return create
				}
				return nil
			}
			b.ReportAllocs()
			for b.Loop() {
				for _, e := range r.members {
					if err := rooms.Allowed(e, lookup); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
