package node

import "sync"

// genCache is a bounded map that keeps roughly the last n..2n entries
// used: when the current generation fills, it becomes the old one and
// the oldest generation is dropped.
type genCache[K comparable, V any] struct {
	mu       sync.Mutex
	n        int
	cur, old map[K]V
}

func newGenCache[K comparable, V any](n int) *genCache[K, V] {
	return &genCache[K, V]{n: n, cur: make(map[K]V), old: make(map[K]V)}
}

func (c *genCache[K, V]) get(k K) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.cur[k]; ok {
		return v, true
	}
	if v, ok := c.old[k]; ok {
		c.putLocked(k, v)
		return v, true
	}
	var zero V
	return zero, false
}

func (c *genCache[K, V]) put(k K, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.putLocked(k, v)
}

func (c *genCache[K, V]) putLocked(k K, v V) {
	if len(c.cur) >= c.n {
		c.old, c.cur = c.cur, make(map[K]V, c.n)
	}
	c.cur[k] = v
}

func (c *genCache[K, V]) del(k K) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.cur, k)
	delete(c.old, k)
}
