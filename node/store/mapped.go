package store

import (
	"fmt"
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

// releaseMapped drops the pages of the store's tables from the process's
// resident memory, as above, and returns how many bytes of mappings it
// advised (not all of them were resident). Reads in progress are not
// disturbed: a page is mapped again when next read. On systems other than
// Linux it does nothing. Not after Close (the releaser, which calls it,
// ends before Close closes Badger).
func (s *Store) releaseMapped() (int64, error) {
	// The tables to advise are those listed now, and the iterator holds a
	// reference to each that still exists, so that none is unmapped (after
	// a compaction) while we advise its address range: advising a range
	// that was unmapped and reused for other memory would zero it. A
	// table made after the list is left for the next call.
	ids := make(map[uint64]bool)
	for _, t := range s.db.Tables() {
		ids[t.ID] = true
	}
	txn := s.db.NewTransaction(false)
	defer txn.Discard()
	it := txn.NewIterator(badger.IteratorOptions{})
	defer it.Close()
	dir, err := filepath.Abs(s.db.Opts().Dir)
	if err == nil {
		// The kernel names a mapping's file by its resolved path.
		dir, err = filepath.EvalSymlinks(dir)
	}
	if err != nil {
		return 0, fmt.Errorf("store: release mapped tables: %w", err)
	}
	return dropMapped(func(path string) bool { return tableIn(path, dir, ids) })
}

// tableIn reports whether path is a table file of dir whose ID is in ids.
func tableIn(path, dir string, ids map[uint64]bool) bool {
	name, ok := strings.CutPrefix(path, dir+"/")
	if !ok || strings.Contains(name, "/") {
		return false
	}
	num, ok := strings.CutSuffix(name, ".sst")
	if !ok {
		return false
	}
	id, err := strconv.ParseUint(num, 10, 64)
	return err == nil && ids[id]
}

// The releaser's pace: every releaseEvery it releases the tables' pages
// if the process has taken releaseFaults page faults since the last time.
// A fault is how a page of a table enters the process, and one fault maps
// up to 16 neighbouring pages that are in the page cache (the kernel's
// fault-around), so 64 faults may be 4 MiB of tables; the heap faults
// too, which costs at worst a needless release. A release of a
// 1,000-room node's 77 MB of tables takes about a millisecond, and
// reading a released page again a minor fault, about a microsecond (the
// node's first /sync at 1,000 rooms took the same CPU with and without:
// 2.85 s). So the tables hold about what a second of reads mapped.
const (
	releaseEvery  = time.Second
	releaseFaults = 64
)

// releaser releases the tables' pages once after Open (loadIndexes has
// read every table), then as above, until Close.
func (s *Store) releaser() {
	defer s.wg.Done()
	tick := time.NewTicker(releaseEvery)
	defer tick.Stop()
	var last int64
	for first := true; ; first = false {
		if f := minorFaults(); first || f-last >= releaseFaults {
			if _, err := s.releaseMapped(); err != nil && s.log != nil {
				s.log.Warn("tables stay mapped", "err", err)
			}
			last = minorFaults()
		}
		select {
		case <-s.done:
			return
		case <-tick.C:
		}
	}
}
