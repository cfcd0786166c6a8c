package node

import (
	"sync"

	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/rooms"
)

// genCache is a bounded map that keeps roughly the last n..2n entries
// used: when the current generation fills, it becomes the old one and
// the oldest generation is dropped. A cache made with newSizedCache also
// bounds its bytes: a generation fills at maxBytes/2 as well, so the two
// hold at most about maxBytes, however large the entries (20,000 cached
// 60 KB events were 1.2 GB).
type genCache[K comparable, V any] struct {
	mu       sync.Mutex
	n        int
	maxBytes int64
	size     func(V) int // nil: count entries only
	cur, old map[K]V
	curBytes int64
}

func newGenCache[K comparable, V any](n int) *genCache[K, V] {
	return &genCache[K, V]{n: n, cur: make(map[K]V), old: make(map[K]V)}
}

// newSizedCache bounds entries to about 2n and bytes, as size counts them,
// to about maxBytes.
func newSizedCache[K comparable, V any](n int, maxBytes int64, size func(V) int) *genCache[K, V] {
	c := newGenCache[K, V](n)
	c.maxBytes, c.size = maxBytes, size
	return c
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

// bytes returns the bytes held, as size counts them.
func (c *genCache[K, V]) bytes() int64 {
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

// Byte budgets of the node's caches.
const (
	eventCacheBytes    = 64 << 20
	snapshotCacheBytes = 64 << 20
	verifiedCacheBytes = 32 << 20
)

// Sizes as the caches count them: the bytes an entry keeps alive, roughly.
func eventSize(ev *rooms.Event) int { return 2*len(ev.JSON()) + 512 }

func (i *evInfo) size() int { return eventSize(i.ev) + 256 }

func stateMapSize(m store.StateMap) int { return 160 * (len(m) + 1) }

// del forgets an entry (an event whose write failed).
func (c *genCache[K, V]) del(k K) {
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
