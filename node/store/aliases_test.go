package store

import (
	"errors"
	"slices"
	"testing"
)

// TestAliases: an alias is put once, listed under its room, counted
// for its creator up to the bound, and deleted with its index entries.
func TestAliases(t *testing.T) {
	s := openTestStore(t, Options{})
	put := func(alias, room, user string) error {
		return s.Update(func(tx *Txn) error { return tx.PutAlias(alias, room, user, 2) })
	}
	if err := put("#a:s", "!r", "@u:s"); err != nil {
		t.Fatal(err)
	}
	if err := put("#a:s", "!other", "@v:s"); !errors.Is(err, ErrAliasTaken) {
		t.Fatalf("the same alias again: %v, want ErrAliasTaken", err)
	}
	if err := put("#b:s", "!r", "@u:s"); err != nil {
		t.Fatal(err)
	}
	if err := put("#c:s", "!r", "@u:s"); !errors.Is(err, ErrTooManyAliases) {
		t.Fatalf("a third alias with a bound of 2: %v, want ErrTooManyAliases", err)
	}
	err := s.View(func(tx *Txn) error {
		rec, err := tx.Alias("#a:s")
		if err != nil || rec.Room != "!r" || rec.Creator != "@u:s" {
			t.Errorf("#a:s is %+v, %v", rec, err)
		}
		list, err := tx.RoomAliases("!r")
		if err != nil || !slices.Equal(list, []string{"#a:s", "#b:s"}) {
			t.Errorf("the room's aliases: %v, %v", list, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Update(func(tx *Txn) error { return tx.DeleteAlias("#a:s") }); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(func(tx *Txn) error { return tx.DeleteAlias("#a:s") }); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete it again: %v, want ErrNotFound", err)
	}
	err = s.View(func(tx *Txn) error {
		if list, _ := tx.RoomAliases("!r"); !slices.Equal(list, []string{"#b:s"}) {
			t.Errorf("the room's aliases after the delete: %v", list)
		}
		if n, _ := tx.UserAliases("@u:s", 10); n != 1 {
			t.Errorf("the user holds %d aliases after the delete, want 1", n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := put("#c:s", "!r", "@u:s"); err != nil {
		t.Fatalf("an alias once one is freed: %v", err)
	}
}
