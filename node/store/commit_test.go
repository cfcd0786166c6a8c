// Tests of the write path: group commit ordering, the retry path, when
// positions are released, Barrier, and the refusal to write on a full disk.
package store

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

func openTestStore(t *testing.T, o Options) *Store {
	t.Helper()
	s, err := Open(t.TempDir(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// waitFor polls cond until it holds or a deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// holdWriter queues an update that blocks the writer until the returned
// func is called, and returns once the writer is inside it: updates queued
// meanwhile wait together and share the next group commit.
func holdWriter(t *testing.T, s *Store) (release func()) {
	t.Helper()
	inside, gate := make(chan struct{}, 1), make(chan struct{})
	done := s.UpdateAsync(func(*Txn) error {
		select {
		case inside <- struct{}{}:
		default: // a retry of the same update: already said
		}
		<-gate
		return nil
	})
	<-inside
	var once sync.Once
	release = func() {
		once.Do(func() {
			close(gate)
			if err := <-done; err != nil {
				t.Errorf("holding update: %v", err)
			}
		})
	}
	t.Cleanup(release)
	return release
}

func setKey(tx *Txn, k, v string) error { return tx.txn.Set([]byte(k), []byte(v)) }

func getKey(t *testing.T, s *Store, k string) (string, bool) {
	t.Helper()
	var v []byte
	err := s.View(func(tx *Txn) error {
		var err error
		v, err = get(tx.txn, []byte(k))
		return err
	})
	if errors.Is(err, ErrNotFound) {
		return "", false
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(v), true
}

func TestGroupCommit(t *testing.T) {
	t.Run("updates queued together commit in one transaction, in queue order", func(t *testing.T) {
		s := openTestStore(t, Options{})
		var commits atomic.Int32
		s.OnCommit(func(uint64) { commits.Add(1) })
		release := holdWriter(t, s)
		const n = 100
		pos := make([]uint64, n)
		var heard []int // the order the then callbacks ran in
		var results []<-chan error
		for i := range n {
			results = append(results, s.UpdateThen(func(tx *Txn) error {
				pos[i] = tx.NextPos()
				return setKey(tx, fmt.Sprintf("k%03d", i), fmt.Sprint(pos[i]))
			}, func(error) { heard = append(heard, i) }))
		}
		before := commits.Load()
		release()
		for i, r := range results {
			if err := <-r; err != nil {
				t.Fatalf("update %d: %v", i, err)
			}
		}
		// One commit for the held update, one for the group behind it.
		if got := commits.Load() - before; got != 2 {
			t.Errorf("%d updates queued together took %d commits, want 1", n, got-1)
		}
		if !slices.IsSorted(pos) || pos[0] == pos[n-1] {
			t.Errorf("positions not increasing in queue order: %v", pos)
		}
		if len(heard) != n || !slices.IsSorted(heard) {
			t.Errorf("then callbacks ran in order %v", heard)
		}
		if s.Pos() != pos[n-1] {
			t.Errorf("Pos %d after the batch, want its last position %d", s.Pos(), pos[n-1])
		}
	})

	t.Run("the commit hook sees a position only once its write can be read", func(t *testing.T) {
		s := openTestStore(t, Options{})
		var mu sync.Mutex
		var problems []string
		var seen []uint64
		s.OnCommit(func(p uint64) {
			mu.Lock()
			defer mu.Unlock()
			seen = append(seen, p)
			if s.Pos() != p {
				problems = append(problems, fmt.Sprintf("hook got %d while Pos is %d", p, s.Pos()))
			}
			if _, ok := getKey(t, s, fmt.Sprintf("pos%d", p)); !ok {
				problems = append(problems, fmt.Sprintf("hook got %d before its write was readable", p))
			}
		})
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for range 25 {
					if err := s.Update(func(tx *Txn) error {
						return setKey(tx, fmt.Sprintf("pos%d", tx.NextPos()), "x")
					}); err != nil {
						t.Error(err)
					}
				}
			})
		}
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		for _, p := range problems {
			t.Error(p)
		}
		if !slices.IsSorted(seen) || len(seen) == 0 || seen[len(seen)-1] != 100 {
			t.Errorf("hook saw positions %v, want increasing up to 100", seen)
		}
	})

	t.Run("concurrent read-modify-write updates never conflict", func(t *testing.T) {
		// Updates run one at a time in the writer goroutine, so Badger's
		// conflict detection (between read-write transactions) never
		// fires: no update is lost and none fails with ErrConflict.
		s := openTestStore(t, Options{})
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for range 50 {
					err := s.Update(func(tx *Txn) error {
						v, err := get(tx.txn, []byte("counter"))
						n := 0
						if err == nil {
							fmt.Sscan(string(v), &n)
						} else if !errors.Is(err, ErrNotFound) {
							return err
						}
						return setKey(tx, "counter", fmt.Sprint(n+1))
					})
					if err != nil {
						t.Error(err)
					}
				}
			})
		}
		wg.Wait()
		if v, _ := getKey(t, s, "counter"); v != "400" {
			t.Errorf("counter is %s after 400 increments", v)
		}
	})
}

func TestRetryPath(t *testing.T) {
	errBad := errors.New("bad update")
	t.Run("a failing update fails alone and writes nothing; its neighbours commit", func(t *testing.T) {
		s := openTestStore(t, Options{})
		var commits atomic.Int32
		s.OnCommit(func(uint64) { commits.Add(1) })
		release := holdWriter(t, s)
		const n, bad = 10, 4
		var results []<-chan error
		for i := range n {
			results = append(results, s.UpdateAsync(func(tx *Txn) error {
				tx.NextPos()
				if err := setKey(tx, fmt.Sprintf("k%d", i), "x"); err != nil {
					return err
				}
				if i == bad {
					return errBad // after writing, and after taking a position
				}
				return nil
			}))
		}
		start := s.Pos()
		before := commits.Load()
		release()
		for i, r := range results {
			err := <-r
			if i == bad && !errors.Is(err, errBad) {
				t.Errorf("the bad update returned %v", err)
			}
			if i != bad && err != nil {
				t.Errorf("update %d next to a bad one failed: %v", i, err)
			}
			_, ok := getKey(t, s, fmt.Sprintf("k%d", i))
			if ok != (i != bad) {
				t.Errorf("update %d: written %v", i, ok)
			}
		}
		// The held update commits, then each good update is retried
		// alone: one commit each.
		if got := commits.Load() - before - 1; got != n-1 {
			t.Errorf("%d commits, want %d (the good updates retried one by one)", got, n-1)
		}
		// The failed update's position is given back, not left as a hole.
		if got := s.Pos() - start; got != n-1 {
			t.Errorf("positions advanced by %d for %d committed updates", got, n-1)
		}
	})

	t.Run("an update that builds on a failed one hears of the failure before it is retried", func(t *testing.T) {
		s := openTestStore(t, Options{})
		release := holdWriter(t, s)
		var failed atomic.Bool
		first := s.UpdateThen(func(tx *Txn) error { return errBad }, func(err error) { failed.Store(err != nil) })
		second := s.UpdateAsync(func(tx *Txn) error {
			if failed.Load() {
				return errors.New("the update it builds on failed")
			}
			return setKey(tx, "second", "x")
		})
		third := s.UpdateAsync(func(tx *Txn) error { return setKey(tx, "third", "x") })
		release()
		if err := <-first; !errors.Is(err, errBad) {
			t.Errorf("first: %v", err)
		}
		if err := <-second; err == nil {
			t.Error("the dependent update committed although the first failed")
		}
		if err := <-third; err != nil {
			t.Errorf("an independent update failed: %v", err)
		}
		if _, ok := getKey(t, s, "second"); ok {
			t.Error("the dependent update's write is stored")
		}
	})

	t.Run("a group too big for one transaction is committed update by update", func(t *testing.T) {
		s := openTestStore(t, Options{})
		// Badger refuses a transaction over 15% of a memtable (8 MiB):
		// twelve 256 KiB updates fit alone, not together.
		big := string(make([]byte, 256<<10))
		write := func(tx *Txn, i int) error { return setKey(tx, fmt.Sprintf("big%d", i), big) }
		err := s.db.Update(func(txn *badger.Txn) error {
			for i := range 12 {
				if err := write(&Txn{s: s, txn: openTxn(txn)}, i); err != nil {
					return err
				}
			}
			return nil
		})
		if !errors.Is(err, badger.ErrTxnTooBig) {
			t.Fatalf("the twelve writes in one transaction gave %v, want ErrTxnTooBig", err)
		}
		release := holdWriter(t, s)
		var results []<-chan error
		for i := range 12 {
			results = append(results, s.UpdateAsync(func(tx *Txn) error { return write(tx, i) }))
		}
		release()
		for i, r := range results {
			if err := <-r; err != nil {
				t.Errorf("update %d: %v", i, err)
			}
			if v, ok := getKey(t, s, fmt.Sprintf("big%d", i)); !ok || len(v) != len(big) {
				t.Errorf("update %d not stored whole", i)
			}
		}
	})
}

func TestPositionsAreReleasedOnlyAfterCommit(t *testing.T) {
	t.Run("a position taken by an update in progress is not visible", func(t *testing.T) {
		s := openTestStore(t, Options{})
		taken, gate := make(chan uint64), make(chan struct{})
		done := s.UpdateAsync(func(tx *Txn) error {
			p := tx.NextPos()
			if err := setKey(tx, "slow", "x"); err != nil {
				return err
			}
			taken <- p
			<-gate
			return nil
		})
		p := <-taken
		if s.Pos() >= p {
			t.Errorf("Pos is %d while position %d is not committed", s.Pos(), p)
		}
		close(gate)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if s.Pos() != p {
			t.Errorf("Pos is %d after committing position %d", s.Pos(), p)
		}
	})

	t.Run("a failed update releases no position", func(t *testing.T) {
		s := openTestStore(t, Options{})
		if err := s.Update(func(tx *Txn) error { tx.NextPos(); return nil }); err != nil {
			t.Fatal(err)
		}
		err := s.Update(func(tx *Txn) error { tx.NextPos(); tx.NextPos(); return errors.New("no") })
		if err == nil || s.Pos() != 1 {
			t.Fatalf("after a failed update: err %v, Pos %d, want an error and 1", err, s.Pos())
		}
		var next uint64
		if err := s.Update(func(tx *Txn) error { next = tx.NextPos(); return nil }); err != nil {
			t.Fatal(err)
		}
		if next != 2 {
			t.Errorf("the update after a failed one took position %d, want 2", next)
		}
	})

	t.Run("a reader that sees a position sees every write up to it", func(t *testing.T) {
		s := openTestStore(t, Options{})
		const writers, each = 4, 50
		stop := make(chan struct{})
		var readerErr error
		var wg sync.WaitGroup
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				p := s.Pos()
				err := s.View(func(tx *Txn) error {
					for q := uint64(1); q <= p; q++ {
						if _, err := get(tx.txn, fmt.Appendf(nil, "at%d", q)); err != nil {
							return fmt.Errorf("Pos was %d but position %d: %w", p, q, err)
						}
					}
					return nil
				})
				if err != nil {
					readerErr = err
					return
				}
			}
		})
		var writersWG sync.WaitGroup
		for range writers {
			writersWG.Go(func() {
				for range each {
					if err := s.Update(func(tx *Txn) error {
						return setKey(tx, fmt.Sprintf("at%d", tx.NextPos()), "x")
					}); err != nil {
						t.Error(err)
					}
				}
			})
		}
		writersWG.Wait()
		close(stop)
		wg.Wait()
		if readerErr != nil {
			t.Error(readerErr)
		}
		if s.Pos() != writers*each {
			t.Errorf("Pos %d after %d updates", s.Pos(), writers*each)
		}
	})
}

func TestBarrier(t *testing.T) {
	t.Run("returns once every update queued before it has its result", func(t *testing.T) {
		s := openTestStore(t, Options{})
		release := holdWriter(t, s)
		var results []<-chan error
		var heard atomic.Int32
		for i := range 50 {
			results = append(results, s.UpdateThen(func(tx *Txn) error {
				return setKey(tx, fmt.Sprintf("b%d", i), "x")
			}, func(error) { heard.Add(1) }))
		}
		barrier := make(chan struct{})
		go func() { s.Barrier(); close(barrier) }()
		select {
		case <-barrier:
			t.Fatal("Barrier returned while the updates before it were still queued")
		default:
		}
		release()
		<-barrier
		if heard.Load() != 50 {
			t.Errorf("%d then callbacks ran before Barrier returned, want 50", heard.Load())
		}
		for i, r := range results {
			select {
			case err := <-r:
				if err != nil {
					t.Errorf("update %d: %v", i, err)
				}
			default:
				t.Errorf("update %d had no result when Barrier returned", i)
			}
		}
	})

	t.Run("writes nothing and takes no position", func(t *testing.T) {
		s := openTestStore(t, Options{})
		s.Barrier()
		if s.Pos() != 0 {
			t.Errorf("Pos %d after a Barrier", s.Pos())
		}
	})

	t.Run("returns at once after Close", func(t *testing.T) {
		s := openTestStore(t, Options{})
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s.Barrier()
		if err := s.Update(func(*Txn) error { return nil }); !errors.Is(err, ErrClosed) {
			t.Errorf("Update after Close: %v, want ErrClosed", err)
		}
	})
}

func TestDiskFull(t *testing.T) {
	const keep = 64 << 20
	var free atomic.Uint64
	free.Store(1 << 30)
	o := Options{MinFree: keep, FreeSpace: func(string) (uint64, error) { return free.Load(), nil }}

	t.Run("Open refuses below the margin", func(t *testing.T) {
		free.Store(keep - 1)
		defer free.Store(1 << 30)
		_, err := Open(t.TempDir(), o)
		if !errors.Is(err, syscall.ENOSPC) {
			t.Errorf("Open on a full disk: %v, want ENOSPC", err)
		}
	})

	t.Run("writes are refused without running, and resume when space returns", func(t *testing.T) {
		s := openTestStore(t, o)
		free.Store(keep - 1)
		ran := false
		err := s.Update(func(tx *Txn) error { ran = true; tx.NextPos(); return setKey(tx, "full", "x") })
		var full *DiskFullError
		if !errors.As(err, &full) || !errors.Is(err, syscall.ENOSPC) {
			t.Errorf("Update on a full disk: %v, want *DiskFullError wrapping ENOSPC", err)
		}
		if ran || s.Pos() != 0 {
			t.Errorf("a refused update ran (%v) or took a position (Pos %d)", ran, s.Pos())
		}
		// Close leaves the database open rather than flush into a full disk.
		if err := s.Close(); !errors.As(err, &full) {
			t.Errorf("Close on a full disk: %v, want *DiskFullError", err)
		}
		free.Store(1 << 30)
		if err := s.Close(); err != nil {
			t.Errorf("Close once space returned: %v", err)
		}

		s = openTestStore(t, o)
		if err := s.Update(func(tx *Txn) error { return setKey(tx, "after", "x") }); err != nil {
			t.Errorf("Update once space returned: %v", err)
		}
		if _, ok := getKey(t, s, "full"); ok {
			t.Error("the refused write is stored")
		}
	})
}
