package resolver

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/parley-p2p/parley/rooms"
)

var randomUsers = []string{
	"@alice:example.org", "@bob:example.org", "@carol:example.org",
	"@dave:example.org", "@erin:example.org", "@frank:example.org",
}

// tip is a forward extremity of a random room with the state after it.
type tip struct {
	id    string
	state StateMap
}

// randomRoom grows a room DAG of concurrent power, membership, join rule and
// topic changes from seed, merging branches by resolving them, and returns
// the builder and the forward extremities.
func randomRoom(t *testing.T, version string, seed uint64, steps int) (*roomBuilder, []tip) {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	b := newRoomBuilder(t, version, fmt.Sprintf("r%d", seed))
	alice := randomUsers[0]
	create := b.createRoom(alice)
	state := StateMap{createKey: create.ID()}
	prev := create.ID()
	ts := int64(1)
	push := func(sender, typ, key string, content map[string]any) {
		e := b.event(sender, typ, key, content, []string{prev}, state, ts)
		next, ok := apply(state, e, b.fetch, create)
		if !ok {
			t.Fatalf("bootstrap event %s %s refused", typ, key)
		}
		state, prev = next, e.ID()
		ts++
	}
	push(alice, typeMember, alice, map[string]any{"membership": "join"})
	users := map[string]any{randomUsers[1]: 50, randomUsers[2]: 50}
	if version != rooms.V12 {
		users[alice] = 100
	}
	push(alice, typePowerLevels, "", map[string]any{"users": users})
	push(alice, typeJoinRules, "", map[string]any{"join_rule": "public"})
	for _, u := range randomUsers[1:5] {
		push(u, typeMember, u, map[string]any{"membership": "join"})
	}

	tips := []tip{{id: prev, state: state}}
	for step := 0; step < steps; step++ {
		var parents []tip
		i := rng.IntN(len(tips))
		kept := tips // the tips if no change passes auth
		switch r := rng.IntN(10); {
		case r < 3 && len(tips) > 1: // merge two branches
			j := (i + 1 + rng.IntN(len(tips)-1)) % len(tips)
			parents = []tip{tips[i], tips[j]}
			tips = slices.Delete(slices.Clone(tips), max(i, j), max(i, j)+1)
			tips = slices.Delete(tips, min(i, j), min(i, j)+1)
		case r < 6: // fork: keep the parent as a tip
			parents = []tip{tips[i]}
		default: // extend
			parents = []tip{tips[i]}
			tips = slices.Delete(slices.Clone(tips), i, i+1)
		}
		var states []StateMap
		var prevs []string
		for _, p := range parents {
			states = append(states, p.state)
			prevs = append(prevs, p.id)
		}
		before, err := Resolve(version, states, b.fetch)
		if err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
		ts = int64(10+step) + rng.Int64N(4) // ties on purpose
		made := false
		for try := 0; try < 20 && !made; try++ {
			sender, typ, key, content := randomChange(rng, b, before)
			e := b.event(sender, typ, key, content, prevs, before, ts)
			if after, ok := apply(before, e, b.fetch, create); ok {
				tips = append(tips, tip{id: e.ID(), state: after})
				made = true
			}
		}
		if !made {
			tips = kept
		}
	}
	return b, tips
}

// randomChange proposes a state change; it may well fail auth.
func randomChange(rng *rand.Rand, b *roomBuilder, state StateMap) (sender, typ, key string, content map[string]any) {
	sender = randomUsers[rng.IntN(len(randomUsers))]
	other := randomUsers[rng.IntN(len(randomUsers))]
	switch rng.IntN(9) {
	case 0:
		return sender, "m.room.topic", "", map[string]any{"topic": fmt.Sprintf("topic %d", rng.IntN(1000))}
	case 1:
		return sender, "m.room.name", "", map[string]any{"name": fmt.Sprintf("name %d", rng.IntN(1000))}
	case 2, 3:
		content = currentContent(b, state, powerLevelsKey)
		users, _ := content["users"].(map[string]any)
		if users == nil {
			users = map[string]any{}
		}
		if b.version == rooms.V12 && other == randomUsers[0] {
			other = randomUsers[1]
		}
		users[other] = []int{0, 25, 50, 75, 100}[rng.IntN(5)]
		content["users"] = users
		if rng.IntN(4) == 0 {
			content["state_default"] = []int{0, 50}[rng.IntN(2)]
		}
		return sender, typePowerLevels, "", content
	case 4:
		rule := []string{"public", "invite"}[rng.IntN(2)]
		return sender, typeJoinRules, "", map[string]any{"join_rule": rule}
	case 5:
		return other, typeMember, other, map[string]any{"membership": "join", "displayname": fmt.Sprint(rng.IntN(100))}
	case 6:
		return other, typeMember, other, map[string]any{"membership": "leave"}
	case 7:
		m := []string{"leave", "ban", "invite"}[rng.IntN(3)]
		return sender, typeMember, other, map[string]any{"membership": m}
	default:
		return sender, "m.room.message.state", sender, map[string]any{"n": rng.IntN(100)}
	}
}

// currentContent decodes the content of the event at k, or returns {}.
func currentContent(b *roomBuilder, state StateMap, k rooms.StateKey) map[string]any {
	content := map[string]any{}
	if id, ok := state[k]; ok {
		d := json.NewDecoder(bytes.NewReader(b.events[id].Content()))
		d.UseNumber()
		if err := d.Decode(&content); err != nil {
			b.tb.Fatal(err)
		}
	}
	return content
}

func TestResolveIgnoresTheOrderOfStateSets(t *testing.T) {
	for _, version := range []string{rooms.V11, rooms.V12} {
		for seed := uint64(1); seed <= 40; seed++ {
			t.Run(fmt.Sprintf("v%s/seed%d", version, seed), func(t *testing.T) {
				b, tips := randomRoom(t, version, seed, 40)
				var sets []StateMap
				for _, tp := range tips {
					sets = append(sets, tp.state)
				}
				want, err := Resolve(version, sets, b.fetch)
				if err != nil {
					t.Fatal(err)
				}
				rng := rand.New(rand.NewPCG(seed, 7))
				for try := 0; try < 5; try++ {
					perm := slices.Clone(sets)
					rng.Shuffle(len(perm), func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
					if try == 4 {
						perm = append(perm, perm[0]) // a repeated set changes nothing
					}
					got, err := Resolve(version, perm, b.fetch)
					if err != nil {
						t.Fatal(err)
					}
					if !maps.Equal(got, want) {
						t.Fatalf("resolving %d sets in another order gave\n%v\nwant\n%v", len(perm), got, want)
					}
				}
			})
		}
	}
}

func TestResolveCasesIgnoreTheOrderOfStateSets(t *testing.T) {
	var cases []vectorCase
	readJSON(t, vectorDir+"/cases.json", &cases)
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			f := loadFixture(t, c.PDUs)
			var sets []StateMap
			for _, e := range f.all() {
				sets = append(sets, single(e))
			}
			want := mustResolve(t, f, sets)
			slices.Reverse(sets)
			got := mustResolve(t, f, sets)
			if !maps.Equal(got, want) {
				t.Errorf("reversed order gave %v, want %v", got, want)
			}
		})
	}
}
