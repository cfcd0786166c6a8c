package store

import (
	"testing"
)

// Verifications are a user's own: another local user's records, even one
// whose ID extends the first's, are not theirs, and they outlive a
// restart until withdrawn.
func TestVerificationsAreEachUsersOwnAndPersist(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	const alice, alicia = "@al:x", "@al:xy"
	if err := s.Update(func(t *Txn) error {
		if err := t.PutVerified(alice, "s1", Verified{Via: "qr", TS: 1}); err != nil {
			return err
		}
		if err := t.PutVerified(alice, "s2", Verified{Via: "link", TS: 2}); err != nil {
			return err
		}
		return t.PutVerified(alicia, "s1", Verified{Via: "manual", TS: 3})
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })

	var mine map[string]Verified
	var one, none *Verified
	if err := s.View(func(t *Txn) error {
		var err error
		if mine, err = t.Verifications(alice); err != nil {
			return err
		}
		if one, err = t.Verification(alicia, "s1"); err != nil {
			return err
		}
		none, err = t.Verification(alicia, "s2")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(mine) != 2 || mine["s1"] != (Verified{Via: "qr", TS: 1}) || mine["s2"] != (Verified{Via: "link", TS: 2}) {
		t.Errorf("alice's verifications after a restart: %v", mine)
	}
	if one == nil || *one != (Verified{Via: "manual", TS: 3}) || none != nil {
		t.Errorf("alicia's: s1 %v, s2 %v; want her manual check of s1 only", one, none)
	}

	if err := s.Update(func(t *Txn) error {
		if err := t.DeleteVerified(alice, "s1"); err != nil {
			return err
		}
		return t.DeleteVerified(alice, "never")
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.View(func(t *Txn) error {
		var err error
		mine, err = t.Verifications(alice)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if _, ok := mine["s1"]; ok || len(mine) != 1 {
		t.Errorf("after withdrawing s1, alice's verifications are %v", mine)
	}
}
