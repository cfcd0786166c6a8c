package store

import (
	"reflect"
	"testing"
)

// Notices are kept per user and room by timeline order, read back
// newest first within (after, upTo], replaced, deleted, and survive a
// reopening of the store.
func TestNoticesAreKeptPerUserAndRoomInTimelineOrder(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { s.Close() }()
	const alice, bob, room, other = "@alice:x", "@bob:x", "!r:x", "!o:x"
	update := func(f func(t *Txn) error) {
		t.Helper()
		if err := s.Update(f); err != nil {
			t.Fatal(err)
		}
	}
	read := func(user, room string, after, upTo uint64, stopAt int) []Notice {
		t.Helper()
		var out []Notice
		if err := s.View(func(t *Txn) error {
			return t.Notices(user, room, after, upTo, func(n Notice) bool {
				out = append(out, n)
				return stopAt <= 0 || len(out) < stopAt
			})
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	orders := func(ns []Notice) []uint64 {
		var out []uint64
		for _, n := range ns {
			out = append(out, n.Order)
		}
		return out
	}
	all := []Notice{
		{Order: LiveBase + 1, Notify: true, TS: 1000, Actions: []byte(`["notify"]`)},
		{Order: LiveBase + 2, Own: true, Thread: "$root", TS: 2000},
		{Order: LiveBase + 3, Notify: true, Highlight: true, Thread: "$root", TS: -5, Actions: []byte(`["notify",{"set_tweak":"highlight"}]`)},
		{Order: LiveBase + 7, Notify: true, TS: 7000, Actions: []byte(`["notify"]`)},
	}
	update(func(t *Txn) error {
		for k := range all {
			if err := t.PutNotice(alice, room, &all[k]); err != nil {
				return err
			}
		}
		// Another user's and another room's notices are apart.
		if err := t.PutNotice(bob, room, &Notice{Order: LiveBase + 5, Notify: true}); err != nil {
			return err
		}
		return t.PutNotice(alice, other, &Notice{Order: LiveBase + 6, Notify: true})
	})

	t.Run("read back newest first, each as it was kept", func(t *testing.T) {
		got := read(alice, room, 0, ^uint64(0), 0)
		want := []Notice{all[3], all[2], all[1], all[0]}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("notices = %+v\nwant %+v", got, want)
		}
	})
	t.Run("only those in (after, upTo]", func(t *testing.T) {
		if got := orders(read(alice, room, LiveBase+1, LiveBase+3, 0)); !reflect.DeepEqual(got, []uint64{LiveBase + 3, LiveBase + 2}) {
			t.Fatalf("orders in (1, 3] = %v", got)
		}
		if got := read(alice, room, LiveBase+7, ^uint64(0), 0); len(got) != 0 {
			t.Fatalf("after the newest: %+v", got)
		}
	})
	t.Run("the reader stops when it says so", func(t *testing.T) {
		if got := orders(read(alice, room, 0, ^uint64(0), 2)); !reflect.DeepEqual(got, []uint64{LiveBase + 7, LiveBase + 3}) {
			t.Fatalf("stopping at 2: %v", got)
		}
	})
	t.Run("replaced and deleted", func(t *testing.T) {
		update(func(t *Txn) error {
			if err := t.PutNotice(alice, room, &Notice{Order: LiveBase + 1, TS: 1000}); err != nil {
				return err
			}
			return t.DeleteNotice(alice, room, LiveBase+7)
		})
		got := read(alice, room, 0, ^uint64(0), 0)
		if !reflect.DeepEqual(orders(got), []uint64{LiveBase + 3, LiveBase + 2, LiveBase + 1}) || got[2].Notify || got[2].Actions != nil {
			t.Fatalf("after replacing 1 and deleting 7: %+v", got)
		}
		if got := orders(read(bob, room, 0, ^uint64(0), 0)); !reflect.DeepEqual(got, []uint64{LiveBase + 5}) {
			t.Fatalf("bob's notices = %v", got)
		}
	})
	t.Run("a notice without a timeline order is refused", func(t *testing.T) {
		if err := s.Update(func(t *Txn) error { return t.PutNotice(alice, room, &Notice{Notify: true}) }); err == nil {
			t.Fatal("a notice at order 0 was kept")
		}
	})
	t.Run("kept across a reopening", func(t *testing.T) {
		s.Close()
		if s, err = Open(dir, Options{}); err != nil {
			t.Fatal(err)
		}
		if got := orders(read(alice, room, 0, ^uint64(0), 0)); !reflect.DeepEqual(got, []uint64{LiveBase + 3, LiveBase + 2, LiveBase + 1}) {
			t.Fatalf("after reopening: %v", got)
		}
	})
}

// A damaged notice value is an error, not a panic or a wrong verdict.
func TestDamagedNoticesAreErrors(t *testing.T) {
	for _, v := range [][]byte{nil, {noticeNotify}, {noticeNotify, 2, 9, 'a'}} {
		if _, err := decodeNotice(1, v); err == nil {
			t.Errorf("decodeNotice(%q) = nil error", v)
		}
	}
	for _, n := range []Notice{
		{Order: 9, Notify: true, Highlight: true, Thread: "$t", TS: 42, Actions: []byte(`["notify"]`)},
		{Order: 10, Own: true, TS: -1},
		{Order: 11, Left: true},
	} {
		got, err := decodeNotice(n.Order, appendNotice(nil, &n))
		if err != nil || !reflect.DeepEqual(got, n) {
			t.Fatalf("round trip = %+v, %v; want %+v", got, err, n)
		}
	}
}
