package store

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
)

// A device is what one login of a user holds: a display name, when and
// from where it was last seen, and the hashes of the access and refresh
// tokens issued to it, so that deleting the device revokes them all.
// Sessions (tok/) stay keyed by their token's hash for the hot path of
// authenticating a request; a device lists its own.

func keyDevice(user, device string) []byte { return []byte("dev/" + user + "\x00" + device) }
func prefixDevices(user string) []byte     { return []byte("dev/" + user + "\x00") }
func keyRefresh(hash string) []byte        { return []byte("rtok/" + hash) }

// Device is one of a user's devices.
type Device struct {
	UserID     string `json:"user"`
	ID         string `json:"id"`
	Name       string `json:"name,omitempty"`
	Created    int64  `json:"created"`
	LastSeenTS int64  `json:"seen,omitempty"`
	LastSeenIP string `json:"ip,omitempty"`
	// Tokens and Refresh are the hashes (HashToken) of the device's
	// access and refresh tokens, oldest first.
	Tokens  []string `json:"tok,omitempty"`
	Refresh []string `json:"rtok,omitempty"`
}

// RefreshSession is what a refresh token stands for.
type RefreshSession struct {
	UserID   string `json:"user"`
	DeviceID string `json:"device"`
	Created  int64  `json:"created"`
	// Access is the hash of the access token issued with it.
	Access string `json:"at,omitempty"`
	// Prev is the hash of the refresh token it replaced: using this one
	// revokes that.
	Prev string `json:"prev,omitempty"`
}

// Device loads one of a user's devices.
func (t *Txn) Device(user, device string) (*Device, error) {
	var d Device
	if err := t.getJSON(keyDevice(user, device), &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// PutDevice stores a device.
func (t *Txn) PutDevice(d *Device) error { return t.setJSON(keyDevice(d.UserID, d.ID), d) }

// Devices lists a user's devices, by ID.
func (t *Txn) Devices(user string) ([]*Device, error) {
	var out []*Device
	err := t.scan(prefixDevices(user), nil, false, func(_, v []byte) (bool, error) {
		var d Device
		if err := json.Unmarshal(v, &d); err != nil {
			return false, err
		}
		out = append(out, &d)
		return true, nil
	})
	return out, err
}

// DeleteDevice deletes a device and revokes every token issued to it. A
// device that does not exist is not an error.
func (t *Txn) DeleteDevice(user, device string) error {
	d, err := t.Device(user, device)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, h := range d.Tokens {
		if err := t.DeleteSessionHash(h); err != nil {
			return err
		}
	}
	for _, h := range d.Refresh {
		if err := t.txn.Delete(keyRefresh(h)); err != nil {
			return err
		}
	}
	return t.txn.Delete(keyDevice(user, device))
}

// RefreshSession loads what a refresh token (by its hash) stands for.
func (t *Txn) RefreshSession(hash string) (*RefreshSession, error) {
	var r RefreshSession
	if err := t.getJSON(keyRefresh(hash), &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// PutRefreshSession stores a refresh token by its hash.
func (t *Txn) PutRefreshSession(hash string, r *RefreshSession) error {
	return t.setJSON(keyRefresh(hash), r)
}

// DeleteRefreshSession revokes a refresh token by its hash; the device
// that lists it is the caller's to update.
func (t *Txn) DeleteRefreshSession(hash string) error { return t.txn.Delete(keyRefresh(hash)) }

// OrphanSessions lists the sessions, by token hash, whose device has no
// record: those issued before devices were recorded.
func (t *Txn) OrphanSessions() (map[string]*Session, error) {
	all := map[string]*Session{}
	err := t.scan([]byte("tok/"), nil, false, func(k, v []byte) (bool, error) {
		var s Session
		if err := json.Unmarshal(v, &s); err != nil {
			return false, err
		}
		all[strings.TrimPrefix(string(k), "tok/")] = &s
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	for h, s := range all {
		if _, err := t.Device(s.UserID, s.DeviceID); err == nil {
			delete(all, h)
		} else if !errors.Is(err, ErrNotFound) {
			return nil, err
		}
	}
	return all, nil
}

// RemoveHash drops a hash from a device's list of tokens, reporting
// whether it was there.
func RemoveHash(list *[]string, hash string) bool {
	i := slices.Index(*list, hash)
	if i < 0 {
		return false
	}
	*list = slices.Delete(*list, i, i+1)
	return true
}
