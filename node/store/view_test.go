package store

import (
	"errors"
	"testing"
)

func TestViewOpensBadgerOnlyWhenItReadsFromIt(t *testing.T) {
	s := openTestStore(t, Options{MinFree: -1})
	if err := s.Update(func(tx *Txn) error {
		if err := tx.PutSession("tok", &Session{UserID: "@a:x", DeviceID: "D"}); err != nil {
			return err
		}
		return tx.PutEvent("!room", "$known", &EventRecord{Version: "12", PDU: []byte(`{}`), Pos: tx.NextPos()})
	}); err != nil {
		t.Fatal(err)
	}
	view := func(fn func(tx *Txn) error) (opened uint64) {
		t.Helper()
		before := s.readTxns.Load()
		if err := s.View(fn); err != nil {
			t.Fatal(err)
		}
		return s.readTxns.Load() - before
	}
	// The first lookup reads the session from Badger and caches it.
	if n := view(func(tx *Txn) error { _, err := tx.Session("tok"); return err }); n != 1 {
		t.Errorf("a session read from Badger opened %d transactions, want 1", n)
	}
	tests := []struct {
		name   string
		fn     func(tx *Txn) error
		opened uint64
	}{
		{"a cached session opens none", func(tx *Txn) error {
			sess, err := tx.Session("tok")
			if err == nil && sess.UserID != "@a:x" {
				err = errors.New("wrong session " + sess.UserID)
			}
			return err
		}, 0},
		{"an event the filter rules out opens none", func(tx *Txn) error {
			if _, err := tx.Event("$never-stored"); !errors.Is(err, ErrNotFound) {
				return errors.New("an unknown event was found")
			}
			return nil
		}, 0},
		{"a stored event opens one, shared by every read", func(tx *Txn) error {
			for range 3 {
				if _, err := tx.Event("$known"); err != nil {
					return err
				}
			}
			return nil
		}, 1},
		{"a scan opens one", func(tx *Txn) error {
			_, err := tx.Timeline("!room", 0, 0, true, 10)
			return err
		}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if n := view(tc.fn); n != tc.opened {
				t.Errorf("opened %d Badger transactions, want %d", n, tc.opened)
			}
		})
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.View(func(tx *Txn) error { _, err := tx.Event("$known"); return err }); !errors.Is(err, ErrClosed) {
		t.Errorf("a View after Close: %v, want ErrClosed", err)
	}
}
