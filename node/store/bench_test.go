// Benchmarks for the lookups the in-memory indexes answer: an event that
// is not stored, a session by token, a redaction by target.
package store

import (
	"fmt"
	"testing"
)

// benchStore opens a store on disk holding n events, n/10 redactions and
// one session under the token "tok".
func benchStore(b *testing.B, n int) *Store {
	b.Helper()
	s, err := Open(b.TempDir(), Options{MinFree: -1})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	for lo := 0; lo < n; lo += 1000 {
		err := s.Update(func(tx *Txn) error {
			for i := lo; i < lo+1000 && i < n; i++ {
				id := fmt.Sprintf("$event%d", i)
				if err := tx.PutEvent("!room", id, &EventRecord{Version: "12", PDU: []byte(`{}`), Pos: tx.NextPos()}); err != nil {
					return err
				}
				if i%10 == 0 {
					if err := tx.PutRedaction(&Redaction{Target: id, RedactionID: "$red" + id}); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Update(func(tx *Txn) error {
		return tx.PutSession("tok", &Session{UserID: "@a:x", DeviceID: "D"})
	}); err != nil {
		b.Fatal(err)
	}
	return s
}

func BenchmarkEventMiss(b *testing.B) {
	for _, filtered := range []bool{true, false} {
		b.Run(fmt.Sprintf("filter=%v", filtered), func(b *testing.B) {
			s := benchStore(b, 10_000)
			if !filtered {
				disableEventFilter(s)
			}
			ids := make([]string, 1024)
			for i := range ids {
				ids[i] = fmt.Sprintf("$unknown%d", i)
			}
			b.ReportAllocs()
			b.ResetTimer()
			err := s.View(func(tx *Txn) error {
				for i := 0; b.Loop(); i++ {
					if _, err := tx.Event(ids[i%len(ids)]); err != ErrNotFound {
						return fmt.Errorf("unknown event: %v", err)
					}
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		})
	}
}

// BenchmarkSessionHit looks up a known token: in a View of its own, as
// every authenticated request does, and alone, in one View.
func BenchmarkSessionHit(b *testing.B) {
	lookup := func(tx *Txn) error {
		sess, err := tx.Session("tok")
		if err == nil && sess.UserID != "@a:x" {
			err = fmt.Errorf("session for %s", sess.UserID)
		}
		return err
	}
	b.Run("view per lookup", func(b *testing.B) {
		s := benchStore(b, 1000)
		b.ReportAllocs()
		for b.Loop() {
			if err := s.View(lookup); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("one view", func(b *testing.B) {
		s := benchStore(b, 1000)
		b.ReportAllocs()
		err := s.View(func(tx *Txn) error {
			for b.Loop() {
				if err := lookup(tx); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	})
}

func BenchmarkRedactionLookup(b *testing.B) {
	s := benchStore(b, 10_000)
	ids := make([]string, 10_000)
	for i := range ids {
		ids[i] = fmt.Sprintf("$event%d", i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	err := s.View(func(tx *Txn) error {
		for i := 0; b.Loop(); i++ {
			// Every tenth event is redacted: nine lookups in ten miss.
			_, err := tx.Redaction(ids[i%len(ids)])
			if err != nil && err != ErrNotFound {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
}

// disableEventFilter makes the store read Badger for every event lookup,
// as it did before the filter.
func disableEventFilter(s *Store) { s.events = nil }

// BenchmarkLoadIndexes is what the indexes add to Open for a node holding
// 100,000 events (1,000 rooms of 100) and 10,000 redactions.
func BenchmarkLoadIndexes(b *testing.B) {
	s := benchStore(b, 100_000)
	b.ReportAllocs()
	for b.Loop() {
		if err := s.loadIndexes(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(s.Stats().EventFilterBytes), "filter-bytes")
}
