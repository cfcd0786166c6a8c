package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	badger "github.com/dgraph-io/badger/v4"
)

// ErrNotFound is returned by lookups of keys that are not stored.
var ErrNotFound = errors.New("store: not found")

// Store is the node's database.
type Store struct {
	db *badger.DB

	// pos is the last stream position handed out; only the writer
	// goroutine touches it after Open.
	pos      uint64
	released uint64 // last position committed, read atomically via Pos

	writes chan *writeReq
	done   chan struct{}
	wg     sync.WaitGroup

	onCommit func(pos uint64)

	// reads holds a token while reads wait for the releaser (mapped.go);
	// nil without one.
	reads  chan struct{}
	mapped mappedTables

	// In-memory indexes (indexes.go), changed only after a commit.
	events     *eventFilter // nil: no filter (benchmarks compare)
	sessions   sessionCache
	redactMu   sync.RWMutex
	redactions map[string]Redaction // every stored redaction, by target: bounded by what is on disk
	relParents *eventFilter         // parents with a relation aggregate (relations.go)
	stats      counters

	dir       string
	minFree   uint64
	freeSpace func(dir string) (uint64, error)
	low       atomic.Bool // below minFree at the last check
	log       *slog.Logger

	// readTxns counts the Badger transactions Views opened.
	readTxns atomic.Uint64

	stopOnce sync.Once
	closeMu  sync.Mutex
	closed   bool
	closeErr error
	// shut is set once Close starts closing Badger: a read begun after
	// that would wait forever on Badger's read watermark.
	shut atomic.Bool
}

type writeReq struct {
	fn  func(*Txn) error
	err chan error
	// then, if set, hears the result in the writer goroutine before any
	// later update runs.
	then func(error)
}

func (r *writeReq) finish(err error) {
	if r.then != nil {
		r.then(err)
	}
	r.err <- err
}

// OnCommit registers f to run (in the writer goroutine) after every
// successful commit, with the last committed stream position. Set it
// before the first Update.
func (s *Store) OnCommit(f func(pos uint64)) { s.onCommit = f }

// maxBatch bounds how many queued updates share one transaction.
const maxBatch = 512

// Options tunes the database. The zero value suits a personal node.
type Options struct {
	// InMemory keeps nothing on disk (for benchmarks only).
	InMemory bool
	// Logger receives Badger's warnings and errors; nil discards them.
	Logger *slog.Logger
	// MinFree is the space kept free on the file system: Open fails and
	// writes are refused (*DiskFullError) below it. 0 means
	// DefaultMinFree; negative turns the check off.
	MinFree int64
	// FreeSpace reports the free space of a directory's file system;
	// default the FreeSpace of this package (tests fake a full disk).
	FreeSpace func(dir string) (uint64, error)

	// noReleaser leaves the tables' pages mapped (mapped.go) unless
	// releaseMapped is called: for tests that watch those pages.
	noReleaser bool
}

// Open opens (or creates) the database in dir/db.
func Open(dir string, o Options) (*Store, error) {
	path := filepath.Join(dir, "db")
	opts := badgerOptions(path, o.Logger)
	s := &Store{writes: make(chan *writeReq, maxBatch), done: make(chan struct{}), dir: dir, freeSpace: o.FreeSpace, log: o.Logger}
	switch {
	case o.InMemory || o.MinFree < 0:
	case o.MinFree == 0:
		s.minFree = DefaultMinFree
	default:
		s.minFree = uint64(o.MinFree)
	}
	if s.freeSpace == nil {
		s.freeSpace = FreeSpace
	}
	if o.InMemory {
		opts = opts.WithDir("").WithValueDir("").WithInMemory(true)
	} else {
		if err := os.MkdirAll(path, 0o700); err != nil {
			return nil, fmt.Errorf("store: create %s: %w", path, err)
		}
		// Badger writes as it opens: on a full disk that is a SIGBUS.
		if err := s.checkFree(); err != nil {
			return nil, fmt.Errorf("%w: free some space first", err)
		}
	}
	db, err := badger.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	s.db = db
	err = db.View(func(txn *badger.Txn) error {
		v, err := get(openTxn(txn), keyPos)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if len(v) != 8 {
			return fmt.Errorf("store: corrupt stream position")
		}
		s.pos = binary.BigEndian.Uint64(v)
		return nil
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	if err := s.loadIndexes(); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: load indexes: %w", err)
	}
	s.released = s.pos
	s.wg.Add(1)
	go s.writer()
	if !o.InMemory && !o.noReleaser && releaseSupported {
		s.reads = make(chan struct{}, 1)
		s.wg.Add(1)
		go s.releaser()
	}
	return s, nil
}

// Close waits for queued writes, then closes the database. It is safe to
// call more than once. On a nearly full disk it leaves the database open
// and says so: Badger flushes its memtable into a new table as it closes,
// and on a full disk that write is a SIGBUS. Every commit is already in
// Badger's log, which the next open replays, so the database is left as a
// crash would leave it; Close may be called again once space is freed.
func (s *Store) Close() error {
	s.stopOnce.Do(func() {
		close(s.done)
		s.wg.Wait()
	})
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.closed {
		return s.closeErr
	}
	if err := s.checkFree(); err != nil {
		return fmt.Errorf("%w: database left open, its log is replayed at the next start", err)
	}
	s.closed = true
	s.shut.Store(true)
	s.closeErr = s.db.Close()
	return s.closeErr
}

// Pos is the last stream position that is committed.
func (s *Store) Pos() uint64 { return atomic.LoadUint64(&s.released) }

// Txn is one read-write transaction. Positions it takes become visible
// when it commits.
type Txn struct {
	s   *Store
	txn *badgerTxn

	// sessionGen is the session cache's generation when the transaction
	// began; sessionsWritten and redactions are its writes that the
	// indexes learn once it commits.
	sessionGen      uint64
	sessionsWritten []tokenSum
	redactions      map[string]Redaction
}

// ErrClosed is returned by Update after Close.
var ErrClosed = errors.New("store: closed")

// Update runs fn in a read-write transaction and returns once the
// transaction is durably committed. It fails with *DiskFullError, writing
// nothing, while the file system has less than the margin free. Updates queued at the same time share
// one transaction and one fsync (group commit); if the shared transaction
// fails, each update is retried alone so one bad update cannot fail the
// others. fn may therefore run more than once and must only write through
// the Txn. Updates are applied in the order they were queued, and stream
// positions are committed in order: a reader that sees position p sees
// every position below it.
func (s *Store) Update(fn func(*Txn) error) error {
	return <-s.UpdateAsync(fn)
}

// UpdateAsync queues fn like Update and returns at once; the channel
// yields the commit's result. Updates queued by one goroutine commit in
// the order they were queued.
func (s *Store) UpdateAsync(fn func(*Txn) error) <-chan error {
	return s.UpdateThen(fn, nil)
}

// UpdateThen is UpdateAsync plus then, which hears the result in the
// writer goroutine before any update queued later runs: a caller whose
// later updates build on this one can make them fail when it fails. then
// must be quick and must not queue updates.
func (s *Store) UpdateThen(fn func(*Txn) error, then func(error)) <-chan error {
	req := &writeReq{fn: fn, err: make(chan error, 1), then: then}
	if err := s.checkFree(); err != nil {
		req.finish(err)
		return req.err
	}
	s.enqueue(req)
	return req.err
}

func (s *Store) enqueue(req *writeReq) {
	select {
	case <-s.done:
		req.finish(ErrClosed)
		return
	default:
	}
	select {
	case s.writes <- req:
	case <-s.done:
		req.finish(ErrClosed)
	}
}

// Barrier returns once every update queued before it has run and its
// result been delivered. It writes nothing.
func (s *Store) Barrier() {
	req := &writeReq{fn: func(*Txn) error { return nil }, err: make(chan error, 1)}
	s.enqueue(req)
	<-req.err
}

func (s *Store) writer() {
	defer s.wg.Done()
	batch := make([]*writeReq, 0, maxBatch)
	for {
		batch = batch[:0]
		select {
		case r := <-s.writes:
			batch = append(batch, r)
		case <-s.done:
			// Drain what was queued before Close.
			for {
				select {
				case r := <-s.writes:
					s.commit([]*writeReq{r})
				default:
					return
				}
			}
		}
	fill:
		for len(batch) < maxBatch {
			select {
			case r := <-s.writes:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		s.commit(batch)
	}
}

func (s *Store) commit(batch []*writeReq) {
	if len(batch) > 1 {
		if err := s.run(batch); err == nil {
			s.committed()
			for _, r := range batch {
				r.finish(nil)
			}
			return
		}
	}
	for _, r := range batch {
		err := s.run([]*writeReq{r})
		if err == nil {
			s.committed()
		}
		r.finish(err)
	}
}

func (s *Store) committed() {
	if s.onCommit != nil {
		s.onCommit(s.Pos())
	}
}

func (s *Store) run(batch []*writeReq) error {
	start := s.pos
	t := &Txn{s: s, sessionGen: s.sessions.generation()}
	err := s.db.Update(func(txn *badger.Txn) error {
		t.txn = openTxn(txn)
		for _, r := range batch {
			if err := r.fn(t); err != nil {
				return err
			}
		}
		if s.pos != start {
			var b [8]byte
			binary.BigEndian.PutUint64(b[:], s.pos)
			return txn.Set(keyPos, b[:])
		}
		return nil
	})
	if err != nil {
		s.pos = start
		return err
	}
	s.published(t)
	atomic.StoreUint64(&s.released, s.pos)
	return nil
}

// View runs fn in a read-only transaction. Its snapshot of Badger is
// taken at its first read from Badger, not when View is called (see
// badgerTxn); what the in-memory indexes answer takes none. After Close
// it returns ErrClosed: a reader still running as the node shuts down (a
// pubsub validator, say) gets an error instead of waiting forever.
func (s *Store) View(fn func(*Txn) error) error {
	if s.shut.Load() {
		return ErrClosed
	}
	gen := s.sessions.generation()
	bt := &badgerTxn{s: s}
	defer bt.discard()
	return fn(&Txn{s: s, txn: bt, sessionGen: gen})
}

// badgerTxn is the Badger transaction behind a Txn. A View opens its own
// at the first read that needs Badger: a View answered from the in-memory
// indexes alone (a session by token, an event that cannot exist) opens
// none. That matters beyond the work saved: a new Badger transaction
// waits until every commit already handed to Badger is applied, fsync
// included, so each request's session lookup waited on the commit in
// flight, as long as the commit itself under load.
type badgerTxn struct {
	s   *Store // nil: txn is given (an Update's)
	mu  sync.Mutex
	txn *badger.Txn
}

// openTxn wraps a Badger transaction that is already open.
func openTxn(txn *badger.Txn) *badgerTxn { return &badgerTxn{txn: txn} }

// open returns the transaction, opening a read-only one first if need be.
func (b *badgerTxn) open() (*badger.Txn, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.txn == nil {
		if b.s.shut.Load() {
			return nil, ErrClosed
		}
		b.txn = b.s.db.NewTransaction(false)
		b.s.readTxns.Add(1)
	}
	return b.txn, nil
}

func (b *badgerTxn) discard() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.txn != nil {
		b.txn.Discard()
		if b.s != nil {
			b.s.noteRead() // the tables' pages it read may be released
		}
	}
}

func (b *badgerTxn) Get(key []byte) (*badger.Item, error) {
	txn, err := b.open()
	if err != nil {
		return nil, err
	}
	return txn.Get(key)
}

func (b *badgerTxn) Set(key, val []byte) error {
	txn, err := b.open()
	if err != nil {
		return err
	}
	return txn.Set(key, val)
}

func (b *badgerTxn) Delete(key []byte) error {
	txn, err := b.open()
	if err != nil {
		return err
	}
	return txn.Delete(key)
}

// NextPos allocates the next stream position. Only valid inside Update.
func (t *Txn) NextPos() uint64 {
	t.s.pos++
	return t.s.pos
}

func (t *Txn) getJSON(key []byte, v any) error {
	b, err := get(t.txn, key)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("store: decode %q: %w", key, err)
	}
	return nil
}

func (t *Txn) setJSON(key []byte, v any) error {
	// Without HTML escaping: json.Marshal would rewrite <, > and & inside
	// an event's PDU as \u003c and the like, so the PDU read back would
	// no longer be the canonical JSON that was stored.
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("store: encode %q: %w", key, err)
	}
	return t.txn.Set(key, bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
}

func get(txn *badgerTxn, key []byte) ([]byte, error) {
	item, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: get %q: %w", key, err)
	}
	return item.ValueCopy(nil)
}

// deletePrefix deletes every key with the prefix.
func (t *Txn) deletePrefix(prefix []byte) error {
	var keys [][]byte
	if err := t.scan(prefix, nil, false, func(k, _ []byte) (bool, error) {
		keys = append(keys, k)
		return true, nil
	}); err != nil {
		return err
	}
	for _, k := range keys {
		if err := t.txn.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// scan calls fn for every key with the prefix, in key order (or reverse),
// starting at from (inclusive) when it is non-nil. fn returns false to stop.
func (t *Txn) scan(prefix, from []byte, reverse bool, fn func(key, val []byte) (bool, error)) error {
	opts := badger.DefaultIteratorOptions
	opts.Prefix = prefix
	opts.Reverse = reverse
	// Values are small and live in the LSM tree: fetching them eagerly
	// (100 at a time by default) costs more than it saves for the short
	// scans sync and pagination do.
	opts.PrefetchValues = false
	txn, err := t.txn.open()
	if err != nil {
		return err
	}
	it := txn.NewIterator(opts)
	defer it.Close()
	seek := from
	if seek == nil {
		seek = prefix
		if reverse {
			seek = append(append([]byte{}, prefix...), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
		}
	}
	for it.Seek(seek); it.ValidForPrefix(prefix); it.Next() {
		item := it.Item()
		val, err := item.ValueCopy(nil)
		if err != nil {
			return err
		}
		more, err := fn(item.KeyCopy(nil), val)
		if err != nil || !more {
			return err
		}
	}
	return nil
}

type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any) {
	if b.l != nil {
		b.l.Error(fmt.Sprintf(f, a...), "component", "badger")
	}
}

func (b badgerLogger) Warningf(f string, a ...any) {
	if b.l != nil {
		b.l.Warn(fmt.Sprintf(f, a...), "component", "badger")
	}
}
func (badgerLogger) Infof(string, ...any)  {}
func (badgerLogger) Debugf(string, ...any) {}
