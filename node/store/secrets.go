package store

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Room secrets: 32 random bytes per room and epoch, made by the node that
// created the room and handed to members sealed (invites, joins, links).
// Everything a room shows on the wire (its gossip topics, their keys, its
// DHT rendezvous, its request key) is derived from them, never from the
// room ID. A node keeps every epoch it learnt: a request under an old
// epoch's key is still answered to members.

// RoomSecretSize is the size of a room secret.
const RoomSecretSize = 32

// MaxSecretEpochs bounds the epochs kept per room.
const MaxSecretEpochs = 64

func prefixRoomSecrets(room string) []byte { return []byte("rsec/" + room + "\x00") }
func keyRoomSecret(room string, epoch uint32) []byte {
	return binary.BigEndian.AppendUint32(prefixRoomSecrets(room), epoch)
}

// RoomSecret is one epoch of a room's secret.
type RoomSecret struct {
	RoomID string
	Epoch  uint32
	Secret [RoomSecretSize]byte
}

// ErrSecretConflict is returned when a different secret is already kept for
// the same room and epoch: the first one stays.
var ErrSecretConflict = errors.New("store: a different secret is kept for this room and epoch")

// PutRoomSecret keeps a room's secret for an epoch. Putting the same secret
// again does nothing; a different one for a kept epoch is refused.
func (t *Txn) PutRoomSecret(s RoomSecret) error {
	if s.RoomID == "" {
		return errors.New("store: room secret without a room")
	}
	old, err := t.RoomSecretAt(s.RoomID, s.Epoch)
	switch {
	case err == nil && old.Secret == s.Secret:
		return nil
	case err == nil:
		return ErrSecretConflict
	case !errors.Is(err, ErrNotFound):
		return err
	}
	n := 0
	if err := t.scan(prefixRoomSecrets(s.RoomID), nil, false, func(_, _ []byte) (bool, error) {
		n++
		return true, nil
	}); err != nil {
		return err
	}
	if n >= MaxSecretEpochs {
		return fmt.Errorf("store: room %s has %d secret epochs already", s.RoomID, n)
	}
	return t.txn.Set(keyRoomSecret(s.RoomID, s.Epoch), s.Secret[:])
}

// RoomSecretAt loads a room's secret for one epoch.
func (t *Txn) RoomSecretAt(room string, epoch uint32) (RoomSecret, error) {
	out := RoomSecret{RoomID: room, Epoch: epoch}
	v, err := get(t.txn, keyRoomSecret(room, epoch))
	if err != nil {
		return out, err
	}
	if len(v) != RoomSecretSize {
		return out, fmt.Errorf("store: room secret of %d bytes", len(v))
	}
	copy(out.Secret[:], v)
	return out, nil
}

// RoomSecrets lists a room's secrets, oldest epoch first; the last is
// the current one. None is ErrNotFound.
func (t *Txn) RoomSecrets(room string) ([]RoomSecret, error) {
	var out []RoomSecret
	prefix := prefixRoomSecrets(room)
	err := t.scan(prefix, nil, false, func(k, v []byte) (bool, error) {
		if len(k) != len(prefix)+4 || len(v) != RoomSecretSize {
			return true, nil
		}
		s := RoomSecret{RoomID: room, Epoch: binary.BigEndian.Uint32(k[len(prefix):])}
		copy(s.Secret[:], v)
		out = append(out, s)
		return true, nil
	})
	if err == nil && len(out) == 0 {
		err = ErrNotFound
	}
	return out, err
}

// AllRoomSecrets calls fn with every kept secret, room by room.
func (t *Txn) AllRoomSecrets(fn func(RoomSecret) error) error {
	prefix := []byte("rsec/")
	return t.scan(prefix, nil, false, func(k, v []byte) (bool, error) {
		rest := k[len(prefix):]
		if len(rest) < 5 || rest[len(rest)-5] != 0 || len(v) != RoomSecretSize {
			return true, nil
		}
		s := RoomSecret{RoomID: string(rest[:len(rest)-5]), Epoch: binary.BigEndian.Uint32(rest[len(rest)-4:])}
		copy(s.Secret[:], v)
		return true, fn(s)
	})
}

// ReplaceRoomSecret keeps a room's secret for an epoch, replacing the one
// kept for it, if any.
func (t *Txn) ReplaceRoomSecret(s RoomSecret) error {
	if err := t.txn.Delete(keyRoomSecret(s.RoomID, s.Epoch)); err != nil {
		return err
	}
	return t.PutRoomSecret(s)
}
