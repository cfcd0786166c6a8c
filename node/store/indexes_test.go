// Tests of the in-memory indexes: the event filter, the session cache and
// the redaction index agree with what is committed, across failures and
// reopening.
package store

import (
	"errors"
	"fmt"
	"testing"
)

var errAbort = errors.New("abort")

func TestEventFilter(t *testing.T) {
	t.Run("an event written is found in its transaction, after commit and after reopening", func(t *testing.T) {
		dir := t.TempDir()
		s, err := Open(dir, Options{})
		if err != nil {
			t.Fatal(err)
		}
		err = s.Update(func(tx *Txn) error {
			if err := tx.PutEvent("!r", "$known", &EventRecord{Version: "12", PDU: []byte(`{}`)}); err != nil {
				return err
			}
			if ok, err := tx.HasEvent("$known"); !ok || err != nil {
				return fmt.Errorf("the writing transaction cannot see its event: %v %v", ok, err)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		has := func(s *Store, id string) bool {
			t.Helper()
			var ok bool
			if err := s.View(func(tx *Txn) error { ok, err = tx.HasEvent(id); return err }); err != nil {
				t.Fatal(err)
			}
			return ok
		}
		if !has(s, "$known") {
			t.Error("the committed event is not found")
		}
		s.Close()
		s, err = Open(dir, Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if !has(s, "$known") {
			t.Error("after reopening, the event is not found")
		}
		if err := s.View(func(tx *Txn) error { _, err := tx.Event("$known"); return err }); err != nil {
			t.Errorf("after reopening, Event: %v", err)
		}
	})

	t.Run("lookups of unknown events skip the read", func(t *testing.T) {
		s := openTestStore(t, Options{})
		if err := s.Update(func(tx *Txn) error {
			return tx.PutEvent("!r", "$known", &EventRecord{Version: "12", PDU: []byte(`{}`)})
		}); err != nil {
			t.Fatal(err)
		}
		before := s.Stats()
		const n = 1000
		err := s.View(func(tx *Txn) error {
			for i := range n {
				id := fmt.Sprintf("$unknown%d", i)
				if _, err := tx.Event(id); !errors.Is(err, ErrNotFound) {
					return fmt.Errorf("Event(%s): %v", id, err)
				}
				if ok, err := tx.HasEvent(id); ok || err != nil {
					return fmt.Errorf("HasEvent(%s): %v %v", id, ok, err)
				}
			}
			_, err := tx.Event("$known")
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		after := s.Stats()
		skipped, reads := after.EventMissesSkipped-before.EventMissesSkipped, after.EventReads-before.EventReads
		// 2n lookups of unknown IDs; about 1% may pass the filter.
		if skipped < 2*n*95/100 || reads < 1 || skipped+reads != 2*n+1 {
			t.Errorf("%d lookups: %d skipped, %d read", 2*n+1, skipped, reads)
		}
	})

	t.Run("an event from a failed transaction is not found", func(t *testing.T) {
		s := openTestStore(t, Options{})
		err := s.Update(func(tx *Txn) error {
			if err := tx.PutEvent("!r", "$lost", &EventRecord{Version: "12", PDU: []byte(`{}`)}); err != nil {
				return err
			}
			return errAbort
		})
		if !errors.Is(err, errAbort) {
			t.Fatal(err)
		}
		if err := s.View(func(tx *Txn) error { _, err := tx.Event("$lost"); return err }); !errors.Is(err, ErrNotFound) {
			t.Errorf("Event of an aborted write: %v, want ErrNotFound", err)
		}
	})
}

// The filter's memory, per 100,000 events: 10 bits each.
func TestEventFilterMemory(t *testing.T) {
	const n = 100_000
	for _, tc := range []struct {
		name     string
		capacity int
		maxBytes int
	}{
		{"a filter built at Open for 100k events takes 250 kB, room to double them", 2 * n, 250_000},
		{"a filter grown from empty to 100k events takes under 300 kB", 0, 300_000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newEventFilter(tc.capacity)
			for i := range n {
				f.add(fmt.Sprintf("$event%d", i))
			}
			for i := range n {
				if !f.mayHave(fmt.Sprintf("$event%d", i)) {
					t.Fatalf("event %d added but not found", i)
				}
			}
			if f.bytes() > tc.maxBytes {
				t.Errorf("%d bytes for %d events, want at most %d", f.bytes(), n, tc.maxBytes)
			}
			fp := 0
			for i := range n {
				if f.mayHave(fmt.Sprintf("$other%d", i)) {
					fp++
				}
			}
			if fp > n*3/100 {
				t.Errorf("%d of %d unknown IDs pass the filter", fp, n)
			}
			t.Logf("%d bytes, %d layers, %.2f%% false positives", f.bytes(), len(*f.layers.Load()), 100*float64(fp)/n)
		})
	}
}

func TestSessionCache(t *testing.T) {
	alice := &Session{UserID: "@alice:x", DeviceID: "A"}
	put := func(t *testing.T, s *Store, token string, sess *Session) {
		t.Helper()
		if err := s.Update(func(tx *Txn) error { return tx.PutSession(token, sess) }); err != nil {
			t.Fatal(err)
		}
	}
	lookup := func(t *testing.T, s *Store, token string) (*Session, error) {
		t.Helper()
		var sess *Session
		err := s.View(func(tx *Txn) error {
			var err error
			sess, err = tx.Session(token)
			return err
		})
		if err != nil && !errors.Is(err, ErrNotFound) {
			t.Fatal(err)
		}
		return sess, err
	}
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, s *Store)
	}{
		{"a session read again is answered from the cache", func(t *testing.T, s *Store) {
			put(t, s, "tok", alice)
			lookup(t, s, "tok")
			before := s.Stats()
			for range 10 {
				if got, err := lookup(t, s, "tok"); err != nil || *got != *alice {
					t.Fatalf("lookup: %v %v", got, err)
				}
			}
			if st := s.Stats(); st.SessionReads != before.SessionReads || st.SessionHits != before.SessionHits+10 {
				t.Errorf("10 lookups of a cached session: %d hits, %d reads", st.SessionHits-before.SessionHits, st.SessionReads-before.SessionReads)
			}
		}},
		{"a logged-out token is refused at once", func(t *testing.T, s *Store) {
			put(t, s, "tok", alice)
			lookup(t, s, "tok")
			if err := s.Update(func(tx *Txn) error { return tx.DeleteSession("tok") }); err != nil {
				t.Fatal(err)
			}
			if _, err := lookup(t, s, "tok"); !errors.Is(err, ErrNotFound) {
				t.Errorf("a deleted token: %v, want ErrNotFound", err)
			}
		}},
		{"a logout that fails leaves the session, and a later one still refuses it", func(t *testing.T, s *Store) {
			put(t, s, "tok", alice)
			lookup(t, s, "tok")
			if err := s.Update(func(tx *Txn) error {
				if err := tx.DeleteSession("tok"); err != nil {
					return err
				}
				return errAbort
			}); !errors.Is(err, errAbort) {
				t.Fatal(err)
			}
			if _, err := lookup(t, s, "tok"); err != nil {
				t.Errorf("after an aborted logout: %v, want the session", err)
			}
			if err := s.Update(func(tx *Txn) error { return tx.DeleteSession("tok") }); err != nil {
				t.Fatal(err)
			}
			if _, err := lookup(t, s, "tok"); !errors.Is(err, ErrNotFound) {
				t.Errorf("after the logout: %v, want ErrNotFound", err)
			}
		}},
		{"a session from a failed transaction is never served", func(t *testing.T, s *Store) {
			if err := s.Update(func(tx *Txn) error {
				if err := tx.PutSession("tok", alice); err != nil {
					return err
				}
				if _, err := tx.Session("tok"); err != nil {
					return fmt.Errorf("the writing transaction cannot read its session: %w", err)
				}
				return errAbort
			}); !errors.Is(err, errAbort) {
				t.Fatal(err)
			}
			if _, err := lookup(t, s, "tok"); !errors.Is(err, ErrNotFound) {
				t.Errorf("a session whose write failed: %v, want ErrNotFound", err)
			}
		}},
		{"a transaction that deletes a token no longer finds it", func(t *testing.T, s *Store) {
			put(t, s, "tok", alice)
			lookup(t, s, "tok")
			if err := s.Update(func(tx *Txn) error {
				if err := tx.DeleteSession("tok"); err != nil {
					return err
				}
				if _, err := tx.Session("tok"); !errors.Is(err, ErrNotFound) {
					return fmt.Errorf("deleted in this transaction, yet Session gives %v", err)
				}
				return nil
			}); err != nil {
				t.Error(err)
			}
		}},
		{"a replaced session is served as replaced", func(t *testing.T, s *Store) {
			put(t, s, "tok", alice)
			lookup(t, s, "tok")
			bob := &Session{UserID: "@bob:x", DeviceID: "B"}
			put(t, s, "tok", bob)
			if got, err := lookup(t, s, "tok"); err != nil || *got != *bob {
				t.Errorf("after replacing: %v %v, want bob's session", got, err)
			}
		}},
		{"a reader that raced a logout does not put the session back", func(t *testing.T, s *Store) {
			put(t, s, "tok", alice) // the write leaves the cache without it
			err := s.View(func(tx *Txn) error {
				// The snapshot is taken at the View's first read from
				// Badger; this one takes it.
				if _, err := get(tx.txn, []byte("any")); !errors.Is(err, ErrNotFound) {
					return err
				}
				// The logout commits after this reader's snapshot was taken:
				// the reader still sees the session, and must not cache it.
				if err := s.Update(func(tx *Txn) error { return tx.DeleteSession("tok") }); err != nil {
					return err
				}
				_, err := tx.Session("tok")
				return err
			})
			if err != nil {
				t.Fatalf("the older snapshot: %v, want the session", err)
			}
			if _, err := lookup(t, s, "tok"); !errors.Is(err, ErrNotFound) {
				t.Errorf("after the raced logout: %v, want ErrNotFound", err)
			}
		}},
		{"unknown tokens are not cached, and the cache stays bounded", func(t *testing.T, s *Store) {
			const n = 3 * maxSessions / 2
			if err := s.Update(func(tx *Txn) error {
				for i := range n {
					if err := tx.PutSession(fmt.Sprint("tok", i), alice); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			for i := range n {
				lookup(t, s, fmt.Sprint("tok", i))
				lookup(t, s, fmt.Sprint("guess", i))
			}
			s.sessions.mu.Lock()
			cached := len(s.sessions.m)
			s.sessions.mu.Unlock()
			if cached > maxSessions {
				t.Errorf("%d sessions cached, bound %d", cached, maxSessions)
			}
			before := s.Stats().SessionReads
			lookup(t, s, "guess0")
			if s.Stats().SessionReads != before+1 {
				t.Error("an unknown token was answered from the cache")
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, openTestStore(t, Options{})) })
	}
}

func TestRedactionIndex(t *testing.T) {
	red := &Redaction{Target: "$target", RedactionID: "$redaction", ByPower: true}
	lookup := func(t *testing.T, s *Store, target string) (*Redaction, error) {
		t.Helper()
		var r *Redaction
		err := s.View(func(tx *Txn) error {
			var err error
			r, err = tx.Redaction(target)
			return err
		})
		if err != nil && !errors.Is(err, ErrNotFound) {
			t.Fatal(err)
		}
		return r, err
	}

	t.Run("a redaction is visible to its own transaction, and to others once committed", func(t *testing.T) {
		s := openTestStore(t, Options{})
		err := s.Update(func(tx *Txn) error {
			if err := tx.PutRedaction(red); err != nil {
				return err
			}
			if r, err := tx.Redaction("$target"); err != nil || *r != *red {
				return fmt.Errorf("in its transaction: %v %v", r, err)
			}
			if r, err := lookup(t, s, "$target"); !errors.Is(err, ErrNotFound) {
				return fmt.Errorf("another transaction sees it before the commit: %v", r)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if r, err := lookup(t, s, "$target"); err != nil || *r != *red {
			t.Errorf("after commit: %v %v", r, err)
		}
	})

	t.Run("a failed transaction leaves no redaction", func(t *testing.T) {
		s := openTestStore(t, Options{})
		err := s.Update(func(tx *Txn) error {
			if err := tx.PutRedaction(red); err != nil {
				return err
			}
			return errAbort
		})
		if !errors.Is(err, errAbort) {
			t.Fatal(err)
		}
		if r, err := lookup(t, s, "$target"); !errors.Is(err, ErrNotFound) {
			t.Errorf("after a failed write: %v, want ErrNotFound", r)
		}
		if n := s.Stats().Redactions; n != 0 {
			t.Errorf("%d redactions held after a failed write", n)
		}
	})

	t.Run("reopening rebuilds the index from disk", func(t *testing.T) {
		dir := t.TempDir()
		s, err := Open(dir, Options{})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 20 {
			if err := s.Update(func(tx *Txn) error {
				return tx.PutRedaction(&Redaction{Target: fmt.Sprint("$t", i), RedactionID: fmt.Sprint("$r", i)})
			}); err != nil {
				t.Fatal(err)
			}
		}
		s.Close()
		s, err = Open(dir, Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if n := s.Stats().Redactions; n != 20 {
			t.Errorf("%d redactions after reopening, want 20", n)
		}
		if r, err := lookup(t, s, "$t7"); err != nil || r.RedactionID != "$r7" {
			t.Errorf("after reopening: %v %v", r, err)
		}
	})
}
