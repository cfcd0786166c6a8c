package client

import (
	"errors"
	"fmt"
	"testing"

	"github.com/parley-p2p/parley/node/store"
)

// TestDevicesAndTokensAreBounded: a user's device beyond maxDevices
// deletes the one seen least recently, and a device's token beyond
// maxDeviceTokens revokes its oldest.
func TestDevicesAndTokensAreBounded(t *testing.T) {
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	api := &API{}
	const user = "@alice:x"
	err = st.Update(func(tx *store.Txn) error {
		for i := range maxDevices {
			// DEV0 was seen last, DEV1 least recently of all.
			seen := int64(1000 + i)
			if i == 0 {
				seen = 1_000_000
			}
			if err := tx.PutDevice(&store.Device{UserID: user, ID: fmt.Sprintf("DEV%d", i), Created: 1, LastSeenTS: seen}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var added string
	var removed []string
	err = st.Update(func(tx *store.Txn) error {
		var err error
		_, _, added, removed, err = api.issue(tx, user, "NEW", "new phone")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if added != "NEW" || len(removed) != 1 || removed[0] != "DEV1" {
		t.Errorf("a device beyond the bound: added %q, removed %v; want NEW added and DEV1 removed", added, removed)
	}
	st.View(func(tx *store.Txn) error {
		ds, _ := tx.Devices(user)
		if len(ds) != maxDevices {
			t.Errorf("%d devices, want %d", len(ds), maxDevices)
		}
		return nil
	})

	var tokens []string
	for range maxDeviceTokens + 4 {
		err := st.Update(func(tx *store.Txn) error {
			tok, _, _, _, err := api.issue(tx, user, "NEW", "")
			tokens = append(tokens, tok)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	st.View(func(tx *store.Txn) error {
		for i, tok := range tokens {
			_, err := tx.Session(tok)
			// The first token (from the device's creation) and these
			// first four went, oldest first.
			if revoked := errors.Is(err, store.ErrNotFound); revoked != (i < 4) {
				t.Errorf("token %d: %v", i, err)
			}
		}
		d, _ := tx.Device(user, "NEW")
		if d == nil || len(d.Tokens) != maxDeviceTokens || d.Name != "new phone" {
			t.Errorf("the device: %+v; want %d tokens and its first name", d, maxDeviceTokens)
		}
		return nil
	})
}
