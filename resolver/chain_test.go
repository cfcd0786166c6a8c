package resolver

import (
	"maps"
	"testing"

	"github.com/parley-p2p/parley/rooms"
)

// A long chain of power levels events, each citing the one before, is a long
// mainline and a deep auth chain: resolution must walk it without recursing.
func TestLongAuthChainsResolve(t *testing.T) {
	length := 20000
	if testing.Short() {
		length = 2000
	}
	for _, version := range []string{rooms.V11, rooms.V12} {
		t.Run("v"+version, func(t *testing.T) {
			b := newRoomBuilder(t, version, "chain")
			create := b.createRoom(alice)
			state := StateMap{createKey: create.ID()}
			prev := create.ID()
			push := func(sender, typ, key string, content map[string]any, ts int64) *rooms.Event {
				e := b.event(sender, typ, key, content, []string{prev}, state, ts)
				state[e.Key()] = e.ID()
				prev = e.ID()
				return e
			}
			push(alice, typeMember, alice, map[string]any{"membership": "join"}, 1)
			push(alice, typeJoinRules, "", map[string]any{"join_rule": "public"}, 2)
			push(bob, typeMember, bob, map[string]any{"membership": "join"}, 3)
			users := func(bobLevel int) map[string]any {
				u := map[string]any{bob: bobLevel}
				if version == rooms.V11 {
					u[alice] = 100
				}
				return map[string]any{"users": u}
			}
			for i := 0; i < length; i++ {
				push(alice, typePowerLevels, "", users(i%50), int64(10+i))
			}
			fork, base := prev, maps.Clone(state)

			// One side demotes bob; on the other bob, a moderator there, sets
			// the topic.
			push(alice, typePowerLevels, "", users(0), int64(length+20))
			demoted := state
			state, prev = maps.Clone(base), fork
			push(alice, typePowerLevels, "", users(50), int64(length+20))
			topic := push(bob, "m.room.topic", "", map[string]any{"topic": "bob's"}, int64(length+21))

			got, err := Resolve(version, []StateMap{demoted, state}, b.fetch)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(state) {
				t.Errorf("%d keys, want %d", len(got), len(state))
			}
			// Both power levels cite the same parent and tie on power and
			// time, so they replay in event ID order and the higher ID ends
			// up in force; the topic stands or falls with it.
			pl := max(demoted[powerLevelsKey], state[powerLevelsKey])
			if got[powerLevelsKey] != pl {
				t.Errorf("power levels %s, want %s", got[powerLevelsKey], pl)
			}
			if bobIsMod := pl == state[powerLevelsKey]; bobIsMod != (got[rooms.StateKey{Type: "m.room.topic"}] == topic.ID()) {
				t.Errorf("topic %q with power levels %s", got[rooms.StateKey{Type: "m.room.topic"}], pl)
			}
		})
	}
}
