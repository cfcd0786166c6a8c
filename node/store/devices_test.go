package store

import (
	"errors"
	"testing"
)

// TestDeletingADeviceRevokesItsTokens: a device's access tokens stop
// authenticating once it is deleted, even those the session cache holds,
// and its refresh tokens are gone.
func TestDeletingADeviceRevokesItsTokens(t *testing.T) {
	s := openTestStore(t, Options{})
	const user = "@alice:x"
	tokens := []string{"token-one", "token-two"}
	err := s.Update(func(tx *Txn) error {
		d := &Device{UserID: user, ID: "PHONE", Name: "phone"}
		for _, tok := range tokens {
			if err := tx.PutSession(tok, &Session{UserID: user, DeviceID: "PHONE"}); err != nil {
				return err
			}
			d.Tokens = append(d.Tokens, HashToken(tok))
		}
		d.Refresh = []string{HashToken("refresh")}
		if err := tx.PutRefreshSession(HashToken("refresh"), &RefreshSession{UserID: user, DeviceID: "PHONE"}); err != nil {
			return err
		}
		if err := tx.PutSession("other-device", &Session{UserID: user, DeviceID: "LAPTOP"}); err != nil {
			return err
		}
		if err := tx.PutDevice(&Device{UserID: user, ID: "LAPTOP", Tokens: []string{HashToken("other-device")}}); err != nil {
			return err
		}
		return tx.PutDevice(d)
	})
	if err != nil {
		t.Fatal(err)
	}
	// Read once so that the cache holds them.
	for _, tok := range tokens {
		if err := s.View(func(tx *Txn) error { _, err := tx.Session(tok); return err }); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Update(func(tx *Txn) error { return tx.DeleteDevice(user, "PHONE") }); err != nil {
		t.Fatal(err)
	}
	err = s.View(func(tx *Txn) error {
		for _, tok := range tokens {
			if _, err := tx.Session(tok); !errors.Is(err, ErrNotFound) {
				t.Errorf("token %s after its device was deleted: %v, want ErrNotFound", tok, err)
			}
		}
		if _, err := tx.RefreshSession(HashToken("refresh")); !errors.Is(err, ErrNotFound) {
			t.Errorf("the refresh token after its device was deleted: %v", err)
		}
		if _, err := tx.Session("other-device"); err != nil {
			t.Errorf("another device's token: %v", err)
		}
		ds, err := tx.Devices(user)
		if err != nil || len(ds) != 1 || ds[0].ID != "LAPTOP" {
			t.Errorf("devices left: %v, %v; want LAPTOP alone", ds, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Deleting what is not there is not an error.
	if err := s.Update(func(tx *Txn) error { return tx.DeleteDevice(user, "PHONE") }); err != nil {
		t.Errorf("deleting a deleted device: %v", err)
	}
}

// TestOrphanSessionsAreThoseWithoutADevice: sessions from before devices
// were recorded are found, and no others.
func TestOrphanSessionsAreThoseWithoutADevice(t *testing.T) {
	s := openTestStore(t, Options{})
	err := s.Update(func(tx *Txn) error {
		if err := tx.PutSession("old", &Session{UserID: "@a:x", DeviceID: "OLD"}); err != nil {
			return err
		}
		if err := tx.PutSession("new", &Session{UserID: "@a:x", DeviceID: "NEW"}); err != nil {
			return err
		}
		return tx.PutDevice(&Device{UserID: "@a:x", ID: "NEW", Tokens: []string{HashToken("new")}})
	})
	if err != nil {
		t.Fatal(err)
	}
	s.View(func(tx *Txn) error {
		got, err := tx.OrphanSessions()
		if err != nil || len(got) != 1 || got[HashToken("old")] == nil || got[HashToken("old")].DeviceID != "OLD" {
			t.Errorf("orphans %v, %v; want the OLD device's session alone", got, err)
		}
		return nil
	})
}
