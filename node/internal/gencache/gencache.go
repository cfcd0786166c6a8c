// Package gencache is a bounded map that keeps about the last entries
// used, bounded by count and, optionally, by bytes. It has no eviction
// callbacks and no goroutines: the node's caches of events, states and
// verdicts are built on it.
package gencache

import (
	"sync"
)

// Cache is a bounded map that keeps roughly the last n..2n entries
// used: when the current generation fills, it becomes the old one and
// the oldest generation is dropped. A cache made with NewSized also
// bounds its bytes: a generation fills at maxBytes/2 as well, so the two
// hold at most about maxBytes, however large the entries (20,000 cached
// 60 KB events were 1.2 GB).
type Cache[K comparable, V any] struct {
	mu       sync.Mutex
	n        int
	maxBytes int64
	size     func(V) int // nil: count entries only
	cur, old map[K]V
	curBytes int64
}

// New bounds entries to about 2n.
func New[K comparable, V any](n int) *Cache[K, V] {
	return &Cache[K, V]{n: n, cur: make(map[K]V), old: make(map[K]V)}
}

// NewSized bounds entries to about 2n and bytes, as size counts them,
// to about maxBytes.
func NewSized[K comparable, V any](n int, maxBytes int64, size func(V) int) *Cache[K, V] {
	c := New[K, V](n)
	c.maxBytes, c.size = maxBytes, size
	return c
}

// Get returns the entry for k, if cached.
func (c *Cache[K, V]) Get(k K) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.cur[k]; ok {
		return v, true
	}
	if v, ok := c.old[k]; ok {
		delete(c.old, k) // promoted: counted once, in the current generation
		c.putLocked(k, v)
		return v, true
	}
	var zero V
	return zero, false
}

// Put caches v under k.
func (c *Cache[K, V]) Put(k K, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.putLocked(k, v)
}

func (c *Cache[K, V]) putLocked(k K, v V) {
	var sz int64
	if c.size != nil {
		sz = int64(c.size(v))
		if sz > c.maxBytes/2 {
			return // would flush everything else; not worth caching
		}
	}
	if _, dup := c.cur[k]; !dup {
		if len(c.cur) >= c.n || c.size != nil && c.curBytes+sz > c.maxBytes/2 {
			c.old, c.cur, c.curBytes = c.cur, make(map[K]V), 0
		}
		c.curBytes += sz
	}
	c.cur[k] = v
}

// Bytes returns the bytes held, as size counts them.
func (c *Cache[K, V]) Bytes() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var total int64
	if c.size != nil {
		for _, v := range c.old {
			total += int64(c.size(v))
		}
		total += c.curBytes
	}
	return total
}

// Del forgets an entry (an event whose write failed).
func (c *Cache[K, V]) Del(k K) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.cur[k]; ok {
		if c.size != nil {
			c.curBytes -= int64(c.size(v))
		}
		delete(c.cur, k)
	}
	delete(c.old, k)
}
