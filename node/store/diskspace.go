package store

import (
	"fmt"
	"syscall"
)

// DefaultMinFree is the free space kept on the database's file system
// unless Options say otherwise: below it, writes are refused. Badger maps
// its files into memory, and a write into a mapping the full disk cannot
// back kills the process with SIGBUS; the margin covers what Badger may
// still write (two 8 MiB memtables, the table a flush makes).
const DefaultMinFree = 64 << 20

// DiskFullError is returned for writes refused because the file system is
// nearly full. It wraps syscall.ENOSPC, so callers can match either.
type DiskFullError struct {
	Dir        string
	Free, Keep uint64
}

func (e *DiskFullError) Error() string {
	return fmt.Sprintf("store: only %s free on the file system of %s, below the %s parley keeps free", mib(e.Free), e.Dir, mib(e.Keep))
}

func (e *DiskFullError) Unwrap() error { return syscall.ENOSPC }

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// checkFree refuses when the file system has less than the margin free.
func (s *Store) checkFree() error {
	if s.minFree == 0 {
		return nil
	}
	free, err := s.freeSpace(s.dir)
	if err != nil {
		return nil // unknown: let the write try
	}
	if free < s.minFree {
		if !s.low.Swap(true) && s.log != nil {
			s.log.Warn("disk nearly full: writes are refused until space is freed", "component", "store", "dir", s.dir, "free", mib(free), "keep", mib(s.minFree))
		}
		return &DiskFullError{Dir: s.dir, Free: free, Keep: s.minFree}
	}
	if s.low.Swap(false) && s.log != nil {
		s.log.Info("disk space recovered: writes resume", "component", "store", "dir", s.dir, "free", mib(free))
	}
	return nil
}
