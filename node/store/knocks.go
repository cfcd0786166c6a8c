package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
)

// Knocks are kept per user, as invites are: a record for each room a local
// user knocked on that this node does not follow, with an index by stream
// position so that an incremental /sync reads only those that changed.
// Only the user's own request makes a record, so their number is bounded
// by what the client API allows (peers.MaxPendingKnocks).
func prefixKnocks(user string) []byte { return []byte("knk/" + user + "\x00") }
func keyKnock(user, room string) []byte {
	return append(prefixKnocks(user), room...)
}
func prefixKnockPos(user string) []byte { return []byte("knkp/" + user + "\x00") }
func keyKnockPos(user string, pos uint64) []byte {
	return binary.BigEndian.AppendUint64(prefixKnockPos(user), pos)
}

// Knock is a local user's knock on a room this node does not follow.
type Knock struct {
	RoomID  string `json:"room"`
	Version string `json:"v"`
	Pos     uint64 `json:"pos"`
	// Event is the knock event; once Left, the event that ended it (a
	// member's kick or ban, or the user's own leave).
	Event json.RawMessage `json:"event,omitempty"`
	// State is the stripped state the resident answered with (client
	// format).
	State []json.RawMessage `json:"state,omitempty"`
	// Via is the server the knock went through.
	Via string `json:"via"`
	// Left is set once the knock was withdrawn or refused: the state is
	// then dropped, and the record stays for sync's leave section.
	Left bool `json:"left,omitempty"`
}

// PutKnock stores a knock (a new one, or an update with a new Pos).
func (t *Txn) PutKnock(user string, k *Knock) error {
	old, err := t.Knock(user, k.RoomID)
	switch {
	case err == nil && old.Pos != k.Pos:
		if err := t.txn.Delete(keyKnockPos(user, old.Pos)); err != nil {
			return err
		}
	case err != nil && !errors.Is(err, ErrNotFound):
		return err
	}
	if err := t.txn.Set(keyKnockPos(user, k.Pos), []byte(k.RoomID)); err != nil {
		return err
	}
	return t.setJSON(keyKnock(user, k.RoomID), k)
}

// DeleteKnock forgets a user's knock on a room entirely (they joined or
// were invited: the room shows under join or invite instead).
func (t *Txn) DeleteKnock(user, room string) error {
	old, err := t.Knock(user, room)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := t.txn.Delete(keyKnockPos(user, old.Pos)); err != nil {
		return err
	}
	return t.txn.Delete(keyKnock(user, room))
}

// Knock loads a user's knock on a room.
func (t *Txn) Knock(user, room string) (*Knock, error) {
	var k Knock
	if err := t.getJSON(keyKnock(user, room), &k); err != nil {
		return nil, err
	}
	return &k, nil
}

// Knocks lists a user's knocks, pending and closed.
func (t *Txn) Knocks(user string) ([]*Knock, error) {
	var out []*Knock
	err := t.scan(prefixKnocks(user), nil, false, func(_, v []byte) (bool, error) {
		var k Knock
		if err := json.Unmarshal(v, &k); err != nil {
			return false, err
		}
		out = append(out, &k)
		return true, nil
	})
	return out, err
}

// KnocksSince lists a user's knocks stored or changed after stream
// position since, reading only those.
func (t *Txn) KnocksSince(user string, since uint64) ([]*Knock, error) {
	var out []*Knock
	err := t.scan(prefixKnockPos(user), keyKnockPos(user, since+1), false, func(_, v []byte) (bool, error) {
		k, err := t.Knock(user, string(v))
		if errors.Is(err, ErrNotFound) {
			return true, nil
		}
		if err != nil {
			return false, err
		}
		out = append(out, k)
		return true, nil
	})
	return out, err
}
