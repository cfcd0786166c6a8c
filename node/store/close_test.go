package store

import (
	"errors"
	"testing"
)

// TestAReadAfterCloseFailsInsteadOfHanging: a reader that comes after
// Close (a pubsub validator still running as a node shuts down) gets
// ErrClosed; Badger itself would wait forever on its read watermark.
func TestAReadAfterCloseFailsInsteadOfHanging(t *testing.T) {
	s, err := Open(t.TempDir(), Options{MinFree: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.View(func(*Txn) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Fatalf("View after Close: %v, want ErrClosed", err)
	}
}
