package dag

import (
	"fmt"
	"maps"
	"sync"

	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/rooms"
)

// stateSnap is a room state in memory, with what storing it takes when
// it is new: written whole, or as a delta from a parent snapshot. A snap
// with neither is already stored.
type stateSnap struct {
	id     string
	m      store.StateMap
	whole  bool
	parent string
	delta  store.StateDelta
}

func (s *stateSnap) isNew() bool { return s.whole || s.parent != "" }

// wholeSnap is a state with no parent: stored as a checkpoint.
func wholeSnap(m store.StateMap) *stateSnap {
	return &stateSnap{id: store.SnapshotID(m), m: m, whole: true}
}

// storedSnap is a state known by its name.
func storedSnap(id string, m store.StateMap) *stateSnap { return &stateSnap{id: id, m: m} }

// withEntry is the state after a state event: s plus one entry.
func (s *stateSnap) withEntry(k rooms.StateKey, eventID string) *stateSnap {
	m := maps.Clone(s.m)
	m[k] = eventID
	d := store.StateDelta{k: eventID}
	return &stateSnap{id: store.DeltaID(s.id, d), m: m, parent: s.id, delta: d}
}

// derived names the state m, reached from one of bases (by resolution),
// as a delta from the base it differs least from. A state equal to a
// base is that base.
func derived(m store.StateMap, bases []*stateSnap) *stateSnap {
	var best *stateSnap
	var bestDelta store.StateDelta
	for _, b := range bases {
		d := store.Diff(b.m, m)
		if best == nil || len(d) < len(bestDelta) || (len(d) == len(bestDelta) && b.id < best.id) {
			best, bestDelta = b, d
		}
	}
	if len(bestDelta) == 0 {
		return best
	}
	return &stateSnap{id: store.DeltaID(best.id, bestDelta), m: m, parent: best.id, delta: bestDelta}
}

// put stores the snap if it is new. Its parent must be stored already or
// in the same transaction, before it.
func (s *stateSnap) put(t *store.Txn) error {
	var err error
	switch {
	case s.whole:
		_, err = t.PutSnapshot(s.m)
	case s.parent != "":
		err = t.PutDelta(s.id, s.parent, s.delta, s.m)
	}
	if err != nil {
		return fmt.Errorf("snapshot %s: %w", s.id, err)
	}
	return nil
}

// appendNew adds the snaps that are new and not yet listed to list, in
// order: a delta's parent must come first.
func appendNew(list []*stateSnap, snaps ...*stateSnap) []*stateSnap {
	for _, s := range snaps {
		if s == nil || !s.isNew() {
			continue
		}
		dup := false
		for _, l := range list {
			dup = dup || l.id == s.id
		}
		if !dup {
			list = append(list, s)
		}
	}
	return list
}

// stateCache keeps recently used room states, bounded by an estimate of
// the bytes they hold (its budget is stateCacheBytes, in cache.go) rather
// than by their number: one state of a big
// room can outweigh thousands of small ones. Like genCache it keeps two
// generations; when the current one reaches half the budget it becomes
// the old one and the old one is dropped, so the cache holds at most the
// budget plus one state.
type stateCache struct {
	mu                 sync.Mutex
	budget             int64
	cur, old           map[string]store.StateMap
	curBytes, oldBytes int64
}

func newStateCache(budget int64) *stateCache {
	return &stateCache{budget: budget, cur: map[string]store.StateMap{}, old: map[string]store.StateMap{}}
}

// StateBytes estimates the memory a state map holds: per entry, the
// map's slot and the three strings' headers and bytes.
func StateBytes(m store.StateMap) int64 {
	var b int64
	for k, id := range m {
		b += 80 + int64(len(k.Type)+len(k.StateKey)+len(id))
	}
	return b + 64
}

func (c *stateCache) get(id string) (store.StateMap, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if m, ok := c.cur[id]; ok {
		return m, true
	}
	if m, ok := c.old[id]; ok {
		delete(c.old, id)
		size := StateBytes(m)
		c.oldBytes -= size
		c.putLocked(id, m, size)
		return m, true
	}
	return nil, false
}

func (c *stateCache) put(id string, m store.StateMap) {
	size := StateBytes(m)
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.cur[id]; ok {
		return
	}
	if old, ok := c.old[id]; ok {
		delete(c.old, id)
		c.oldBytes -= StateBytes(old)
	}
	c.putLocked(id, m, size)
}

func (c *stateCache) putLocked(id string, m store.StateMap, size int64) {
	if c.curBytes+size > c.budget/2 && len(c.cur) > 0 {
		c.old, c.oldBytes = c.cur, c.curBytes
		c.cur, c.curBytes = map[string]store.StateMap{}, 0
	}
	c.cur[id] = m
	c.curBytes += size
}

// bytes is the estimate of what the cache holds.
func (c *stateCache) bytes() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.curBytes + c.oldBytes
}
