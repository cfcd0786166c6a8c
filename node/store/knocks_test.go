package store

import (
	"errors"
	"testing"
)

// TestKnocksSinceReadsOnlyWhatChanged: a knock updated with a new position
// is listed once, at its new position; a deleted one is gone.
func TestKnocksSinceReadsOnlyWhatChanged(t *testing.T) {
	s := openTestStore(t, Options{})
	const user = "@bob:b"
	var first uint64
	err := s.Update(func(t *Txn) error {
		for _, room := range []string{"!one", "!two"} {
			if err := t.PutKnock(user, &Knock{RoomID: room, Pos: t.NextPos(), Via: "a"}); err != nil {
				return err
			}
		}
		k, err := t.Knock(user, "!one")
		first = k.Pos
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Update(func(t *Txn) error {
		k, err := t.Knock(user, "!one")
		if err != nil {
			return err
		}
		k.Left, k.Pos = true, t.NextPos()
		return t.PutKnock(user, k)
	})
	if err != nil {
		t.Fatal(err)
	}
	s.View(func(tx *Txn) error {
		since, err := tx.KnocksSince(user, first+1)
		if err != nil {
			t.Fatal(err)
		}
		if len(since) != 1 || since[0].RoomID != "!one" || !since[0].Left {
			t.Errorf("knocks changed since the second: %+v, want !one, left", since)
		}
		all, _ := tx.Knocks(user)
		if len(all) != 2 {
			t.Errorf("%d knocks, want 2", len(all))
		}
		return nil
	})
	s.Update(func(t *Txn) error { return t.DeleteKnock(user, "!one") })
	s.View(func(tx *Txn) error {
		if _, err := tx.Knock(user, "!one"); !errors.Is(err, ErrNotFound) {
			t.Errorf("a deleted knock loads: %v", err)
		}
		if since, _ := tx.KnocksSince(user, 0); len(since) != 1 {
			t.Errorf("%d knocks listed after a delete, want 1", len(since))
		}
		return nil
	})
}
