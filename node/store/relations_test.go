package store

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
)

// Relations are kept per parent by timeline order, read both ways from
// any point, undone by their link, and survive a reopening of the store
// along with the aggregates and the filter in front of them.
func TestRelationsAreKeptPerParentInTimelineOrder(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { s.Close() }()
	const room, other, parent = "!r:x", "!o:x", "$parent"
	update := func(f func(t *Txn) error) {
		t.Helper()
		if err := s.Update(f); err != nil {
			t.Fatal(err)
		}
	}
	list := func(s *Store, room string, from uint64, forward bool, max int) []string {
		t.Helper()
		var out []string
		if err := s.View(func(t *Txn) error {
			_, err := t.Relations(room, parent, from, forward, max, func(r *Relation) bool {
				out = append(out, fmt.Sprintf("%s@%d", r.EventID, r.Order-LiveBase))
				return true
			})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	update(func(t *Txn) error {
		for i, rel := range []string{"m.annotation", "m.replace", "m.thread", "m.annotation"} {
			r := &Relation{Order: LiveBase + uint64(i+1)*10, RelType: rel, EventID: fmt.Sprintf("$c%d", i+1), Type: "m.room.message", Sender: "@a:x", TS: int64(i)}
			if err := t.PutRelation(room, parent, r); err != nil {
				return err
			}
		}
		// Another room's child of the same ID is apart.
		return t.PutRelation(other, parent, &Relation{Order: LiveBase + 5, RelType: "m.thread", EventID: "$elsewhere"})
	})

	if got, want := list(s, room, 0, true, 100), []string{"$c1@10", "$c2@20", "$c3@30", "$c4@40"}; !reflect.DeepEqual(got, want) {
		t.Errorf("forward from the start: %v, want %v", got, want)
	}
	if got, want := list(s, room, ^uint64(0), false, 100), []string{"$c4@40", "$c3@30", "$c2@20", "$c1@10"}; !reflect.DeepEqual(got, want) {
		t.Errorf("backward from the end: %v, want %v", got, want)
	}
	if got, want := list(s, room, LiveBase+30, false, 2), []string{"$c3@30", "$c2@20"}; !reflect.DeepEqual(got, want) {
		t.Errorf("backward from 30, two at most: %v, want %v", got, want)
	}
	if got := list(s, room, LiveBase+5, false, 100); len(got) != 0 {
		t.Errorf("backward from below the first: %v, want none", got)
	}
	if got, want := list(s, other, 0, true, 100), []string{"$elsewhere@5"}; !reflect.DeepEqual(got, want) {
		t.Errorf("the other room: %v, want %v", got, want)
	}

	update(func(t *Txn) error {
		l, err := t.DeleteRelation("$c2")
		if err != nil {
			return err
		}
		if want := (&Link{Room: room, Parent: parent, RelType: "m.replace", Order: LiveBase + 20}); !reflect.DeepEqual(l, want) {
			return fmt.Errorf("deleted link %+v, want %+v", l, want)
		}
		if l, err := t.DeleteRelation("$never"); l != nil || err != nil {
			return fmt.Errorf("deleting a child never kept: %v, %v", l, err)
		}
		return t.PutAggregate(room, parent, &Aggregate{Parent: ParentFacts{Known: true, Sender: "@a:x"}, Threads: 1, ThreadLatest: "$c3", ThreadOrder: LiveBase + 30})
	})
	if got, want := list(s, room, 0, true, 100), []string{"$c1@10", "$c3@30", "$c4@40"}; !reflect.DeepEqual(got, want) {
		t.Errorf("after deleting $c2: %v, want %v", got, want)
	}
	if err := s.View(func(tx *Txn) error {
		_, err := tx.RelationOf("$c2")
		return err
	}); !errors.Is(err, ErrNotFound) {
		t.Errorf("link of a deleted child: %v, want not found", err)
	}

	// Reopened: the relations, the aggregate and its filter are back.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := list(s, room, 0, true, 100), []string{"$c1@10", "$c3@30", "$c4@40"}; !reflect.DeepEqual(got, want) {
		t.Errorf("reopened: %v, want %v", got, want)
	}
	if err := s.View(func(t *Txn) error {
		a, err := t.Aggregate(room, parent)
		if err != nil {
			return err
		}
		if a.Threads != 1 || a.ThreadLatest != "$c3" || !a.Parent.Known {
			return fmt.Errorf("aggregate %+v", a)
		}
		if _, err := t.Aggregate(room, "$nothing"); !errors.Is(err, ErrNotFound) {
			return fmt.Errorf("aggregate of an event with none: %v", err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// An event nothing relates to costs no read to find without an
// aggregate: the filter answers.
func TestAggregateOfAnEventWithNoneReadsNothing(t *testing.T) {
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Update(func(t *Txn) error {
		return t.PutAggregate("!r:x", "$p", &Aggregate{References: 1})
	}); err != nil {
		t.Fatal(err)
	}
	before := s.readTxns.Load()
	for i := range 100 {
		s.View(func(t *Txn) error {
			_, err := t.Aggregate("!r:x", fmt.Sprintf("$other%d", i))
			return err
		})
	}
	if opened := s.readTxns.Load() - before; opened > 5 {
		t.Errorf("%d Badger reads for 100 events without an aggregate, want almost none", opened)
	}
}

// Threads are listed by their latest activity, newest first, and move
// when it does; participants are kept per root.
func TestThreadsAreListedByLatestActivity(t *testing.T) {
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const room = "!r:x"
	if err := s.Update(func(t *Txn) error {
		for _, p := range []struct {
			order uint64
			root  string
		}{{5, "$a"}, {9, "$b"}, {7, "$c"}} {
			if err := t.PutThread(room, p.order, p.root); err != nil {
				return err
			}
		}
		// $a has a newer reply.
		if err := t.DeleteThread(room, 5); err != nil {
			return err
		}
		if err := t.PutThread(room, 12, "$a"); err != nil {
			return err
		}
		if err := t.PutThread("!other:x", 20, "$x"); err != nil {
			return err
		}
		if err := t.PutParticipant(room, "$a", "@bob:x"); err != nil {
			return err
		}
		return t.PutParticipant(room, "$a", "@carol:x")
	}); err != nil {
		t.Fatal(err)
	}
	threads := func(upTo uint64) []string {
		var out []string
		s.View(func(t *Txn) error {
			return t.Threads(room, upTo, func(o uint64, root string) bool {
				out = append(out, fmt.Sprintf("%s@%d", root, o))
				return true
			})
		})
		return out
	}
	if got, want := threads(^uint64(0)), []string{"$a@12", "$b@9", "$c@7"}; !reflect.DeepEqual(got, want) {
		t.Errorf("threads: %v, want %v", got, want)
	}
	if got, want := threads(8), []string{"$c@7"}; !reflect.DeepEqual(got, want) {
		t.Errorf("threads up to 8: %v, want %v", got, want)
	}
	if got := threads(3); len(got) != 0 {
		t.Errorf("threads up to 3: %v, want none", got)
	}
	check := func(user string, want bool) {
		t.Helper()
		s.View(func(tx *Txn) error {
			got, err := tx.Participated(room, "$a", user)
			if err != nil || got != want {
				t.Errorf("%s participated: %v, %v; want %v", user, got, err, want)
			}
			return nil
		})
	}
	check("@bob:x", true)
	check("@dave:x", false)
	if err := s.Update(func(t *Txn) error { return t.DeleteParticipants(room, "$a") }); err != nil {
		t.Fatal(err)
	}
	check("@bob:x", false)
}

// A relation with a part that cannot be a key is refused.
func TestABadRelationIsRefused(t *testing.T) {
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, r := range []Relation{
		{Order: 0, RelType: "m.thread", EventID: "$c"},
		{Order: 1, RelType: "", EventID: "$c"},
		{Order: 1, RelType: "m.thread", EventID: "$c\x00x"},
	} {
		if err := s.Update(func(t *Txn) error { return t.PutRelation("!r:x", "$p", &r) }); err == nil {
			t.Errorf("relation %+v kept", r)
		}
	}
}
