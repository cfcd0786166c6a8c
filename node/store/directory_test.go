package store

import (
	"errors"
	"slices"
	"testing"
)

// TestPublished: a room is published once, up to the bound, listed in
// order, and taken out again.
func TestPublished(t *testing.T) {
	s := openTestStore(t, Options{})
	put := func(room string) error {
		return s.Update(func(tx *Txn) error { return tx.PutPublished(room, 2) })
	}
	for _, room := range []string{"!b", "!a", "!a"} {
		if err := put(room); err != nil {
			t.Fatalf("publish %s: %v", room, err)
		}
	}
	if err := put("!c"); !errors.Is(err, ErrTooManyPublished) {
		t.Fatalf("a third room with a bound of 2: %v, want ErrTooManyPublished", err)
	}
	list := func() []string {
		var out []string
		if err := s.View(func(tx *Txn) error {
			var err error
			out, err = tx.PublishedRooms(10)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	if got := list(); !slices.Equal(got, []string{"!a", "!b"}) {
		t.Fatalf("published: %v, want [!a !b]", got)
	}
	if err := s.Update(func(tx *Txn) error { return tx.DeletePublished("!a") }); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(func(tx *Txn) error { return tx.DeletePublished("!nothere") }); err != nil {
		t.Fatalf("unpublish a room never published: %v", err)
	}
	if got := list(); !slices.Equal(got, []string{"!b"}) {
		t.Fatalf("published after taking !a out: %v, want [!b]", got)
	}
	err := s.View(func(tx *Txn) error {
		if ok, err := tx.Published("!b"); !ok || err != nil {
			t.Errorf("!b published: %v, %v", ok, err)
		}
		if ok, err := tx.Published("!a"); ok || err != nil {
			t.Errorf("!a published: %v, %v", ok, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
