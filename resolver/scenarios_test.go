package resolver

import (
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/parley-p2p/parley/rooms"
)

// The scenarios below are those of Synapse's state resolution v2 tests
// (tests/state/test_v2.py), rewritten for this package: the events, the
// prev_events edges and the state expected after them.

const (
	alice   = "@alice:example.com"
	bob     = "@bob:example.com"
	charlie = "@charlie:example.com"
	evelyn  = "@evelyn:example.com"
	zara    = "@zara:example.com"
)

type scenarioEvent struct {
	name     string
	sender   string
	typ      string
	stateKey *string // nil for a message
	content  map[string]any
}

func stateEv(name, sender, typ, stateKey string, content map[string]any) scenarioEvent {
	return scenarioEvent{name, sender, typ, &stateKey, content}
}

func messageEv(name, sender string) scenarioEvent {
	return scenarioEvent{name, sender, "m.room.message", nil, map[string]any{}}
}

func join(name, user string) scenarioEvent {
	return stateEv(name, user, typeMember, user, map[string]any{"membership": "join"})
}

func powerLevels(name, sender string, users map[string]any) scenarioEvent {
	return stateEv(name, sender, typePowerLevels, "", map[string]any{"users": users})
}

func topic(name, sender string) scenarioEvent {
	return stateEv(name, sender, "m.room.topic", "", map[string]any{"topic": name})
}

// Every scenario starts with these, in a line from CREATE to START, and
// ends at END, a message whose state is the resolution of its prev events.
var initialEvents = []scenarioEvent{
	stateEv("CREATE", alice, typeCreate, "", nil),
	join("IMA", alice),
	powerLevels("IPOWER", alice, map[string]any{alice: 100}),
	stateEv("IJR", alice, typeJoinRules, "", map[string]any{"join_rule": "public"}),
	join("IMB", bob),
	join("IMC", charlie),
	join("IMZ", zara),
	messageEv("START", zara),
	messageEv("END", zara),
}

var initialEdges = []string{"START", "IMZ", "IMC", "IMB", "IJR", "IPOWER", "IMA", "CREATE"}

type scenario struct {
	name   string
	events []scenarioEvent
	edges  [][]string // chains, each event followed by its prev event
	want   []string   // the events in the state at END that were not at START
}

var scenarios = []scenario{{
	name: "a ban beats a concurrent power levels change by the banned user",
	events: []scenarioEvent{
		powerLevels("PA", alice, map[string]any{alice: 100, bob: 50}),
		join("MA", alice),
		stateEv("MB", alice, typeMember, bob, map[string]any{"membership": "ban"}),
		powerLevels("PB", bob, map[string]any{alice: 100, bob: 50}),
	},
	edges: [][]string{{"END", "MB", "MA", "PA", "START"}, {"END", "PB", "PA"}},
	want:  []string{"PA", "MA", "MB"},
}, {
	name: "a join cannot evade a concurrent change of join rules",
	events: []scenarioEvent{
		stateEv("JR", alice, typeJoinRules, "", map[string]any{"join_rule": "private"}),
		join("ME", evelyn),
	},
	edges: [][]string{{"END", "JR", "START"}, {"END", "ME", "START"}},
	want:  []string{"JR"},
}, {
	name: "power levels stay with the longest chain of authority",
	events: []scenarioEvent{
		powerLevels("PA", alice, map[string]any{alice: 100, bob: 50}),
		powerLevels("PB", bob, map[string]any{alice: 100, bob: 50, charlie: 50}),
		powerLevels("PC", charlie, map[string]any{alice: 100, bob: 50, charlie: 0}),
	},
	edges: [][]string{{"END", "PC", "PB", "PA", "START"}, {"END", "PA"}},
	want:  []string{"PC"},
}, {
	name: "a demotion undoes the demoted user's concurrent topic",
	events: []scenarioEvent{
		topic("T1", alice),
		powerLevels("PA1", alice, map[string]any{alice: 100, bob: 50}),
		topic("T2", alice),
		powerLevels("PA2", alice, map[string]any{alice: 100, bob: 0}),
		powerLevels("PB", bob, map[string]any{alice: 100, bob: 50}),
		topic("T3", bob),
	},
	edges: [][]string{{"END", "PA2", "T2", "PA1", "T1", "START"}, {"END", "T3", "PB", "PA1"}},
	want:  []string{"PA2", "T2"},
}, {
	name: "a ban does not reset the topic to an older one",
	events: []scenarioEvent{
		topic("T1", alice),
		powerLevels("PA", alice, map[string]any{alice: 100, bob: 50}),
		topic("T2", bob),
		stateEv("MB", alice, typeMember, bob, map[string]any{"membership": "ban"}),
	},
	edges: [][]string{{"END", "MB", "T2", "PA", "T1", "START"}, {"END", "T1"}},
	want:  []string{"T1", "MB", "PA"},
}, {
	name: "the topic after a demotion wins over the demoted user's",
	events: []scenarioEvent{
		topic("T1", alice),
		powerLevels("PA1", alice, map[string]any{alice: 100, bob: 50}),
		topic("T2", alice),
		powerLevels("PA2", alice, map[string]any{alice: 100, bob: 0}),
		powerLevels("PB", bob, map[string]any{alice: 100, bob: 50}),
		topic("T3", bob),
		messageEv("MZ1", zara),
		topic("T4", alice),
	},
	edges: [][]string{
		{"END", "T4", "MZ1", "PA2", "T2", "PA1", "T1", "START"},
		{"END", "MZ1", "T3", "PB", "PA1"},
	},
	want: []string{"T4", "PA2"},
}, {
	name: "mainline order puts topics on newer power levels last",
	events: []scenarioEvent{
		topic("T1", alice),
		powerLevels("PA1", alice, map[string]any{alice: 100, bob: 50}),
		topic("T2", alice),
		stateEv("PA2", alice, typePowerLevels, "", map[string]any{
			"users":  map[string]any{alice: 100, bob: 50},
			"events": map[string]any{typePowerLevels: 100},
		}),
		powerLevels("PB", bob, map[string]any{alice: 100, bob: 50}),
		topic("T3", bob),
		topic("T4", alice),
	},
	edges: [][]string{
		{"END", "T3", "PA2", "T2", "PA1", "T1", "START"},
		{"END", "T4", "PB", "PA1"},
	},
	// T4 is newer than T3, but it cites older power levels.
	want: []string{"T3", "PA2"},
}}

func TestScenarios(t *testing.T) {
	for _, version := range []string{rooms.V11, rooms.V12} {
		for _, sc := range scenarios {
			t.Run("v"+version+"/"+sc.name, func(t *testing.T) {
				runScenario(t, version, sc)
			})
		}
	}
}

// runScenario builds the scenario's DAG, each event's auth events chosen
// from the state before it, and checks the state at END. As in Synapse's
// tests, the state after a state event is the state before it plus the
// event, whether or not the event passes auth there.
func runScenario(t *testing.T, version string, sc scenario) {
	b := newRoomBuilder(t, version, "sc")
	specs := make(map[string]scenarioEvent)
	ts := make(map[string]int64)
	for i, e := range slices.Concat(initialEvents, sc.events) {
		specs[e.name] = e
		ts[e.name] = int64(i)
	}
	prevs := make(map[string][]string)
	link := func(chain []string) {
		for i := 0; i+1 < len(chain); i++ {
			if !slices.Contains(prevs[chain[i]], chain[i+1]) {
				prevs[chain[i]] = append(prevs[chain[i]], chain[i+1])
			}
		}
	}
	link(initialEdges)
	for _, chain := range sc.edges {
		link(chain)
	}

	after := make(map[string]StateMap)
	var before StateMap
	for _, name := range prevOrder(t, specs, prevs) {
		spec := specs[name]
		var sets []StateMap
		var prevIDs []string
		for _, p := range prevs[name] {
			sets = append(sets, after[p])
			prevIDs = append(prevIDs, "$"+p)
		}
		var err error
		if before, err = Resolve(version, sets, b.fetch); err != nil {
			t.Fatalf("state before %s: %v", name, err)
		}
		var e *rooms.Event
		if spec.typ == typeCreate {
			e = b.createNamed("$"+name, spec.sender)
		} else {
			e = b.named("$"+name, spec.sender, spec.typ, spec.stateKey, v12Content(version, spec), prevIDs, before, ts[name])
		}
		after[name] = maps.Clone(before)
		if e.IsState() {
			after[name][e.Key()] = e.ID()
		}
	}

	want := maps.Clone(after["START"])
	for _, name := range sc.want {
		e := b.events["$"+name]
		want[e.Key()] = e.ID()
	}
	got := after["END"] // END is a message: the resolution of its prev events
	if !maps.Equal(got, want) {
		f := &fixture{byID: b.events}
		t.Errorf("state at END differs (- got, + want):\n%s", diffStates(f, got, want))
	}
}

// v12Content drops the creator from power levels users: in room version 12
// creators may not appear there, and their power is unlimited anyway.
func v12Content(version string, e scenarioEvent) map[string]any {
	if version != rooms.V12 || e.typ != typePowerLevels {
		return e.content
	}
	c := maps.Clone(e.content)
	users := maps.Clone(c["users"].(map[string]any))
	delete(users, alice)
	c["users"] = users
	return c
}

// prevOrder lists the events so that each follows its prev events.
func prevOrder(t *testing.T, specs map[string]scenarioEvent, prevs map[string][]string) []string {
	var out []string
	done := make(map[string]bool)
	names := slices.Sorted(maps.Keys(specs))
	for len(out) < len(names) {
		progress := false
		for _, n := range names {
			if done[n] {
				continue
			}
			ready := true
			for _, p := range prevs[n] {
				ready = ready && done[p]
			}
			if ready {
				done[n], progress = true, true
				out = append(out, n)
			}
		}
		if !progress {
			t.Fatal("prev_events do not form a DAG")
		}
	}
	return out
}

// createNamed makes a create event with the given ID.
func (b *roomBuilder) createNamed(id, creator string) *rooms.Event {
	if b.version == rooms.V12 {
		b.roomID = "!" + id[1:]
	} else {
		b.roomID = "!room:example.com"
	}
	empty := ""
	b.create = b.make(id, creator, typeCreate, &empty, map[string]any{"room_version": b.version}, nil, nil, 0)
	return b.create
}

// Auth chain difference cases, after Synapse's AuthChainDifferenceTestCase:
// the chains of the state sets include the sets' own events.
func TestAuthDifference(t *testing.T) {
	for _, tc := range []struct {
		name string
		auth map[string][]string // event -> auth events
		sets [][]string
		want []string
	}{{
		name: "a chain split after its second event",
		auth: map[string][]string{"A": nil, "B": {"A"}, "C": {"B"}},
		sets: [][]string{{"A", "B"}, {"C"}},
		want: []string{"C"},
	}, {
		name: "a chain split after its second event, longer on one side",
		auth: map[string][]string{"A": nil, "B": {"A"}, "C": {"B"}, "D": {"C"}},
		sets: [][]string{{"A", "B"}, {"C", "D"}},
		want: []string{"C", "D"},
	}, {
		name: "two branches over a shared chain",
		auth: map[string][]string{"A": nil, "B": {"A"}, "C": {"B"}, "D": {"C"}, "E": {"C", "B"}},
		sets: [][]string{{"A", "B", "E"}, {"C", "D"}},
		want: []string{"D", "E"},
	}, {
		name: "identical sets",
		auth: map[string][]string{"A": nil, "B": {"A"}},
		sets: [][]string{{"B"}, {"B"}, {"A", "B"}},
		want: nil,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			g, ids := authGraph(t, tc.auth)
			var sets [][]int32
			for _, s := range tc.sets {
				var ns []int32
				for _, name := range s {
					ns = append(ns, ids[name])
				}
				sets = append(sets, ns)
			}
			got := names(g, g.authDifference(sets))
			if !slices.Equal(got, tc.want) {
				t.Errorf("auth difference %v, want %v", got, tc.want)
			}
		})
	}
}

// Conflicted state subgraph cases: the events on auth paths between
// conflicted events, leaving out conflicted events that only end a path.
func TestConflictedSubgraph(t *testing.T) {
	for _, tc := range []struct {
		name       string
		auth       map[string][]string
		conflicted []string
		want       []string
	}{{
		name:       "a chain between two conflicted events",
		auth:       map[string][]string{"A": nil, "B": {"A"}, "C": {"B"}, "D": {"C"}},
		conflicted: []string{"B", "D"},
		want:       []string{"C", "D"},
	}, {
		name:       "side branches that lead to no conflicted event stay out",
		auth:       map[string][]string{"A": nil, "B": {"A"}, "X": {"A"}, "C": {"B", "X"}, "D": {"C"}},
		conflicted: []string{"B", "D"},
		want:       []string{"C", "D"},
	}, {
		name:       "unrelated conflicted events have no subgraph",
		auth:       map[string][]string{"A": nil, "B": {"A"}, "C": {"A"}},
		conflicted: []string{"B", "C"},
		want:       nil,
	}, {
		name:       "paths to several conflicted events",
		auth:       map[string][]string{"A": nil, "B": {"A"}, "C": {"B"}, "D": {"C", "A"}, "E": {"D"}},
		conflicted: []string{"A", "C", "E"},
		want:       []string{"B", "C", "D", "E"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			g, ids := authGraph(t, tc.auth)
			var conflicted []int32
			for _, name := range tc.conflicted {
				conflicted = append(conflicted, ids[name])
			}
			got := names(g, g.conflictedSubgraph(conflicted))
			if !slices.Equal(got, tc.want) {
				t.Errorf("subgraph %v, want %v", got, tc.want)
			}
		})
	}
}

// authGraph loads events named by auth's keys, linked by auth_events.
func authGraph(t *testing.T, auth map[string][]string) (*graph, map[string]int32) {
	b := newRoomBuilder(t, rooms.V11, "g")
	b.roomID = "!room:example.com"
	for name, as := range auth {
		var ids []string
		for _, a := range as {
			ids = append(ids, "$"+a)
		}
		key := name
		b.make("$"+name, alice, "m.test", &key, map[string]any{}, []string{}, ids, 0)
	}
	g := newGraph(b.fetch, nil, 0)
	all := slices.Sorted(maps.Keys(auth))
	var ids []string
	for _, name := range all {
		ids = append(ids, "$"+name)
	}
	ns, err := g.load(ids)
	if err != nil {
		t.Fatal(err)
	}
	byName := make(map[string]int32)
	for i, name := range all {
		byName[name] = ns[i]
	}
	return g, byName
}

// names returns the sorted names of nodes made by authGraph.
func names(g *graph, ns []int32) []string {
	var out []string
	for _, n := range ns {
		out = append(out, g.event(n).ID()[1:])
	}
	slices.Sort(out)
	return out
}

// The lexicographically smallest topological order, with ties broken by
// event ID alone (Synapse's LexicographicalTestCase).
func TestPowerOrderIsLexicographicallySmallest(t *testing.T) {
	g, ids := authGraph(t, map[string][]string{
		"l": {"o"}, "m": {"n", "o"}, "n": {"o"}, "o": nil, "p": {"o"},
	})
	r := &resolution{g: g}
	in := make([]bool, len(g.nodes))
	var events []int32
	for _, n := range ids {
		in[n] = true
		events = append(events, n)
	}
	slices.Sort(events)
	order, err := r.powerOrder(events, in)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, n := range order {
		got = append(got, g.event(n).ID()[1:])
	}
	if want := []string{"o", "l", "n", "m", "p"}; !slices.Equal(got, want) {
		t.Errorf("order %v, want %v", got, want)
	}
}

// Among events ready at once, the sender with more power goes first, then
// the earlier event, whatever their IDs.
func TestPowerOrderPrefersPowerThenTime(t *testing.T) {
	for _, version := range []string{rooms.V11, rooms.V12} {
		t.Run("v"+version, func(t *testing.T) {
			b := newRoomBuilder(t, version, "po")
			create := b.createRoom(alice)
			state := StateMap{createKey: create.ID()}
			add := func(e *rooms.Event) *rooms.Event {
				next, ok := apply(state, e, b.fetch, create)
				if !ok {
					t.Fatalf("%s refused", e)
				}
				state = next
				return e
			}
			add(b.event(alice, typeMember, alice, map[string]any{"membership": "join"}, []string{create.ID()}, state, 1))
			users := map[string]any{bob: 50, charlie: 50}
			if version == rooms.V11 {
				users[alice] = 100
			}
			add(b.event(alice, typePowerLevels, "", map[string]any{"users": users}, nil, state, 2))
			add(b.event(alice, typeJoinRules, "", map[string]any{"join_rule": "public"}, nil, state, 3))
			for _, u := range []string{bob, charlie, zara} {
				add(b.event(u, typeMember, u, map[string]any{"membership": "join"}, nil, state, 4))
			}
			// Concurrent topics: zara's is earliest, alice's latest; bob
			// and charlie tie on power and time.
			var events []*rooms.Event
			for _, s := range []struct {
				sender string
				ts     int64
			}{{zara, 10}, {charlie, 11}, {bob, 11}, {alice, 12}} {
				events = append(events, b.event(s.sender, "m.room.topic", "", map[string]any{"topic": s.sender}, nil, state, s.ts))
			}
			g := newGraph(b.fetch, nil, 0)
			var ids []string
			for _, e := range events {
				ids = append(ids, e.ID())
			}
			ns, err := g.load(ids)
			if err != nil {
				t.Fatal(err)
			}
			r := &resolution{g: g, v21: version == rooms.V12}
			in := make([]bool, len(g.nodes))
			for _, n := range ns {
				in[n] = true
			}
			order, err := r.powerOrder(ns, in)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, n := range order {
				got = append(got, g.event(n).Sender())
			}
			// bob's and charlie's events tie on power and time: the lower
			// event ID (the earlier made) goes first.
			want := []string{alice, charlie, bob, zara}
			if !slices.Equal(got, want) {
				t.Errorf("order %v, want %v", got, want)
			}
		})
	}
}

func TestResolveShortcuts(t *testing.T) {
	noFetch := func(id string) (*rooms.Event, error) { return nil, fmt.Errorf("no %s", id) }
	s := StateMap{createKey: "$c", powerLevelsKey: "$p"}
	t.Run("no sets resolve to the empty state", func(t *testing.T) {
		got, err := Resolve(rooms.V12, nil, noFetch)
		if err != nil || len(got) != 0 {
			t.Errorf("got %v, %v", got, err)
		}
	})
	t.Run("identical sets resolve to a copy without lookups", func(t *testing.T) {
		got, err := Resolve(rooms.V11, []StateMap{s, maps.Clone(s)}, noFetch)
		if err != nil || !maps.Equal(got, s) {
			t.Fatalf("got %v, %v", got, err)
		}
		got[createKey] = "$other"
		if s[createKey] != "$c" {
			t.Error("the result shares its map with the input")
		}
	})
	t.Run("unknown room versions are refused", func(t *testing.T) {
		if _, err := Resolve("9", []StateMap{s}, noFetch); err == nil {
			t.Error("no error")
		}
	})
	t.Run("a missing event is an error", func(t *testing.T) {
		if _, err := Resolve(rooms.V11, []StateMap{s, {createKey: "$c"}}, noFetch); err == nil {
			t.Error("no error")
		}
	})
}
