package store

import "errors"

// A room a user forgot is recorded with the member event that left it
// (the leave or ban the user forgot): the room is forgotten while that
// event is the user's membership, so a later join undoes it without a
// write. One record per local user and room they left.
func keyForgotten(user, room string) []byte { return []byte("fgt/" + user + "\x00" + room) }

// Forgotten returns the member event with which the user forgot the
// room, or "" if they did not.
func (t *Txn) Forgotten(user, room string) (string, error) {
	b, err := get(t.txn, keyForgotten(user, room))
	if errors.Is(err, ErrNotFound) {
		return "", nil
	}
	return string(b), err
}

// PutForgotten records that the user forgot the room at memberEventID.
func (t *Txn) PutForgotten(user, room, memberEventID string) error {
	return t.txn.Set(keyForgotten(user, room), []byte(memberEventID))
}
