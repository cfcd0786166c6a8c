package store

import (
	"errors"
	"strings"
)

// The rooms this node publishes in the public room directory: one
// key-only record per room, made by a member with the power to (the
// caller checks), holding nothing else; what the directory shows of a
// room is read from its current state when asked. The caller bounds how
// many a node may publish (PutPublished refuses more).
func keyPublished(room string) []byte { return []byte("dirp/" + room) }

var prefixPublished = []byte("dirp/")

// ErrTooManyPublished: PutPublished beyond the node's bound.
var ErrTooManyPublished = errors.New("store: too many published rooms")

// Published reports whether the room is in this node's directory.
func (t *Txn) Published(room string) (bool, error) {
	_, err := get(t.txn, keyPublished(room))
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// PutPublished adds a room to the directory, if fewer than max are in it
// already (ErrTooManyPublished otherwise); a room in it already stays.
func (t *Txn) PutPublished(room string, max int) error {
	if ok, err := t.Published(room); err != nil || ok {
		return err
	}
	n := 0
	if err := t.scan(prefixPublished, nil, false, func(_, _ []byte) (bool, error) {
		n++
		return n < max, nil
	}); err != nil {
		return err
	}
	if n >= max {
		return ErrTooManyPublished
	}
	return t.txn.Set(keyPublished(room), nil)
}

// DeletePublished takes a room out of the directory; a room not in it is
// no error.
func (t *Txn) DeletePublished(room string) error {
	return t.txn.Delete(keyPublished(room))
}

// PublishedRooms lists the rooms in the directory, in order, at most
// limit of them.
func (t *Txn) PublishedRooms(limit int) ([]string, error) {
	var out []string
	err := t.scan(prefixPublished, nil, false, func(k, _ []byte) (bool, error) {
		out = append(out, strings.TrimPrefix(string(k), string(prefixPublished)))
		return len(out) < limit, nil
	})
	return out, err
}
