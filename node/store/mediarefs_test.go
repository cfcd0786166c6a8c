package store

import (
	"reflect"
	"testing"
)

func TestParseMXC(t *testing.T) {
	for _, tc := range []struct {
		uri string
		ok  bool
	}{
		{"mxc://abc/def_-1", true},
		{"mxc://abc/", false},
		{"mxc:///def", false},
		{"mxc://abc", false},
		{"mxc://abc/de/f", false},
		{"mxc://abc/d\x00f", false},
		{"https://abc/def", false},
		{"", false},
	} {
		m, ok := ParseMXC(tc.uri)
		if ok != tc.ok {
			t.Errorf("ParseMXC(%q) ok = %v, want %v", tc.uri, ok, tc.ok)
		}
		if ok && m.String() != tc.uri {
			t.Errorf("ParseMXC(%q) = %q", tc.uri, m)
		}
	}
}

func mediaRefsOf(t *testing.T, s *Store, m MediaID) [][2]string {
	t.Helper()
	var out [][2]string
	if err := s.View(func(tx *Txn) error {
		return tx.MediaRefs(m, func(room, event string) (bool, error) {
			out = append(out, [2]string{room, event})
			return true, nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func wanted(t *testing.T, s *Store) []MediaID {
	t.Helper()
	var out []MediaID
	if err := s.View(func(tx *Txn) error {
		var err error
		out, err = tx.MediaWanted(100)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestMediaRefsAreKeptPerEventAndDroppedWithIt: references are listed per
// mxc, marked for the worker, and an event's drop removes exactly its
// own, returning what they named.
func TestMediaRefsAreKeptPerEventAndDroppedWithIt(t *testing.T) {
	s := openTestStore(t, Options{})
	img := MediaID{"srv", "img"}
	thumb := MediaID{"srv", "thumb"}
	err := s.Update(func(tx *Txn) error {
		if err := tx.PutMediaRefs("!r1", "$a", []MediaID{img, thumb, img}, true); err != nil {
			return err
		}
		return tx.PutMediaRefs("!r2", "$b", []MediaID{img}, false)
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := mediaRefsOf(t, s, img), [][2]string{{"!r1", "$a"}, {"!r2", "$b"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("references of img: %v, want %v", got, want)
	}
	if got, want := wanted(t, s), []MediaID{img, thumb}; !reflect.DeepEqual(got, want) {
		t.Errorf("marked: %v, want %v", got, want)
	}
	s.View(func(tx *Txn) error {
		var in []string
		tx.MediaRefsIn(img, "!r2", func(ev string) (bool, error) { in = append(in, ev); return true, nil })
		if !reflect.DeepEqual(in, []string{"$b"}) {
			t.Errorf("references of img in !r2: %v", in)
		}
		return nil
	})

	s.Update(func(tx *Txn) error {
		for _, m := range wanted(t, s) {
			tx.DoneMedia(m)
		}
		return nil
	})
	var dropped []MediaID
	if err := s.Update(func(tx *Txn) error {
		var err error
		dropped, err = tx.DropMediaRefs("$a")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if want := []MediaID{img, thumb}; !reflect.DeepEqual(dropped, want) {
		t.Errorf("dropped %v, want %v", dropped, want)
	}
	if got, want := mediaRefsOf(t, s, img), [][2]string{{"!r2", "$b"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("references of img after the drop: %v, want %v", got, want)
	}
	s.View(func(tx *Txn) error {
		if ok, _ := tx.MediaReferenced(thumb); ok {
			t.Error("thumb is still referenced")
		}
		if ok, _ := tx.MediaReferenced(img); !ok {
			t.Error("img lost its other reference")
		}
		return nil
	})
	if got := wanted(t, s); len(got) != 2 {
		t.Errorf("marked after the drop: %v, want both again", got)
	}
	s.Update(func(tx *Txn) error {
		again, err := tx.DropMediaRefs("$a")
		if err != nil || again != nil {
			t.Errorf("a second drop: %v, %v; want nothing", again, err)
		}
		return nil
	})
}

// TestMediaRefsRewrittenForgetWhatTheEventNoLongerNames: an event seen
// again with other content keeps only its new references.
func TestMediaRefsRewrittenForgetWhatTheEventNoLongerNames(t *testing.T) {
	s := openTestStore(t, Options{})
	a, b := MediaID{"srv", "a"}, MediaID{"srv", "b"}
	s.Update(func(tx *Txn) error { return tx.PutMediaRefs("!r", "$e", []MediaID{a}, true) })
	s.Update(func(tx *Txn) error { return tx.PutMediaRefs("!r", "$e", []MediaID{b}, true) })
	if got := mediaRefsOf(t, s, a); len(got) != 0 {
		t.Errorf("a still referenced: %v", got)
	}
	if got := mediaRefsOf(t, s, b); len(got) != 1 {
		t.Errorf("b referenced %d times, want 1", len(got))
	}
}

// TestMediaRefsRefuseWhatWouldBreakAKey: bad IDs are refused and write
// nothing; more than the bound are cut.
func TestMediaRefsRefuseWhatWouldBreakAKey(t *testing.T) {
	s := openTestStore(t, Options{})
	bad := []func(tx *Txn) error{
		func(tx *Txn) error { return tx.PutMediaRefs("!r\x00x", "$e", []MediaID{{"s", "i"}}, true) },
		func(tx *Txn) error { return tx.PutMediaRefs("!r", "", []MediaID{{"s", "i"}}, true) },
		func(tx *Txn) error { return tx.PutMediaRefs("!r", "$e", []MediaID{{"s", "i\x00j"}}, true) },
		func(tx *Txn) error { return tx.PutMediaRefs("!r", "$e", []MediaID{{"s/x", "i"}}, true) },
	}
	for i, f := range bad {
		if err := s.Update(f); err == nil {
			t.Errorf("bad reference %d accepted", i)
		}
	}
	if got := wanted(t, s); len(got) != 0 {
		t.Errorf("refused references left marks: %v", got)
	}
	var many []MediaID
	for _, c := range "abcdefghijkl" {
		many = append(many, MediaID{"s", string(c)})
	}
	if err := s.Update(func(tx *Txn) error { return tx.PutMediaRefs("!r", "$e", many, true) }); err != nil {
		t.Fatal(err)
	}
	if got := wanted(t, s); len(got) != MaxMediaRefsPerEvent {
		t.Errorf("%d marks for %d mxcs, want the bound %d", len(got), len(many), MaxMediaRefsPerEvent)
	}
}
