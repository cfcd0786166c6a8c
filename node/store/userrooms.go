package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
)

// userRooms is a kind of record kept per local user and room (invites,
// knocks), with an index by stream position so that an incremental
// /sync reads only the records that changed since its token, however
// many a user has.
type userRooms struct{ rec, idx string }

var (
	inviteRecords = userRooms{rec: "inv/", idx: "invp/"}
	knockRecords  = userRooms{rec: "knk/", idx: "knkp/"}
)

func (k userRooms) prefix(user string) []byte { return []byte(k.rec + user + "\x00") }
func (k userRooms) key(user, room string) []byte {
	return append(k.prefix(user), room...)
}
func (k userRooms) idxPrefix(user string) []byte { return []byte(k.idx + user + "\x00") }
func (k userRooms) idxKey(user string, pos uint64) []byte {
	return binary.BigEndian.AppendUint64(k.idxPrefix(user), pos)
}

// userRoom is a record of a userRooms kind: it names its room and the
// stream position it was stored or last changed at.
type userRoom[T any] interface {
	*T
	room() string
	pos() uint64
}

func getUserRoom[T any, P userRoom[T]](t *Txn, k userRooms, user, room string) (P, error) {
	var v T
	if err := t.getJSON(k.key(user, room), &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// putUserRoom stores a record, new or updated: its index entry moves to
// its new position.
func putUserRoom[T any, P userRoom[T]](t *Txn, k userRooms, user string, v P) error {
	old, err := getUserRoom[T, P](t, k, user, v.room())
	switch {
	case err == nil && old.pos() != v.pos():
		if err := t.txn.Delete(k.idxKey(user, old.pos())); err != nil {
			return err
		}
	case err != nil && !errors.Is(err, ErrNotFound):
		return err
	}
	if err := t.txn.Set(k.idxKey(user, v.pos()), []byte(v.room())); err != nil {
		return err
	}
	return t.setJSON(k.key(user, v.room()), v)
}

// deleteUserRoom forgets a user's record for a room, and its index entry.
func deleteUserRoom[T any, P userRoom[T]](t *Txn, k userRooms, user, room string) error {
	old, err := getUserRoom[T, P](t, k, user, room)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := t.txn.Delete(k.idxKey(user, old.pos())); err != nil {
		return err
	}
	return t.txn.Delete(k.key(user, room))
}

// userRoomsOf lists a user's records of a kind.
func userRoomsOf[T any, P userRoom[T]](t *Txn, k userRooms, user string) ([]P, error) {
	var out []P
	err := t.scan(k.prefix(user), nil, false, func(_, b []byte) (bool, error) {
		var v T
		if err := json.Unmarshal(b, &v); err != nil {
			return false, err
		}
		out = append(out, &v)
		return true, nil
	})
	return out, err
}

// userRoomsSince lists a user's records of a kind stored or changed after
// stream position since, reading only those.
func userRoomsSince[T any, P userRoom[T]](t *Txn, k userRooms, user string, since uint64) ([]P, error) {
	var out []P
	err := t.scan(k.idxPrefix(user), k.idxKey(user, since+1), false, func(_, b []byte) (bool, error) {
		v, err := getUserRoom[T, P](t, k, user, string(b))
		if errors.Is(err, ErrNotFound) {
			return true, nil
		}
		if err != nil {
			return false, err
		}
		out = append(out, v)
		return true, nil
	})
	return out, err
}
