package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/parley-p2p/parley/rooms"
)

// v1WithoutPlain is a record's binary form as nodes wrote it before
// records could hold a Plain, laid out by hand here so that the test
// does not lean on the encoder it checks.
func v1WithoutPlain(r *EventRecord) []byte {
	b := []byte{recordV1}
	b = binary.AppendUvarint(b, r.Pos)
	b = binary.AppendUvarint(b, r.Order)
	b = binary.AppendVarint(b, r.Received)
	var flags byte
	if r.Outlier {
		flags = 1
	}
	b = append(b, flags)
	for _, s := range []string{r.Version, r.Rejected, r.SoftFailed, r.StateAfter, r.StateBefore, r.TxnID, r.TxnDevice} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return append(b, r.PDU...)
}

// TestRecordsWithAPlainReadBack: a record with a Plain reads back with
// it, one without is written byte for byte as before, and the records
// older nodes wrote (binary and JSON) read as records without a Plain.
func TestRecordsWithAPlainReadBack(t *testing.T) {
	withPlain := fullRecord()
	withPlain.Plain = []byte(`{"type":"m.room.message","content":{"body":"hello"}}`)

	t.Run("a record with a Plain reads back with it", func(t *testing.T) {
		var got EventRecord
		if err := decodeEventRecord(appendEventRecord(nil, withPlain), &got); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(&got, withPlain) {
			t.Errorf("read back\n%+v\nwant\n%+v", got, withPlain)
		}
	})
	t.Run("a record without a Plain is written as older nodes wrote it", func(t *testing.T) {
		r := fullRecord()
		if got, want := appendEventRecord(nil, r), v1WithoutPlain(r); !bytes.Equal(got, want) {
			t.Errorf("wrote %x\nolder nodes wrote %x", got, want)
		}
	})
	for _, form := range []string{"binary", "json"} {
		t.Run("an older node's "+form+" record reads without a Plain", func(t *testing.T) {
			s := openTestStore(t, Options{})
			old := fullRecord()
			raw := v1WithoutPlain(old)
			if form == "json" {
				raw = oldJSON(old)
			}
			if err := s.Update(func(tx *Txn) error {
				addToFilter(tx, "$ev")
				return tx.txn.Set(keyEvent("$ev"), raw)
			}); err != nil {
				t.Fatal(err)
			}
			got := readEvent(t, s, "$ev")
			if got.Plain != nil || !reflect.DeepEqual(got, old) {
				t.Errorf("read back\n%+v\nwant\n%+v", got, old)
			}
		})
	}
	t.Run("a plain length past the end is a damaged record", func(t *testing.T) {
		b := appendEventRecord(nil, withPlain)
		b = b[:len(b)-len(withPlain.PDU)-len(withPlain.Plain)+3]
		var r EventRecord
		if err := decodeEventRecord(b, &r); !errors.Is(err, errBadRecord) {
			t.Fatalf("got %v, want a damaged-record error", err)
		}
	})
}

// TestSetPlainKeepsTheRestOfTheRecord: SetPlain changes the Plain of a
// stored event and nothing else, and an event not stored is not found.
func TestSetPlainKeepsTheRestOfTheRecord(t *testing.T) {
	s := openTestStore(t, Options{})
	want := fullRecord()
	if err := s.Update(func(tx *Txn) error { return tx.PutEvent("!room", "$ev", want) }); err != nil {
		t.Fatal(err)
	}
	want.Plain = []byte(`{"type":"m.room.message"}`)
	if err := s.Update(func(tx *Txn) error { return tx.SetPlain("$ev", want.Plain) }); err != nil {
		t.Fatal(err)
	}
	got := readEvent(t, s, "$ev")
	if !reflect.DeepEqual(got, want) {
		t.Errorf("read back\n%+v\nwant\n%+v", got, want)
	}
	err := s.Update(func(tx *Txn) error { return tx.SetPlain("$missing", want.Plain) })
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("SetPlain of an event not stored: %v, want ErrNotFound", err)
	}
}

// TestRedeliveriesAreReadByPosition: a room's redeliveries come newest
// first within (after, upTo], as orders among the live timeline's, and
// never another room's.
func TestRedeliveriesAreReadByPosition(t *testing.T) {
	s := openTestStore(t, Options{})
	if err := s.Update(func(tx *Txn) error {
		for _, p := range []uint64{3, 5, 9} {
			if err := tx.PutRedelivery("!a", p, "$a"+string(rune('0'+p))); err != nil {
				return err
			}
		}
		return tx.PutRedelivery("!ab", 6, "$other")
	}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name        string
		after, upTo uint64
		limit       int
		want        []uint64
	}{
		{"all of them", 0, 100, 0, []uint64{9, 5, 3}},
		{"after a position, exclusive", 3, 100, 0, []uint64{9, 5}},
		{"up to a position, inclusive", 0, 5, 0, []uint64{5, 3}},
		{"at most limit, newest first", 0, 100, 2, []uint64{9, 5}},
		{"none in range", 9, 100, 0, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var got []TimelineEntry
			if err := s.View(func(tx *Txn) error {
				var err error
				got, err = tx.Redeliveries("!a", c.after, c.upTo, c.limit)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			var pos []uint64
			for _, e := range got {
				if e.EventID != "$a"+string(rune('0'+e.Order-LiveBase)) {
					t.Errorf("entry %+v names another event", e)
				}
				pos = append(pos, e.Order-LiveBase)
			}
			if !reflect.DeepEqual(pos, c.want) {
				t.Errorf("positions %v, want %v", pos, c.want)
			}
		})
	}
}

// TestRoomRecordsKeepTheirRedeliveryPosition: the field is stored, and
// a room record written before it existed reads as having none.
func TestRoomRecordsKeepTheirRedeliveryPosition(t *testing.T) {
	var old RoomRecord
	if err := json.Unmarshal([]byte(`{"id":"!r","v":"12","ext":["$e"],"state":"s","depth":3,"pos":7}`), &old); err != nil {
		t.Fatal(err)
	}
	if old.Redelivered != 0 {
		t.Errorf("an old room record reads with Redelivered %d", old.Redelivered)
	}
	s := openTestStore(t, Options{})
	want := &RoomRecord{ID: "!r", Version: "12", Extremities: []string{"$e"}, State: "s", Depth: 3, Pos: 9, Redelivered: 9}
	if err := s.Update(func(tx *Txn) error { return tx.PutRoom(want) }); err != nil {
		t.Fatal(err)
	}
	var got *RoomRecord
	if err := s.View(func(tx *Txn) error {
		var err error
		got, err = tx.Room("!r")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("read back %+v, want %+v", got, want)
	}
}

// TestAnOlderNodesDataDirReads: a data dir an older node wrote (the
// bench's fixture, copied: it is never changed) reads whole, every
// event record of every room's timeline without a Plain and with a PDU
// that parses.
func TestAnOlderNodesDataDirReads(t *testing.T) {
	cache, err := os.UserCacheDir()
	if err != nil {
		t.Skip(err)
	}
	src := filepath.Join(cache, "parley-bench", "rooms-100-events-100", "db")
	if _, err := os.Stat(src); err != nil {
		t.Skipf("no data dir of an older node here: %v", err)
	}
	dir := t.TempDir()
	if err := os.CopyFS(filepath.Join(dir, "db"), os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	events := 0
	err = s.View(func(tx *Txn) error {
		rms, err := tx.Rooms()
		if err != nil {
			return err
		}
		for _, rm := range rms {
			if rm.Redelivered != 0 {
				t.Errorf("room %s reads with a redelivery", rm.ID)
			}
			tl, err := tx.Timeline(rm.ID, 0, 0, true, 0)
			if err != nil {
				return err
			}
			for _, e := range tl {
				rec, err := tx.Event(e.EventID)
				if err != nil {
					return err
				}
				if rec.Plain != nil {
					t.Errorf("%s reads with a plain view", e.EventID)
				}
				if _, err := rooms.ParseTrusted(rec.PDU, rec.Version, e.EventID); err != nil {
					return err
				}
				events++
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if events == 0 {
		t.Fatal("the data dir holds no events")
	}
	t.Logf("%d events read", events)
}
