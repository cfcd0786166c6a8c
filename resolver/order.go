package resolver

import (
	"cmp"
	"container/heap"
	"slices"

	"github.com/parley-p2p/parley/rooms"
)

// powerOrder sorts events into the reverse topological power ordering:
// Kahn's algorithm over their auth_events links (an event after the auth
// events it cites), taking at each step the ready event whose sender has the
// highest power level according to the event's own auth events, then the
// lowest origin_server_ts, then the lowest event ID. in marks the events.
func (r *resolution) powerOrder(events []int32, in []bool) ([]int32, error) {
	g := r.g
	q := &powerQueue{g: g}
	pending := make(map[int32]int, len(events)) // auth events still to come
	children := make(map[int32][]int32)
	for _, n := range events {
		if _, err := r.senderLevel(n); err != nil {
			return nil, err
		}
		deg := 0
		for _, a := range g.nodes[n].auth {
			if in[a] {
				deg++
				children[a] = append(children[a], n)
			}
		}
		pending[n] = deg
		if deg == 0 {
			q.items = append(q.items, n)
		}
	}
	heap.Init(q)
	out := make([]int32, 0, len(events))
	for q.Len() > 0 {
		n := heap.Pop(q).(int32)
		out = append(out, n)
		for _, c := range children[n] {
			pending[c]--
			if pending[c] == 0 {
				heap.Push(q, c)
			}
		}
	}
	// Events on an auth cycle never become ready. Hash event IDs rule
	// cycles out; should one appear anyway, the events go last in a fixed
	// order rather than vanish.
	if len(out) < len(events) {
		var left []int32
		for _, n := range events {
			if pending[n] > 0 {
				left = append(left, n)
			}
		}
		slices.SortFunc(left, q.compare)
		out = append(out, left...)
	}
	return out, nil
}

// powerQueue is the ready set of powerOrder, smallest first.
type powerQueue struct {
	g     *graph
	items []int32
}

func (q *powerQueue) compare(a, b int32) int {
	x, y := &q.g.nodes[a], &q.g.nodes[b]
	if c := cmp.Compare(y.level, x.level); c != 0 { // higher power first
		return c
	}
	if c := cmp.Compare(x.ev.OriginServerTS(), y.ev.OriginServerTS()); c != 0 {
		return c
	}
	return cmp.Compare(x.ev.ID(), y.ev.ID())
}

func (q *powerQueue) Len() int           { return len(q.items) }
func (q *powerQueue) Less(i, j int) bool { return q.compare(q.items[i], q.items[j]) < 0 }
func (q *powerQueue) Swap(i, j int)      { q.items[i], q.items[j] = q.items[j], q.items[i] }
func (q *powerQueue) Push(x any)         { q.items = append(q.items, x.(int32)) }
func (q *powerQueue) Pop() any {
	n := q.items[len(q.items)-1]
	q.items = q.items[:len(q.items)-1]
	return n
}

// infinity is the mainline position of an event whose power levels chain
// meets no mainline event.
const infinity = int32(1<<31 - 1)

// mainlineOrder sorts events by their mainline position relative to the
// power levels event of partial (greatest position first), then by
// origin_server_ts, then by event ID.
func (r *resolution) mainlineOrder(partial map[rooms.StateKey]int32, events []int32) []int32 {
	g := r.g
	// position[n]: the mainline index of n if it is on the mainline, else
	// the position of the first mainline event reached from n through
	// power levels auth events, n included (absent until computed).
	const walking = int32(-1)
	position := make(map[int32]int32)
	if pl, ok := partial[powerLevelsKey]; ok {
		i := int32(0)
		for n := pl; n != noNode; n = g.powerLevelsAuth(n) {
			if _, seen := position[n]; seen {
				break // a cycle; hash event IDs rule it out
			}
			position[n] = i
			i++
		}
	}
	chainPosition := func(start int32) int32 {
		var path []int32
		p := infinity
		for n := start; n != noNode; n = g.powerLevelsAuth(n) {
			if known, ok := position[n]; ok {
				if known != walking {
					p = known
				}
				break
			}
			position[n] = walking
			path = append(path, n)
		}
		for _, n := range path {
			position[n] = p
		}
		return p
	}

	type keyed struct {
		n   int32
		pos int32
	}
	ks := make([]keyed, len(events))
	for i, n := range events {
		ks[i] = keyed{n: n, pos: infinity}
		if pl := g.powerLevelsAuth(n); pl != noNode {
			ks[i].pos = chainPosition(pl)
		}
	}
	slices.SortFunc(ks, func(a, b keyed) int {
		if c := cmp.Compare(b.pos, a.pos); c != 0 { // greater position first
			return c
		}
		x, y := g.event(a.n), g.event(b.n)
		if c := cmp.Compare(x.OriginServerTS(), y.OriginServerTS()); c != 0 {
			return c
		}
		return cmp.Compare(x.ID(), y.ID())
	})
	out := make([]int32, len(ks))
	for i, k := range ks {
		out[i] = k.n
	}
	return out
}

// powerLevelsAuth returns the power levels event among n's auth events, or
// noNode.
func (g *graph) powerLevelsAuth(n int32) int32 {
	for _, a := range g.nodes[n].auth {
		if e := g.nodes[a].ev; e.IsState() && e.Key() == powerLevelsKey {
			return a
		}
	}
	return noNode
}
