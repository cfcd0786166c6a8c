package store

import (
	"encoding/json"
	"errors"
	"strings"
)

func keyBlockedServer(server string) []byte { return []byte("blk/" + server) }

// Invite is an invite a local user received for a room it is not in,
// kept per user (inviteRecords, userrooms.go).
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

func (inv *Invite) room() string { return inv.RoomID }
func (inv *Invite) pos() uint64  { return inv.Pos }

// PutInvite stores an invite (a new one, or an update with a new Pos).
func (t *Txn) PutInvite(user string, inv *Invite) error {
	return putUserRoom(t, inviteRecords, user, inv)
}

// DeleteInvite forgets a user's invite to a room entirely.
func (t *Txn) DeleteInvite(user, room string) error {
	return deleteUserRoom[Invite](t, inviteRecords, user, room)
}

// Invite loads a user's invite to a room.
func (t *Txn) Invite(user, room string) (*Invite, error) {
	return getUserRoom[Invite](t, inviteRecords, user, room)
}

// Invites lists a user's invites, pending and closed.
func (t *Txn) Invites(user string) ([]*Invite, error) {
	return userRoomsOf[Invite](t, inviteRecords, user)
}

// InvitesSince lists a user's invites stored or changed after stream
// position since, reading only those.
func (t *Txn) InvitesSince(user string, since uint64) ([]*Invite, error) {
	return userRoomsSince[Invite](t, inviteRecords, user, since)
}

// AllInvites calls fn for every user's every invite.
func (t *Txn) AllInvites(fn func(user string, inv *Invite) error) error {
	return t.scan([]byte(inviteRecords.rec), nil, false, func(k, v []byte) (bool, error) {
		user, _, ok := strings.Cut(strings.TrimPrefix(string(k), inviteRecords.rec), "\x00")
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
