package store

import (
	"encoding/binary"
	"fmt"
)

// Late plaintext: an encrypted event whose key arrives after the event
// gets its Plain then (SetPlain), and a redelivery entry at a new stream
// position, so that a /sync whose token is past the event hears of it
// again, decrypted. Redeliveries sit under their own prefix, apart from
// the timeline: /messages and backfill read the timeline and see each
// event once, where it belongs.

func prefixRedelivery(room string) []byte { return []byte("rdl/" + room + "\x00") }

func keyRedelivery(room string, pos uint64) []byte {
	return binary.BigEndian.AppendUint64(prefixRedelivery(room), pos)
}

// SetPlain sets the Plain of a stored event's record. An event that is
// not stored is ErrNotFound.
func (t *Txn) SetPlain(id string, plain []byte) error {
	r, err := t.Event(id)
	if err != nil {
		return err
	}
	r.Plain = plain
	return t.txn.Set(keyEvent(id), appendEventRecord(nil, r))
}

// PutRedelivery records that the room's event is shown again, changed,
// at stream position pos (from NextPos).
func (t *Txn) PutRedelivery(roomID string, pos uint64, eventID string) error {
	return t.txn.Set(keyRedelivery(roomID, pos), []byte(eventID))
}

// Redeliveries returns up to limit of the room's redeliveries at
// positions in (after, upTo], newest first, each as a TimelineEntry
// whose Order is LiveBase plus its position, so that it sorts among the
// live timeline's entries.
func (t *Txn) Redeliveries(roomID string, after, upTo uint64, limit int) ([]TimelineEntry, error) {
	prefix := prefixRedelivery(roomID)
	var out []TimelineEntry
	err := t.scan(prefix, keyRedelivery(roomID, upTo), true, func(k, v []byte) (bool, error) {
		if len(k) != len(prefix)+8 {
			return false, fmt.Errorf("store: bad redelivery key %q", k)
		}
		pos := binary.BigEndian.Uint64(k[len(prefix):])
		if pos > upTo {
			return true, nil
		}
		if pos <= after {
			return false, nil
		}
		out = append(out, TimelineEntry{Order: LiveBase + pos, EventID: string(v)})
		return limit <= 0 || len(out) < limit, nil
	})
	return out, err
}
