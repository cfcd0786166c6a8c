// The store's in-memory indexes: the event filter (bloom.go), a bounded
// cache of sessions by token, and every redaction by its target. Callers
// never see them: Txn's methods consult them and keep them up to date,
// and each changes only once the transaction that wrote it has committed.

package store

import (
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"

	badger "github.com/dgraph-io/badger/v4"
)

// Stats counts what the indexes saved; for benchmarks and tests.
type Stats struct {
	// EventReads are Badger reads made by Txn.Event and Txn.HasEvent.
	EventReads uint64
	// EventMissesSkipped are the lookups the event filter answered "not
	// stored" without a read.
	EventMissesSkipped uint64
	// EventFilterBytes is the memory the event filter takes.
	EventFilterBytes int
	// SessionHits are sessions answered from the cache, SessionReads
	// those read from Badger.
	SessionHits, SessionReads uint64
	// Redactions is the number of redactions held in memory.
	Redactions int
}

type counters struct {
	eventReads, eventSkipped  atomic.Uint64
	sessionHits, sessionReads atomic.Uint64
}

// Stats reports the indexes' counters since Open.
func (s *Store) Stats() Stats {
	st := Stats{
		EventReads:         s.stats.eventReads.Load(),
		EventMissesSkipped: s.stats.eventSkipped.Load(),
		SessionHits:        s.stats.sessionHits.Load(),
		SessionReads:       s.stats.sessionReads.Load(),
	}
	if s.events != nil {
		st.EventFilterBytes = s.events.bytes()
	}
	s.redactMu.RLock()
	st.Redactions = len(s.redactions)
	s.redactMu.RUnlock()
	return st
}

// maxSessions bounds the session cache. A node has a handful of devices
// logged in; the bound only matters if someone logs in thousands of times.
const maxSessions = 1024

// sessionCache holds sessions by the SHA-256 of their token. Only sessions read from a
// committed state enter it, and only if no session was written since the
// reading transaction began (gen): a reader that raced a logout cannot put
// the old session back. Unknown tokens are not cached, so guessing tokens
// cannot fill it.
type tokenSum = [32]byte

type sessionCache struct {
	mu  sync.Mutex
	gen uint64 // bumped after every commit that wrote a session
	m   map[tokenSum]Session
}

func (c *sessionCache) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

func (c *sessionCache) get(hash tokenSum) (Session, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.m[hash]
	return s, ok
}

// put caches a session read by a transaction that began at gen.
func (c *sessionCache) put(gen uint64, hash tokenSum, s Session) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	if len(c.m) >= maxSessions {
		for k := range c.m { // evict one, any one
			delete(c.m, k)
			break
		}
	}
	c.m[hash] = s
}

// invalidate forgets hashes written by a committed transaction.
func (c *sessionCache) invalidate(hashes []tokenSum) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for _, h := range hashes {
		delete(c.m, h)
	}
}

// loadIndexes builds the event filter and the redaction index from the
// database: a key-only pass over "ev/" and a pass over "rd/".
func (s *Store) loadIndexes() error {
	s.sessions.m = make(map[tokenSum]Session)
	s.redactions = make(map[string]Redaction)
	return s.db.View(func(txn *badger.Txn) error {
		events := 0
		if err := keysWithPrefix(txn, []byte("ev/"), func([]byte) { events++ }); err != nil {
			return err
		}
		// Room for as many again before a second layer is needed.
		s.events = newEventFilter(2 * events)
		if err := keysWithPrefix(txn, []byte("ev/"), func(k []byte) { s.events.addBytes(k[len("ev/"):]) }); err != nil {
			return err
		}
		if err := s.loadRelParents(txn); err != nil {
			return err
		}
		t := &Txn{s: s, txn: openTxn(txn)}
		return t.scan([]byte("rd/"), nil, false, func(k, v []byte) (bool, error) {
			var r Redaction
			if err := json.Unmarshal(v, &r); err != nil {
				return false, fmt.Errorf("store: decode %q: %w", k, err)
			}
			s.redactions[r.Target] = r
			return true, nil
		})
	})
}

// keysWithPrefix calls fn with each key under prefix, reading no values.
func keysWithPrefix(txn *badger.Txn, prefix []byte, fn func(key []byte)) error {
	opts := badger.DefaultIteratorOptions
	opts.Prefix = prefix
	opts.PrefetchValues = false
	it := txn.NewIterator(opts)
	defer it.Close()
	for it.Seek(prefix); it.ValidForPrefix(prefix); it.Next() {
		fn(it.Item().Key())
	}
	return nil
}

// published applies a committed transaction's writes to the indexes.
func (s *Store) published(t *Txn) {
	if len(t.sessionsWritten) > 0 {
		s.sessions.invalidate(t.sessionsWritten)
	}
	if len(t.redactions) > 0 {
		s.redactMu.Lock()
		for k, r := range t.redactions {
			s.redactions[k] = r
		}
		s.redactMu.Unlock()
	}
}
