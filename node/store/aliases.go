package store

import (
	"encoding/json"
	"errors"
	"strings"
)

// Room aliases of this node's server name (#name:server), each pointing
// to a room: the alias's record holds the room and the user who made it;
// two key-only indexes list a room's aliases and count a user's. The
// caller bounds how many a user may hold (PutAlias refuses more).
func keyAlias(alias string) []byte           { return []byte("ali/" + alias) }
func keyRoomAlias(room, alias string) []byte { return []byte("alr/" + room + "\x00" + alias) }
func prefixRoomAliases(room string) []byte   { return []byte("alr/" + room + "\x00") }
func keyUserAlias(user, alias string) []byte { return []byte("alu/" + user + "\x00" + alias) }
func prefixUserAliases(user string) []byte   { return []byte("alu/" + user + "\x00") }

// AliasRecord is where an alias points, and who made it.
type AliasRecord struct {
	Room    string `json:"room"`
	Creator string `json:"creator"`
}

// ErrAliasTaken: PutAlias of an alias that exists.
var ErrAliasTaken = errors.New("store: alias taken")

// ErrTooManyAliases: PutAlias for a user who holds the most allowed.
var ErrTooManyAliases = errors.New("store: too many aliases")

// Alias returns the alias's record, or ErrNotFound.
func (t *Txn) Alias(alias string) (*AliasRecord, error) {
	b, err := get(t.txn, keyAlias(alias))
	if err != nil {
		return nil, err
	}
	var rec AliasRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, err
	}
	return &rec, nil
}

// PutAlias records a new alias for room, made by creator, who may hold at
// most maxPerUser: ErrAliasTaken if the alias exists, ErrTooManyAliases if
// creator holds maxPerUser already.
func (t *Txn) PutAlias(alias, room, creator string, maxPerUser int) error {
	if _, err := get(t.txn, keyAlias(alias)); err == nil {
		return ErrAliasTaken
	} else if !errors.Is(err, ErrNotFound) {
		return err
	}
	held, err := t.UserAliases(creator, maxPerUser)
	if err != nil {
		return err
	}
	if held >= maxPerUser {
		return ErrTooManyAliases
	}
	b, err := json.Marshal(AliasRecord{Room: room, Creator: creator})
	if err != nil {
		return err
	}
	if err := t.txn.Set(keyAlias(alias), b); err != nil {
		return err
	}
	if err := t.txn.Set(keyRoomAlias(room, alias), nil); err != nil {
		return err
	}
	return t.txn.Set(keyUserAlias(creator, alias), nil)
}

// DeleteAlias removes an alias and its index entries; ErrNotFound if it
// does not exist.
func (t *Txn) DeleteAlias(alias string) error {
	rec, err := t.Alias(alias)
	if err != nil {
		return err
	}
	for _, k := range [][]byte{keyAlias(alias), keyRoomAlias(rec.Room, alias), keyUserAlias(rec.Creator, alias)} {
		if err := t.txn.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// RoomAliases lists the aliases that point to room, in order.
func (t *Txn) RoomAliases(room string) ([]string, error) {
	prefix := prefixRoomAliases(room)
	var out []string
	err := t.scan(prefix, nil, false, func(k, _ []byte) (bool, error) {
		out = append(out, strings.TrimPrefix(string(k), string(prefix)))
		return true, nil
	})
	return out, err
}

// UserAliases counts the aliases user holds, counting no further than
// limit.
func (t *Txn) UserAliases(user string, limit int) (int, error) {
	n := 0
	err := t.scan(prefixUserAliases(user), nil, false, func(_, _ []byte) (bool, error) {
		n++
		return n < limit, nil
	})
	return n, err
}
