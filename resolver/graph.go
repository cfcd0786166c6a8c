package resolver

import (
	"fmt"

	"github.com/parley-p2p/parley/rooms"
)

// graph is the part of the auth DAG one resolution looks at: every event of
// the input state sets and their full auth chains, numbered densely so that
// the walks below use slices instead of maps keyed by event ID.
type graph struct {
	fetch    EventFunc
	rejected func(string) bool
	index    map[string]int32
	nodes    []node

	// seen and epoch give each walk a fresh visited set without clearing or
	// allocating: a node is visited in the current walk iff seen[n] == epoch.
	seen  []uint32
	epoch uint32

	// creates caches the create event implied by a v12 room ID.
	creates map[string]int32
}

// node is one event with its auth edges resolved to node numbers.
type node struct {
	ev   *rooms.Event
	auth []int32

	// level is the sender's power level read from the event's own auth
	// events, computed on first use (hasLevel).
	level    int64
	hasLevel bool
}

const noNode int32 = -1

// newGraph makes an empty graph with room for about size events.
func newGraph(fetch EventFunc, rejected func(string) bool, size int) *graph {
	return &graph{
		fetch:    fetch,
		rejected: rejected,
		index:    make(map[string]int32, size),
		nodes:    make([]node, 0, size),
		creates:  make(map[string]int32),
	}
}

func (g *graph) event(n int32) *rooms.Event { return g.nodes[n].ev }

// discover returns the node of id, fetching the event if it is new. New
// nodes are appended to *pending so that the caller resolves their edges.
func (g *graph) discover(id string, pending *[]int32) (int32, error) {
	if n, ok := g.index[id]; ok {
		return n, nil
	}
	ev, err := g.fetch(id)
	if err != nil {
		return noNode, fmt.Errorf("fetch %s: %w", id, err)
	}
	if ev == nil {
		return noNode, fmt.Errorf("fetch %s: no event", id)
	}
	if ev.ID() != id {
		return noNode, fmt.Errorf("fetch %s: got event %s", id, ev.ID())
	}
	n := int32(len(g.nodes))
	g.nodes = append(g.nodes, node{ev: ev})
	g.index[id] = n
	*pending = append(*pending, n)
	return n, nil
}

// load adds the events ids and their full auth chains to the graph and
// returns their node numbers. It walks with an explicit work list, so long
// chains cost no stack.
func (g *graph) load(ids []string) ([]int32, error) {
	var pending []int32
	out := make([]int32, len(ids))
	for i, id := range ids {
		n, err := g.discover(id, &pending)
		if err != nil {
			return nil, err
		}
		out[i] = n
	}
	for len(pending) > 0 {
		n := pending[len(pending)-1]
		pending = pending[:len(pending)-1]
		authIDs := g.nodes[n].ev.AuthEvents()
		auth := make([]int32, 0, len(authIDs))
		for _, id := range authIDs {
			a, err := g.discover(id, &pending)
			if err != nil {
				return nil, fmt.Errorf("auth events of %s: %w", g.nodes[n].ev.ID(), err)
			}
			auth = append(auth, a)
		}
		g.nodes[n].auth = auth
	}
	if cap(g.seen) < len(g.nodes) {
		g.seen = make([]uint32, len(g.nodes), cap(g.nodes))
	} else {
		g.seen = g.seen[:len(g.nodes)]
	}
	return out, nil
}

// newWalk starts a fresh visited set.
func (g *graph) newWalk() {
	g.epoch++
	if g.epoch == 0 { // wrapped: clear once and start again
		clear(g.seen)
		g.epoch = 1
	}
}

// visit marks n visited in the current walk and reports whether it was new.
func (g *graph) visit(n int32) bool {
	if g.seen[n] == g.epoch {
		return false
	}
	g.seen[n] = g.epoch
	return true
}

// walkAuthChains calls f once for every event in the auth chains of roots:
// the events reachable from them through one or more auth_events links. A
// root is reported only if another root's chain reaches it.
func (g *graph) walkAuthChains(roots []int32, f func(int32)) {
	var stack []int32
	for _, r := range roots {
		stack = append(stack, g.nodes[r].auth...)
	}
	g.walk(stack, f)
}

// walkClosure is walkAuthChains with every root reported too.
func (g *graph) walkClosure(roots []int32, f func(int32)) {
	g.walk(append([]int32(nil), roots...), f)
}

// walk reports every event reachable from stack through zero or more
// auth_events links once, using stack as its work list.
func (g *graph) walk(stack []int32, f func(int32)) {
	g.newWalk()
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if !g.visit(n) {
			continue
		}
		f(n)
		stack = append(stack, g.nodes[n].auth...)
	}
}

// authDifference returns the events that are in the full auth chain of some
// state set but not of all of them. sets holds each state set's events.
//
// The full auth chain of a state set is taken to include the set's own
// events, as Synapse does (its auth chain difference tests pin this down).
// The spec's wording, the union of the auth chains of the set's events, can
// leave them out; the two readings differ only for unconflicted events, which
// this one never counts as part of the difference.
func (g *graph) authDifference(sets [][]int32) []int32 {
	count := make([]int32, len(g.nodes))
	for _, set := range sets {
		g.walkClosure(set, func(n int32) { count[n]++ })
	}
	var diff []int32
	for n, c := range count {
		if c > 0 && int(c) < len(sets) {
			diff = append(diff, int32(n))
		}
	}
	return diff
}

// conflictedSubgraph returns the events of the conflicted state subgraph
// (MSC4297) that lie on an auth_events path from one conflicted event to
// another, leaving out conflicted events that only end such a path: the
// caller adds all conflicted events anyway. An event is on such a path iff a
// conflicted event reaches it and it reaches a conflicted event through at
// least one link; an iterative post-order walk down from the conflicted
// events decides the second half once per event.
func (g *graph) conflictedSubgraph(conflicted []int32) []int32 {
	isConflicted := make([]bool, len(g.nodes))
	for _, c := range conflicted {
		isConflicted[c] = true
	}
	const (
		unknown = iota
		open    // on the walk's stack
		no
		yes // reaches a conflicted event through one or more links
	)
	reaches := make([]uint8, len(g.nodes))
	type frame struct {
		n    int32
		next int
	}
	var stack []frame
	var out []int32
	for _, c := range conflicted {
		if reaches[c] != unknown {
			continue
		}
		reaches[c] = open
		stack = append(stack, frame{n: c})
		for len(stack) > 0 {
			top := &stack[len(stack)-1]
			auth := g.nodes[top.n].auth
			if top.next < len(auth) {
				a := auth[top.next]
				top.next++
				if reaches[a] == unknown {
					reaches[a] = open
					stack = append(stack, frame{n: a})
				}
				continue
			}
			r := uint8(no)
			for _, a := range auth {
				// An open auth event would mean a cycle, which event IDs
				// that are hashes rule out; it counts as not reaching.
				if isConflicted[a] || reaches[a] == yes {
					r = yes
					break
				}
			}
			reaches[top.n] = r
			if r == yes {
				out = append(out, top.n)
			}
			stack = stack[:len(stack)-1]
		}
	}
	return out
}

// createFor returns the node of the create event that a v12 event's room ID
// names, loading it if needed, or noNode if the room ID is not of that form.
func (g *graph) createFor(ev *rooms.Event) (int32, error) {
	if ev.IsState() && ev.Key() == createKey {
		return g.index[ev.ID()], nil
	}
	roomID := ev.RoomID()
	if n, ok := g.creates[roomID]; ok {
		return n, nil
	}
	if len(roomID) < 2 || roomID[0] != '!' {
		g.creates[roomID] = noNode
		return noNode, nil
	}
	ns, err := g.load([]string{"$" + roomID[1:]})
	if err != nil {
		return noNode, fmt.Errorf("create event of room %s: %w", roomID, err)
	}
	g.creates[roomID] = ns[0]
	return ns[0], nil
}

// isRejected reports whether the caller marked n as rejected.
func (g *graph) isRejected(n int32) bool {
	return g.rejected != nil && g.rejected(g.nodes[n].ev.ID())
}
