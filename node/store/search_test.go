package store

import (
	"errors"
	"fmt"
	"slices"
	"testing"
)

func TestSearchDocRoundTrip(t *testing.T) {
	d := &SearchDoc{EventID: "$a", Source: "$edit", SourceTS: -5, Len: 7, Postings: []Posting{{"cafe", FieldBody, 2}, {"会議", FieldName | FieldTopic, 1}}}
	got, err := decodeSearchDoc(appendSearchDoc(nil, d))
	if err != nil {
		t.Fatal(err)
	}
	if got.EventID != d.EventID || got.Source != d.Source || got.SourceTS != d.SourceTS || got.Len != d.Len || !slices.Equal(got.Postings, d.Postings) {
		t.Errorf("round trip gave %+v; want %+v", got, d)
	}
	b := appendSearchDoc(nil, d)
	for n := range len(b) {
		if _, err := decodeSearchDoc(b[:n]); err == nil {
			t.Errorf("a doc cut at %d of %d bytes decoded", n, len(b))
		}
	}
}

func TestSearchIndex(t *testing.T) {
	s := openTestStore(t, Options{})
	const room, other = "!r:x", "!o:x"
	put := func(room string, order uint64, id string, terms ...string) {
		t.Helper()
		d := &SearchDoc{EventID: id, Source: id, Len: uint8(len(terms))}
		for _, term := range terms {
			d.Postings = append(d.Postings, Posting{term, FieldBody, 1})
		}
		if err := s.Update(func(tx *Txn) error { return tx.PutSearchDoc(room, order, d) }); err != nil {
			t.Fatal(err)
		}
	}
	hits := func(room, term string, prefix bool) (out []uint64) {
		t.Helper()
		if err := s.View(func(tx *Txn) error {
			return tx.Postings(term, prefix, func(h PostingHit) bool {
				if h.Room == SearchRoomKey(room) {
					out = append(out, h.Order)
				}
				return true
			})
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	stats := func(room string) (st SearchStats) {
		t.Helper()
		s.View(func(tx *Txn) error {
			var err error
			st, err = tx.SearchStats(room)
			return err
		})
		return st
	}
	put(room, 1, "$1", "meeting", "today")
	put(room, 2, "$2", "meet", "me")
	put(room, 3, "$3", "lunch", "today")
	put(other, 4, "$4", "meeting")

	t.Run("a term's postings name their room and doc", func(t *testing.T) {
		if got := hits(room, "today", false); !slices.Equal(got, []uint64{1, 3}) {
			t.Errorf("today: %v; want [1 3]", got)
		}
		if got := hits(room, "meet", false); !slices.Equal(got, []uint64{2}) {
			t.Errorf("meet, exact: %v; want [2]", got)
		}
	})
	t.Run("a doc's posting of a term is read by its key", func(t *testing.T) {
		s.View(func(tx *Txn) error {
			if h, ok, err := tx.Posting(room, "lunch", 3); err != nil || !ok || h.Count != 1 || h.Len != 2 {
				t.Errorf("lunch in doc 3: %+v %v %v; want found once in 2 tokens", h, ok, err)
			}
			if _, ok, err := tx.Posting(room, "lunch", 1); err != nil || ok {
				t.Errorf("lunch in doc 1: %v %v; want not found", ok, err)
			}
			if _, ok, _ := tx.Posting(other, "lunch", 3); ok {
				t.Error("lunch found in the other room's doc 3")
			}
			return nil
		})
	})
	t.Run("a prefix finds the longer terms", func(t *testing.T) {
		if got := hits(room, "meet", true); !slices.Equal(got, []uint64{2, 1}) {
			t.Errorf("meet*: %v; want meet's [2] then meeting's [1]", got)
		}
	})
	t.Run("the room's counts follow its docs", func(t *testing.T) {
		if st := stats(room); st != (SearchStats{3, 6}) {
			t.Errorf("stats %+v; want 3 docs of 6 tokens", st)
		}
	})
	t.Run("writing a doc again replaces its postings", func(t *testing.T) {
		put(room, 1, "$1", "meeting", "tomorrow")
		put(room, 1, "$1", "meeting", "tomorrow")
		if got := hits(room, "today", false); !slices.Equal(got, []uint64{3}) {
			t.Errorf("today after the rewrite: %v; want [3]", got)
		}
		if st := stats(room); st != (SearchStats{3, 6}) {
			t.Errorf("stats %+v; want 3 docs of 6 tokens still", st)
		}
	})
	t.Run("a deleted doc is found no more", func(t *testing.T) {
		if err := s.Update(func(tx *Txn) error { return tx.DeleteSearchDoc(room, 3) }); err != nil {
			t.Fatal(err)
		}
		if got := hits(room, "lunch", false); len(got) != 0 {
			t.Errorf("lunch after delete: %v", got)
		}
		err := s.View(func(tx *Txn) error { _, err := tx.SearchDoc(room, 3); return err })
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("doc after delete: %v; want not found", err)
		}
		if st := stats(room); st != (SearchStats{2, 4}) {
			t.Errorf("stats %+v; want 2 docs of 4 tokens", st)
		}
		if err := s.Update(func(tx *Txn) error { return tx.DeleteSearchDoc(room, 3) }); err != nil {
			t.Errorf("deleting again: %v", err)
		}
	})
	t.Run("a room's index is deleted in bounded steps", func(t *testing.T) {
		steps := 0
		for done := false; !done; steps++ {
			if steps > 10 {
				t.Fatal("not done after 10 steps")
			}
			if err := s.Update(func(tx *Txn) error {
				var err error
				done, err = tx.DeleteSearchRoom(room, 2)
				return err
			}); err != nil {
				t.Fatal(err)
			}
		}
		if steps < 3 {
			t.Errorf("6 keys deleted 2 at a time in %d steps", steps)
		}
		if got := hits(room, "meet", true); len(got) != 0 {
			t.Errorf("postings left: %v", got)
		}
		if st := stats(room); st != (SearchStats{}) {
			t.Errorf("stats left: %+v", st)
		}
		if got := hits(other, "meeting", false); !slices.Equal(got, []uint64{4}) {
			t.Errorf("the other room's index: %v; want it kept", got)
		}
	})
	t.Run("reindex progress is kept per room", func(t *testing.T) {
		want := IndexProgress{Version: 1, Below: 42, Upto: 99}
		if err := s.Update(func(tx *Txn) error { return tx.PutIndexProgress(room, &want) }); err != nil {
			t.Fatal(err)
		}
		var got, none *IndexProgress
		s.View(func(tx *Txn) error {
			got, _ = tx.IndexProgress(room)
			none, _ = tx.IndexProgress(other)
			return nil
		})
		if got == nil || *got != want || none != nil {
			t.Errorf("progress %+v, other %+v; want %+v and none", got, none, want)
		}
	})
}

// BenchmarkPutSearchDoc: the index's share of an event's write. Each
// transaction holds 64 events (as group commit shares one), with
// SyncWrites; an event is written as the engine does (its record of
// ~900 bytes, its timeline entry, its transaction ID), then with its
// doc of 13 distinct terms: compare the two, per event.
func BenchmarkPutSearchDoc(b *testing.B) {
	words := []string{"shall", "we", "meet", "for", "lunch", "at", "the", "new", "place", "near", "station", "noon", "today"}
	pdu := make([]byte, 900)
	for _, index := range []bool{false, true} {
		name := "event"
		if index {
			name = "event+index"
		}
		b.Run(name, func(b *testing.B) {
			s, err := Open(b.TempDir(), Options{MinFree: -1})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			var order uint64
			for b.Loop() {
				if err := s.Update(func(t *Txn) error {
					for range 64 {
						order++
						id := fmt.Sprintf("$%043d", order)
						if err := t.PutEvent("!room:example.org", id, &EventRecord{Version: "12", PDU: pdu, Pos: order}); err != nil {
							return err
						}
						if err := t.PutTxnEvent("@alice:example.org", "DEVICE", fmt.Sprint(order), id); err != nil {
							return err
						}
						if !index {
							continue
						}
						d := &SearchDoc{EventID: id, Source: id, Len: 13}
						for i, w := range words {
							d.Postings = append(d.Postings, Posting{w + string(rune('a'+(int(order)+i)%26)), FieldBody, 1})
						}
						if err := t.PutNewSearchDoc("!room:example.org", LiveBase+order, d); err != nil {
							return err
						}
					}
					return nil
				}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*64), "us/event")
		})
	}
}
