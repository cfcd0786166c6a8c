package store

import (
	"errors"
	"testing"
)

func TestRoomSecretsAreKeptPerEpochAndTheFirstStays(t *testing.T) {
	s := openTestStore(t, Options{})
	one := RoomSecret{RoomID: "!a:x", Epoch: 0, Secret: [32]byte{1}}
	two := RoomSecret{RoomID: "!a:x", Epoch: 1, Secret: [32]byte{2}}
	other := RoomSecret{RoomID: "!a:xy", Epoch: 0, Secret: [32]byte{3}}
	err := s.Update(func(t *Txn) error {
		for _, rs := range []RoomSecret{two, one, other, one} {
			if err := t.PutRoomSecret(rs); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Update(func(t *Txn) error { return t.PutRoomSecret(RoomSecret{RoomID: "!a:x", Secret: [32]byte{9}}) })
	if !errors.Is(err, ErrSecretConflict) {
		t.Errorf("a second secret for a kept epoch: %v, want ErrSecretConflict", err)
	}
	var all []RoomSecret
	err = s.View(func(t *Txn) error {
		list, err := t.RoomSecrets("!a:x")
		if err != nil {
			return err
		}
		if len(list) != 2 || list[0] != one || list[1] != two {
			return errors.New("RoomSecrets is not the two epochs in order")
		}
		if _, err := t.RoomSecrets("!none:x"); !errors.Is(err, ErrNotFound) {
			return errors.New("a room without secrets is not ErrNotFound")
		}
		return t.AllRoomSecrets(func(rs RoomSecret) error { all = append(all, rs); return nil })
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 3 {
		t.Errorf("AllRoomSecrets gave %d, want 3: %+v", len(all), all)
	}
	err = s.Update(func(t *Txn) error { return t.ReplaceRoomSecret(RoomSecret{RoomID: "!a:x", Secret: [32]byte{9}}) })
	if err != nil {
		t.Fatal(err)
	}
	s.View(func(tx *Txn) error {
		if rs, err := tx.RoomSecretAt("!a:x", 0); err != nil || rs.Secret != [32]byte{9} {
			t.Errorf("after replacing: %+v, %v", rs, err)
		}
		return nil
	})
}
