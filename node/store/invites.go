package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"strings"
)

// Invites are kept per user, with an index by stream position so that an
// incremental /sync reads only the invites that changed since its token,
// however many are pending.
func prefixInvites(user string) []byte { return []byte("inv/" + user + "\x00") }
func keyInvite(user, room string) []byte {
	return append(prefixInvites(user), room...)
}
func prefixInvitePos(user string) []byte { return []byte("invp/" + user + "\x00") }
func keyInvitePos(user string, pos uint64) []byte {
	return binary.BigEndian.AppendUint64(prefixInvitePos(user), pos)
}
func keyBlockedServer(server string) []byte { return []byte("blk/" + server) }

// Invite is an invite a local user received for a room it is not in.
type Invite struct {
	RoomID  string          `json:"room"`
	Version string          `json:"v"`
	Pos     uint64          `json:"pos"`
	Event   json.RawMessage `json:"event,omitempty"`
	// State is the stripped state the inviter sent (client format).
	State []json.RawMessage `json:"state,omitempty"`
	// Via is the server to join through.
	Via string `json:"via"`
	// Left is set once the invite was declined or the user joined: the
	// event and state are then dropped, and the record stays for sync's
	// leave section.
	Left bool `json:"left,omitempty"`
}

// PutInvite stores an invite (a new one, or an update with a new Pos).
func (t *Txn) PutInvite(user string, inv *Invite) error {
	old, err := t.Invite(user, inv.RoomID)
	switch {
	case err == nil && old.Pos != inv.Pos:
		if err := t.txn.Delete(keyInvitePos(user, old.Pos)); err != nil {
			return err
		}
	case err != nil && !errors.Is(err, ErrNotFound):
		return err
	}
	if err := t.txn.Set(keyInvitePos(user, inv.Pos), []byte(inv.RoomID)); err != nil {
		return err
	}
	return t.setJSON(keyInvite(user, inv.RoomID), inv)
}

// DeleteInvite forgets a user's invite to a room entirely.
func (t *Txn) DeleteInvite(user, room string) error {
	old, err := t.Invite(user, room)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := t.txn.Delete(keyInvitePos(user, old.Pos)); err != nil {
		return err
	}
	return t.txn.Delete(keyInvite(user, room))
}

// Invite loads a user's invite to a room.
func (t *Txn) Invite(user, room string) (*Invite, error) {
	var inv Invite
	if err := t.getJSON(keyInvite(user, room), &inv); err != nil {
		return nil, err
	}
	return &inv, nil
}

// Invites lists a user's invites, pending and closed.
func (t *Txn) Invites(user string) ([]*Invite, error) {
	var out []*Invite
	err := t.scan(prefixInvites(user), nil, false, func(_, v []byte) (bool, error) {
		var inv Invite
		if err := json.Unmarshal(v, &inv); err != nil {
			return false, err
		}
		out = append(out, &inv)
		return true, nil
	})
	return out, err
}

// InvitesSince lists a user's invites stored or changed after stream
// position since, reading only those.
func (t *Txn) InvitesSince(user string, since uint64) ([]*Invite, error) {
	var out []*Invite
	err := t.scan(prefixInvitePos(user), keyInvitePos(user, since+1), false, func(_, v []byte) (bool, error) {
		inv, err := t.Invite(user, string(v))
		if errors.Is(err, ErrNotFound) {
			return true, nil
		}
		if err != nil {
			return false, err
		}
		out = append(out, inv)
		return true, nil
	})
	return out, err
}

// AllInvites calls fn for every user's every invite.
func (t *Txn) AllInvites(fn func(user string, inv *Invite) error) error {
	return t.scan([]byte("inv/"), nil, false, func(k, v []byte) (bool, error) {
		user, _, ok := strings.Cut(strings.TrimPrefix(string(k), "inv/"), "\x00")
		if !ok {
			return true, nil
		}
		var inv Invite
		if err := json.Unmarshal(v, &inv); err != nil {
			return false, err
		}
		return true, fn(user, &inv)
	})
}

// BlockServer records that the owner blocked a server.
func (t *Txn) BlockServer(server string) error { return t.txn.Set(keyBlockedServer(server), nil) }

// UnblockServer forgets a blocked server.
func (t *Txn) UnblockServer(server string) error { return t.txn.Delete(keyBlockedServer(server)) }

// ServerBlocked reports whether the owner blocked the server.
func (t *Txn) ServerBlocked(server string) (bool, error) {
	_, err := get(t.txn, keyBlockedServer(server))
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// BlockedServers lists the blocked servers.
func (t *Txn) BlockedServers() ([]string, error) {
	out := []string{}
	err := t.scan([]byte("blk/"), nil, false, func(k, _ []byte) (bool, error) {
		out = append(out, strings.TrimPrefix(string(k), "blk/"))
		return true, nil
	})
	return out, err
}
