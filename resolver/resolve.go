package resolver

import (
	"fmt"
	"maps"

	"github.com/parley-p2p/parley/rooms"
)

// StateMap is a room state: the event ID at each (type, state_key).
type StateMap map[rooms.StateKey]string

// EventFunc looks an event up by ID. An unknown ID is an error, and so is
// a missing event anywhere in the auth chains of the state being resolved.
type EventFunc func(id string) (*rooms.Event, error)

// Options tune [ResolveWith]. The zero value is what [Resolve] uses.
type Options struct {
	// Rejected reports whether an event was rejected on receipt (it failed
	// the auth checks against its own auth events). The iterative auth
	// checks never fall back to a rejected auth event. Nil means no event
	// was rejected.
	Rejected func(id string) bool
}

const (
	typeCreate      = "m.room.create"
	typeMember      = "m.room.member"
	typePowerLevels = "m.room.power_levels"
	typeJoinRules   = "m.room.join_rules"
)

var (
	createKey      = rooms.StateKey{Type: typeCreate}
	powerLevelsKey = rooms.StateKey{Type: typePowerLevels}
)

// Resolve returns the resolved state of the given state sets (the states
// after each forward extremity, or after each prev event of one event).
// version is rooms.V10 or rooms.V11 (state resolution v2) or rooms.V12 (v2.1). With one
// set, or all identical, it returns a copy of that set without further work.
// The order of sets does not matter.
func Resolve(version string, sets []StateMap, fetch EventFunc) (StateMap, error) {
	return ResolveWith(version, sets, fetch, Options{})
}

// ResolveWith is [Resolve] with options.
func ResolveWith(version string, sets []StateMap, fetch EventFunc, opts Options) (StateMap, error) {
	var v21 bool
	switch version {
	case rooms.V10, rooms.V11:
	case rooms.V12:
		v21 = true
	default:
		return nil, fmt.Errorf("resolver: unsupported room version %q", version)
	}
	if len(sets) == 0 {
		return StateMap{}, nil
	}
	if allEqual(sets) {
		return maps.Clone(sets[0]), nil
	}
	size := 0
	for _, s := range sets {
		size = max(size, len(s))
	}
	// The auth chains add some events beyond the largest state.
	r := &resolution{v21: v21, g: newGraph(fetch, opts.Rejected, size+size/4)}
	out, err := r.run(sets)
	if err != nil {
		return nil, fmt.Errorf("resolver: %w", err)
	}
	return out, nil
}

// allEqual reports whether every set equals the first.
func allEqual(sets []StateMap) bool {
	for _, s := range sets[1:] {
		if !maps.Equal(s, sets[0]) {
			return false
		}
	}
	return true
}

// resolution holds the working data of one Resolve call.
type resolution struct {
	v21 bool
	g   *graph
}

// split divides the input into the unconflicted state map and the IDs of
// the conflicted state set.
func split(sets []StateMap) (StateMap, []string) {
	unconflicted := make(StateMap, len(sets[0]))
	conflicted := make(map[string]struct{})
	for k, id := range sets[0] {
		same := true
		for _, s := range sets[1:] {
			if other, ok := s[k]; !ok || other != id {
				same = false
				break
			}
		}
		if same {
			unconflicted[k] = id
		}
	}
	for _, s := range sets {
		for k, id := range s {
			if _, ok := unconflicted[k]; !ok {
				conflicted[id] = struct{}{}
			}
		}
	}
	ids := make([]string, 0, len(conflicted))
	for id := range conflicted {
		ids = append(ids, id)
	}
	return unconflicted, ids
}

func (r *resolution) run(sets []StateMap) (StateMap, error) {
	g := r.g
	unconflicted, conflictedIDs := split(sets)

	// Load every state event with its full auth chain.
	setNodes := make([][]int32, len(sets))
	for i, s := range sets {
		ids := make([]string, 0, len(s))
		for _, id := range s {
			ids = append(ids, id)
		}
		ns, err := g.load(ids)
		if err != nil {
			return nil, err
		}
		setNodes[i] = ns
	}
	conflicted := make([]int32, len(conflictedIDs))
	for i, id := range conflictedIDs {
		conflicted[i] = g.index[id]
	}
	full, inFull, err := r.fullConflictedSet(setNodes, conflicted)
	if err != nil {
		return nil, err
	}

	// Step 1: the power events of the full conflicted set and the events of
	// their auth chains that are in it, in reverse topological power order.
	power, inPower := r.powerEvents(full, inFull)
	sortedPower, err := r.powerOrder(power, inPower)
	if err != nil {
		return nil, err
	}

	// Step 2: iterative auth checks from the unconflicted state (v2) or
	// from an empty state (v2.1).
	partial := make(map[rooms.StateKey]int32)
	if !r.v21 {
		for k, id := range unconflicted {
			partial[k] = g.index[id]
		}
	}
	if err := r.authChecks(partial, sortedPower); err != nil {
		return nil, err
	}

	// Steps 3 and 4: the other events in mainline order, checked on top.
	var rest []int32
	for _, n := range full {
		if !inPower[n] {
			rest = append(rest, n)
		}
	}
	if err := r.authChecks(partial, r.mainlineOrder(partial, rest)); err != nil {
		return nil, err
	}

	// Step 5: the unconflicted state wins.
	out := make(StateMap, len(partial)+len(unconflicted))
	for k, n := range partial {
		out[k] = g.event(n).ID()
	}
	maps.Copy(out, unconflicted)
	return out, nil
}

// fullConflictedSet returns the conflicted events, the auth difference and,
// for v2.1, the conflicted state subgraph, as a list and as a membership
// slice indexed by node.
func (r *resolution) fullConflictedSet(setNodes [][]int32, conflicted []int32) ([]int32, []bool, error) {
	g := r.g
	inFull := make([]bool, len(g.nodes))
	var full []int32
	add := func(ns []int32) {
		for _, n := range ns {
			if !inFull[n] && g.event(n).IsState() {
				inFull[n] = true
				full = append(full, n)
			}
		}
	}
	add(conflicted)
	add(g.authDifference(setNodes))
	if !r.v21 {
		return full, inFull, nil
	}
	add(g.conflictedSubgraph(conflicted))
	// Load the create events the room IDs imply now, so that no node
	// appears after the caller has sized its per-node slices.
	for _, n := range full {
		if _, err := g.createFor(g.event(n)); err != nil {
			return nil, nil, err
		}
	}
	return full, inFull, nil
}

// powerEvents returns the power events of the full conflicted set together
// with the events of their auth chains that are in it, as a list and as a
// membership slice indexed by node.
func (r *resolution) powerEvents(full []int32, inFull []bool) ([]int32, []bool) {
	g := r.g
	var power []int32
	in := make([]bool, len(g.nodes))
	for _, n := range full {
		if isPowerEvent(g.event(n)) {
			power = append(power, n)
			in[n] = true
		}
	}
	g.walkAuthChains(power, func(n int32) {
		if inFull[n] && !in[n] {
			in[n] = true
			power = append(power, n)
		}
	})
	return power, in
}

// isPowerEvent reports whether e might remove someone's ability to do
// something: power levels, join rules, and kicks and bans, as the spec lists
// them (the create event is not one; Synapse counts it too).
func isPowerEvent(e *rooms.Event) bool {
	if !e.IsState() {
		return false
	}
	switch e.Type() {
	case typePowerLevels, typeJoinRules:
		return true
	case typeMember:
		m := e.Membership()
		return (m == "leave" || m == "ban") && e.Sender() != *e.StateKey()
	}
	return false
}
