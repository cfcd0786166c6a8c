package store

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// Badger reads its tables through memory mappings, so every page of a
// table it has read counts in the process's resident memory (RssFile) for
// as long as the mapping lasts: opening a store scans every event key
// (loadIndexes), which touches nearly every table, and at 1,000 rooms of
// 100 events that was 73 MB of a node's 95 MB of file-backed memory.
// Those pages are the kernel's page cache, which a read(2)-based store
// would use just the same without their counting against the process;
// releaseMapped unmaps them from the process (madvise MADV_DONTNEED on a
// shared file mapping), leaving them in the page cache: a later read maps
// its page again with a minor fault, without I/O while the kernel keeps
// the page, and the kernel reclaims unmapped cache pages more readily
// than mapped ones.

// tableMapping is where one table file is mapped in the process.
type tableMapping struct {
	id     uint64
	lo, hi uintptr
}

// mappedTables caches the tables' mappings between releases: a table's
// mapping stays where it is for the table's life, so /proc/self/maps is
// read again only when the set of tables has changed. Only the releaser
// (or a test, without one) touches it.
type mappedTables struct {
	index    map[uint64]int // each table's index size, by ID
	mappings []tableMapping
}

// A table ends in its index (block offsets and bloom filter), which every
// read of the table consults and which Tables reads too: releasing it
// would only have it faulted in again at once. Releases keep the index's
// pages and indexSlack more (the index's length and checksum after it).
const indexSlack = 4 << 10

// releaseMapped drops the pages of the store's tables from the process's
// resident memory, as above, and returns how many bytes of mappings it
// advised (not all of them were resident). Reads in progress are not
// disturbed: a page is mapped again when next read. On systems other than
// Linux it does nothing. Not after Close (the releaser, which calls it,
// ends before Close closes Badger), nor from two goroutines at once.
func (s *Store) releaseMapped() (int64, error) {
	// The tables to advise are those listed both before and after the
	// iterator was made: such a table existed throughout, so the iterator
	// holds a reference to it and it cannot be unmapped (after a
	// compaction) while we advise its address range; advising a range
	// that was unmapped and reused for other memory (the Go heap, say)
	// would zero it. A table made or dropped meanwhile is left alone.
	before := make(map[uint64]bool)
	for _, t := range s.db.Tables() {
		before[t.ID] = true
	}
	txn := s.db.NewTransaction(false)
	defer txn.Discard()
	it := txn.NewIterator(badger.IteratorOptions{})
	defer it.Close()
	index := make(map[uint64]int)
	for _, t := range s.db.Tables() {
		if before[t.ID] {
			index[t.ID] = t.IndexSz
		}
	}
	if !maps.Equal(index, s.mapped.index) {
		dir, err := filepath.Abs(s.db.Opts().Dir)
		if err == nil {
			// The kernel names a mapping's file by its resolved path.
			dir, err = filepath.EvalSymlinks(dir)
		}
		if err != nil {
			return 0, fmt.Errorf("store: release mapped tables: %w", err)
		}
		mappings, err := findMappings(func(path string) (uint64, bool) { return tableIn(path, dir, index) })
		if err != nil {
			return 0, err
		}
		s.mapped = mappedTables{index: index, mappings: mappings}
	}
	var total int64
	page := uintptr(os.Getpagesize())
	for _, m := range s.mapped.mappings {
		size, ok := index[m.id]
		if !ok {
			continue // gone since: its range may be someone else's now
		}
		keep := uintptr(size) + indexSlack
		if m.hi-m.lo <= keep {
			continue
		}
		hi := (m.hi - keep) &^ (page - 1)
		if err := dontNeed(m.lo, hi); err != nil {
			return total, fmt.Errorf("store: release mapped table %d: %w", m.id, err)
		}
		total += int64(hi - m.lo)
	}
	return total, nil
}

// tableIn returns the ID of the table that path names, if path is a table
// file of dir whose ID is in index.
func tableIn(path, dir string, index map[uint64]int) (uint64, bool) {
	name, ok := strings.CutPrefix(path, dir+"/")
	if !ok || strings.Contains(name, "/") {
		return 0, false
	}
	num, ok := strings.CutSuffix(name, ".sst")
	if !ok {
		return 0, false
	}
	id, err := strconv.ParseUint(num, 10, 64)
	_, ok = index[id]
	return id, err == nil && ok
}

// releaseGap is the releaser's pace: while reads go on, it releases the
// tables' pages at most this often, and once more this long after the
// last read, so the tables hold about what 100 ms of reads mapped. A
// release of a 1,000-room node's 77 MB of tables (28 of them) takes 84 us
// (0.1% of a core while reads go on, nothing while the node is idle), and
// reading a released page again costs a minor fault, about a microsecond:
// the node's first /sync at 1,000 rooms, 20,000 event reads, took the
// same CPU with and without releases (2.6-3.0 s against 2.7-2.9 s).
const releaseGap = 100 * time.Millisecond

// noteRead tells the releaser that a read transaction ended.
func (s *Store) noteRead() {
	if s.reads == nil {
		return
	}
	select {
	case s.reads <- struct{}{}:
	default:
	}
}

// releaser releases the tables' pages once after Open (loadIndexes has
// read every table), then as above, until Close.
func (s *Store) releaser() {
	defer s.wg.Done()
	for {
		if _, err := s.releaseMapped(); err != nil && s.log != nil {
			s.log.Warn("tables stay mapped", "err", err)
		}
		select {
		case <-s.done:
			return
		case <-time.After(releaseGap):
		}
		select {
		case <-s.done:
			return
		case <-s.reads:
		}
	}
}
