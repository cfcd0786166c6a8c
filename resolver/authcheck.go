package resolver

import (
	"github.com/parley-p2p/parley/rooms"
)

// authChecks is the iterative auth checks algorithm: each event in turn is
// checked against partial and, if the authorization rules allow it, takes
// its place in partial. A key the rules need that partial lacks is read from
// the event's own auth events that were not rejected; in room version 12 the
// create event, which auth_events never lists, comes from the room ID.
func (r *resolution) authChecks(partial map[rooms.StateKey]int32, events []int32) error {
	for _, n := range events {
		lookup, err := r.lookup(n, partial)
		if err != nil {
			return err
		}
		ev := r.g.event(n)
		if rooms.Allowed(ev, lookup) == nil {
			partial[ev.Key()] = n
		}
	}
	return nil
}

// senderLevel returns the power level of n's sender according to n's own
// auth events (and, in v12, the create event its room ID names). A power
// levels event that does not parse counts as level 0 for everyone but the
// creators; the auth checks reject such events anyway.
func (r *resolution) senderLevel(n int32) (int64, error) {
	nd := &r.g.nodes[n]
	if nd.hasLevel {
		return nd.level, nil
	}
	lookup, err := r.lookup(n, nil)
	if err != nil {
		return 0, err
	}
	var level int64
	if pl, err := rooms.PowerLevelsFrom(lookup); err == nil {
		level = pl.UserLevel(nd.ev.Sender())
	}
	nd = &r.g.nodes[n] // lookup may have grown the node slice
	nd.level, nd.hasLevel = level, true
	return level, nil
}

// lookup returns the state an auth check of n sees: partial first (may be
// nil), then n's non-rejected auth events, then for v12 the implied create
// event.
func (r *resolution) lookup(n int32, partial map[rooms.StateKey]int32) (rooms.StateFunc, error) {
	g := r.g
	create := noNode
	if r.v21 {
		var err error
		if create, err = g.createFor(g.event(n)); err != nil {
			return nil, err
		}
	}
	auth := g.nodes[n].auth
	return func(k rooms.StateKey) *rooms.Event {
		if m, ok := partial[k]; ok {
			return g.event(m)
		}
		for _, a := range auth {
			if e := g.event(a); e.IsState() && e.Key() == k && !g.isRejected(a) {
				return e
			}
		}
		if k == createKey && create != noNode {
			return g.event(create)
		}
		return nil
	}, nil
}
