package store

import (
	"encoding/json"
	"errors"
	"strings"
)

// Verifications are kept per local user: each person using the node
// vouches only for the servers they checked themselves (in person, by
// safety number or QR code, or by taking an invite link from the maker's
// hand). A server's name is its key, so a record never goes stale: it
// can only be withdrawn by the user who made it.
func prefixVerified(user string) []byte { return []byte("e2v/" + user + "\x00") }
func keyVerified(user, server string) []byte {
	return append(prefixVerified(user), server...)
}

// Verified is a local user's record that they checked a server's key.
type Verified struct {
	// Via is how: "qr", "manual" (safety numbers compared) or "link" (an
	// invite link taken in person from someone on that server).
	Via string `json:"via"`
	// TS is when, in ms since the epoch.
	TS int64 `json:"ts"`
}

// PutVerified records that user verified server, replacing any earlier
// record.
func (t *Txn) PutVerified(user, server string, v Verified) error {
	return t.setJSON(keyVerified(user, server), v)
}

// DeleteVerified withdraws user's verification of server; it is not an
// error if there was none.
func (t *Txn) DeleteVerified(user, server string) error {
	return t.txn.Delete(keyVerified(user, server))
}

// Verification reads user's record for server, or nil without one.
func (t *Txn) Verification(user, server string) (*Verified, error) {
	var v Verified
	err := t.getJSON(keyVerified(user, server), &v)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &v, nil
}

// Verifications lists every server user verified.
func (t *Txn) Verifications(user string) (map[string]Verified, error) {
	out := map[string]Verified{}
	prefix := prefixVerified(user)
	err := t.scan(prefix, nil, false, func(k, val []byte) (bool, error) {
		var v Verified
		if err := json.Unmarshal(val, &v); err != nil {
			return false, err
		}
		out[strings.TrimPrefix(string(k), string(prefix))] = v
		return true, nil
	})
	return out, err
}
