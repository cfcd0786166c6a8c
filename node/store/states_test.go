package store

import (
	"fmt"
	"maps"
	"testing"

	"github.com/parley-p2p/parley/rooms"
)

// TestStatesAreDeltasWithCheckpoints: a chain of states each one entry
// larger is stored as one-entry deltas, with a whole checkpoint every
// CheckpointEvery states; every state reads back as it was, after the
// database is closed and opened again, with and without a cache.
func TestStatesAreDeltasWithCheckpoints(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	const count = 3 * CheckpointEvery
	m := StateMap{{Type: "m.room.create"}: "$create"}
	var ids []string
	var states []StateMap
	err = s.Update(func(tx *Txn) error {
		id, err := tx.PutSnapshot(m)
		ids, states = append(ids, id), append(states, m)
		for i := range count {
			k := rooms.StateKey{Type: "m.room.member", StateKey: fmt.Sprintf("@u%d:x", i)}
			d := StateDelta{k: fmt.Sprintf("$join%d", i)}
			if i%10 == 9 { // now and then a key goes away
				d[rooms.StateKey{Type: "m.room.member", StateKey: fmt.Sprintf("@u%d:x", i-1)}] = ""
			}
			next := maps.Clone(m)
			for k, v := range d {
				if v == "" {
					delete(next, k)
				} else {
					next[k] = v
				}
			}
			nid := DeltaID(id, d)
			if err := tx.PutDelta(nid, id, d, next); err != nil {
				return err
			}
			id, m = nid, next
			ids, states = append(ids, id), append(states, m)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	records, bytes, err := s.StateUsage()
	if err != nil {
		t.Fatal(err)
	}
	if records != count+1 {
		t.Errorf("%d records for %d states", records, count+1)
	}
	// Whole states would take about count*count/2 entries; deltas and
	// three checkpoints take a few times count.
	if entries := bytes / 40; entries > 8*count {
		t.Errorf("%d bytes for %d states: about %d entries, not a delta each", bytes, count+1, entries)
	}
	s.Close()

	s, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cache := map[string]StateMap{ids[CheckpointEvery/2]: states[CheckpointEvery/2]}
	for _, cached := range []func(string) (StateMap, bool){nil, func(id string) (StateMap, bool) { m, ok := cache[id]; return m, ok }} {
		err = s.View(func(tx *Txn) error {
			for i, id := range ids {
				got, err := tx.Snapshot(id, cached)
				if err != nil {
					return err
				}
				if !maps.Equal(got, states[i]) {
					t.Errorf("state %d read back with %d entries, want %d", i, len(got), len(states[i]))
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(cache[ids[CheckpointEvery/2]]) != len(states[CheckpointEvery/2]) {
		t.Error("reading through the cache changed a cached state")
	}
}
