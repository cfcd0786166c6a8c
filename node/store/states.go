package store

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/parley-p2p/parley/rooms"
)

// Room states are stored as a tree of snapshots. A snapshot is either a
// checkpoint, which lists the whole state, or a delta: its parent's name
// plus the entries that differ from the parent. A state event adds a
// delta of one entry, so a room's states cost disk in proportion to its
// state events, not to their number times the state's size. Every
// CheckpointEvery deltas in a chain a checkpoint is written instead, so
// reading any state takes at most that many records plus the state itself.
//
// Snapshots are named by hashes: a checkpoint by the hash of its contents
// (SnapshotID), a delta by the hash of its parent's name and its change
// (DeltaID). A name therefore fixes a state's contents, though two paths
// to the same contents may give it two names.

// CheckpointEvery bounds a chain of deltas: at this length the next
// snapshot in the chain is written whole.
const CheckpointEvery = 64

// A record stores its chain length in one byte.
const _ uint8 = CheckpointEvery

func keySnapshot(id string) []byte { return []byte("ss/" + id) }

// StateMap maps a state key to the event ID that holds it.
type StateMap = map[rooms.StateKey]string

// StateDelta is how one state differs from another: the keys it sets (to
// an event ID) and the keys it removes (to "").
type StateDelta = map[rooms.StateKey]string

type snapEntry struct {
	Type     string `json:"t"`
	StateKey string `json:"k"`
	EventID  string `json:"e,omitempty"` // "" in a delta: the key is removed
}

// snapRecord is a stored snapshot. A checkpoint has no parent and lists
// every entry; a delta lists what changed since its parent and counts the
// deltas since the last checkpoint. It is stored as one byte of that
// count, so writing a child need not decode a whole checkpoint, then JSON.
type snapRecord struct {
	Parent  string      `json:"p,omitempty"`
	Chain   int         `json:"-"`
	Entries []snapEntry `json:"s"`
}

func (t *Txn) getSnapRecord(id string) (*snapRecord, error) {
	b, err := get(t.txn, keySnapshot(id))
	if err != nil {
		return nil, fmt.Errorf("store: snapshot %s: %w", id, err)
	}
	var rec snapRecord
	if len(b) < 1 {
		return nil, fmt.Errorf("store: snapshot %s: empty record", id)
	}
	if err := json.Unmarshal(b[1:], &rec); err != nil {
		return nil, fmt.Errorf("store: snapshot %s: %w", id, err)
	}
	rec.Chain = int(b[0])
	return &rec, nil
}

// snapChain reads only a stored snapshot's chain length.
func (t *Txn) snapChain(id string) (int, error) {
	item, err := t.txn.Get(keySnapshot(id))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, ErrNotFound
	}
	if err != nil {
		return 0, err
	}
	chain := -1
	err = item.Value(func(v []byte) error {
		if len(v) > 0 {
			chain = int(v[0])
		}
		return nil
	})
	if err == nil && chain < 0 {
		err = fmt.Errorf("store: snapshot %s: empty record", id)
	}
	return chain, err
}

func sortedEntries(m map[rooms.StateKey]string) []snapEntry {
	entries := make([]snapEntry, 0, len(m))
	for k, id := range m {
		entries = append(entries, snapEntry{k.Type, k.StateKey, id})
	}
	slices.SortFunc(entries, func(a, b snapEntry) int {
		if c := strings.Compare(a.Type, b.Type); c != 0 {
			return c
		}
		return strings.Compare(a.StateKey, b.StateKey)
	})
	return entries
}

func hashName(parts ...[]byte) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write(p)
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // strings only: cannot fail
	}
	return b
}

// SnapshotID is the name of a checkpoint: a hash of the state's contents.
func SnapshotID(m StateMap) string {
	return hashName(mustJSON(sortedEntries(m)))
}

// DeltaID is the name of the state reached from parent by delta.
func DeltaID(parent string, delta StateDelta) string {
	return hashName([]byte("delta\x00"+parent+"\x00"), mustJSON(sortedEntries(delta)))
}

// Diff is the delta that turns state from into state to.
func Diff(from, to StateMap) StateDelta {
	d := StateDelta{}
	for k, id := range to {
		if from[k] != id {
			d[k] = id
		}
	}
	for k := range from {
		if _, ok := to[k]; !ok {
			d[k] = ""
		}
	}
	return d
}

// PutSnapshot stores a state as a checkpoint under SnapshotID and returns
// that name. Identical states share one checkpoint.
func (t *Txn) PutSnapshot(m StateMap) (string, error) {
	id := SnapshotID(m)
	return id, t.putSnapshot(id, &snapRecord{Entries: sortedEntries(m)})
}

// PutDelta stores the state m, named id, as delta from parent (id is
// DeltaID(parent, delta)). When the parent is not stored, or the chain of
// deltas would grow past CheckpointEvery, m is written whole instead.
func (t *Txn) PutDelta(id, parent string, delta StateDelta, m StateMap) error {
	if ok, err := t.hasSnapshot(id); err != nil || ok {
		return err
	}
	chain, err := t.snapChain(parent)
	switch {
	case errors.Is(err, ErrNotFound):
		return t.putSnapshot(id, &snapRecord{Entries: sortedEntries(m)})
	case err != nil:
		return fmt.Errorf("store: snapshot %s: %w", parent, err)
	}
	if chain+1 >= CheckpointEvery {
		return t.putSnapshot(id, &snapRecord{Entries: sortedEntries(m)})
	}
	return t.putSnapshot(id, &snapRecord{Parent: parent, Chain: chain + 1, Entries: sortedEntries(delta)})
}

func (t *Txn) hasSnapshot(id string) (bool, error) {
	_, err := t.txn.Get(keySnapshot(id))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return false, nil
	}
	return err == nil, err
}

func (t *Txn) putSnapshot(id string, rec *snapRecord) error {
	if ok, err := t.hasSnapshot(id); err != nil || ok {
		return err
	}
	return t.txn.Set(keySnapshot(id), append([]byte{byte(rec.Chain)}, mustJSON(rec)...))
}

// Snapshot loads a state. cached, if not nil, offers states already in
// memory: the walk up a chain of deltas stops at the first one it has.
// The map returned is the caller's own.
func (t *Txn) Snapshot(id string, cached func(id string) (StateMap, bool)) (StateMap, error) {
	var deltas []*snapRecord
	var base StateMap
	for cur := id; ; {
		if cached != nil {
			if m, ok := cached(cur); ok {
				base = make(StateMap, len(m)+len(deltas))
				for k, v := range m {
					base[k] = v
				}
				break
			}
		}
		rec, err := t.getSnapRecord(cur)
		if err != nil {
			return nil, err
		}
		if rec.Parent == "" {
			base = make(StateMap, len(rec.Entries)+len(deltas))
			apply(base, rec.Entries)
			break
		}
		if len(deltas) > CheckpointEvery {
			return nil, fmt.Errorf("store: snapshot %s: chain of deltas longer than %d", id, CheckpointEvery)
		}
		deltas = append(deltas, rec)
		cur = rec.Parent
	}
	for i := len(deltas) - 1; i >= 0; i-- {
		apply(base, deltas[i].Entries)
	}
	return base, nil
}

func apply(m StateMap, entries []snapEntry) {
	for _, e := range entries {
		k := rooms.StateKey{Type: e.Type, StateKey: e.StateKey}
		if e.EventID == "" {
			delete(m, k)
		} else {
			m[k] = e.EventID
		}
	}
}

// StateUsage counts the snapshot records and the bytes (keys plus values)
// they take: what the room states cost on disk before Badger's overhead.
func (s *Store) StateUsage() (records int, bytes int64, err error) {
	err = s.View(func(t *Txn) error {
		return t.scan([]byte("ss/"), nil, false, func(k, v []byte) (bool, error) {
			records++
			bytes += int64(len(k) + len(v))
			return true, nil
		})
	})
	return records, bytes, err
}
