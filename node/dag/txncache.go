package dag

import (
	"container/list"
	"sync"
)

// maxTxnCacheBytes bounds the memory txnCache keeps for committed
// transactions; the store remembers every one, so an evicted entry costs
// a lookup, never a duplicate.
const maxTxnCacheBytes = 1 << 20

// txnEntryOverhead approximates what one entry costs beyond its strings
// (map bucket, list element, entry struct).
const txnEntryOverhead = 128

// txnCache remembers which event each client transaction created, so that
// a retried send returns the same event instead of making another one.
// A transaction whose write is in flight is pending until the write's
// result is known: a retry waits for it. Committed transactions are kept
// in a least-recently-used list bounded in bytes.
type txnCache struct {
	mu       sync.Mutex
	maxBytes int
	bytes    int
	pending  map[string]*txnPending
	order    *list.List // of *txnEntry, most recently used first
	index    map[string]*list.Element
}

type txnPending struct {
	eventID string
	done    chan struct{}
}

type txnEntry struct {
	key, eventID string
}

func newTxnCache(maxBytes int) *txnCache {
	return &txnCache{maxBytes: maxBytes, pending: map[string]*txnPending{}, order: list.New(), index: map[string]*list.Element{}}
}

func txnEntrySize(key, eventID string) int { return len(key) + len(eventID) + txnEntryOverhead }

// begin records a transaction whose event is being written. A
// transaction already pending under the key (the same ID sent to two
// rooms at once, each under its own room's lock) keeps its place.
func (c *txnCache) begin(key, eventID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.pending[key]; ok {
		return
	}
	c.pending[key] = &txnPending{eventID: eventID, done: make(chan struct{})}
}

// end settles the pending transaction of eventID: kept if its write
// succeeded, forgotten if not. Waiters are released either way.
func (c *txnCache) end(key, eventID string, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.pending[key]
	if p == nil || p.eventID != eventID {
		return
	}
	delete(c.pending, key)
	if ok {
		c.addLocked(key, p.eventID)
	}
	close(p.done)
}

// known reports whether a transaction is committed or in flight.
func (c *txnCache) known(key string) bool {
	id, wait := c.lookup(key)
	return id != "" || wait != nil
}

// lookup returns the event of a committed transaction, or, while its
// write is in flight, a channel closed when the write's result is known.
func (c *txnCache) lookup(key string) (eventID string, wait <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.pending[key]; ok {
		return "", p.done
	}
	if e, ok := c.index[key]; ok {
		c.order.MoveToFront(e)
		return e.Value.(*txnEntry).eventID, nil
	}
	return "", nil
}

// add remembers a committed transaction (one the store reported).
func (c *txnCache) add(key, eventID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.addLocked(key, eventID)
}

func (c *txnCache) addLocked(key, eventID string) {
	if e, ok := c.index[key]; ok {
		c.order.MoveToFront(e)
		return
	}
	c.index[key] = c.order.PushFront(&txnEntry{key: key, eventID: eventID})
	c.bytes += txnEntrySize(key, eventID)
	for c.bytes > c.maxBytes && c.order.Len() > 0 {
		old := c.order.Back()
		e := old.Value.(*txnEntry)
		c.order.Remove(old)
		delete(c.index, e.key)
		c.bytes -= txnEntrySize(e.key, e.eventID)
	}
}

// size reports the committed entries held and the bytes they cost.
func (c *txnCache) size() (entries, bytes int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len(), c.bytes
}
