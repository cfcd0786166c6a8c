package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// Media references: which shown events of which rooms name an mxc URI.
// A reference is what lets a room's members read (and fetch from each
// other) the media it names, so it is written in the referencing event's
// own transaction (OnTimeline) and removed in its redaction's.
//
//	mr/<server>\0<media id>\0<room>\0<event> -> ""
//	mrc/<event>                              -> room, then the mxcs it named
//	mw/<server>\0<media id>                  -> "" (media work wanted)
//
// mw/ marks an mxc whose references changed (a reference added by a live
// event, or any removed): the media worker fetches it
// ahead of need when it is referenced and small, or drops the cached
// copy when nothing references it any more, then deletes the mark. It is
// written with the change, so a crash loses no work.
//
// Bound: an event names at most MaxMediaRefsPerEvent mxcs (the fields the
// timeline hook reads), so the references are a few small keys per shown
// event, and there is at most one mark per referenced mxc.

// MaxMediaRefsPerEvent bounds the mxcs recorded for one event.
const MaxMediaRefsPerEvent = 8

// MediaID names one piece of media: the server of its mxc URI and its
// media ID (mxc://<Server>/<ID>).
type MediaID struct{ Server, ID string }

func (m MediaID) String() string { return "mxc://" + m.Server + "/" + m.ID }

// ParseMXC reads an mxc URI ("mxc://server/id"); ok is false when it is
// not one (empty parts, or a part holding a slash, NUL or control byte).
func ParseMXC(uri string) (MediaID, bool) {
	rest, ok := strings.CutPrefix(uri, "mxc://")
	if !ok {
		return MediaID{}, false
	}
	server, id, ok := strings.Cut(rest, "/")
	m := MediaID{Server: server, ID: id}
	return m, ok && m.valid()
}

// valid reports whether both parts are non-empty, at most 255 bytes, and
// free of slashes and control bytes (so they cannot break a key).
func (m MediaID) valid() bool {
	for _, s := range []string{m.Server, m.ID} {
		if s == "" || len(s) > 255 {
			return false
		}
		for i := 0; i < len(s); i++ {
			if c := s[i]; c < 0x20 || c == 0x7f || c == '/' {
				return false
			}
		}
	}
	return true
}

func prefixMediaRefs(m MediaID) []byte {
	return []byte("mr/" + m.Server + "\x00" + m.ID + "\x00")
}

func keyMediaRef(m MediaID, room, event string) []byte {
	return append(prefixMediaRefs(m), room+"\x00"+event...)
}

func keyMediaRefsOf(event string) []byte { return []byte("mrc/" + event) }

func keyMediaWant(m MediaID) []byte { return []byte("mw/" + m.Server + "\x00" + m.ID) }

var prefixMediaWants = []byte("mw/")

// PutMediaRefs records that the event of the room names the mxcs (at
// most MaxMediaRefsPerEvent, duplicates once), and marks each for the
// media worker if mark. Writing the same references again changes
// nothing.
func (t *Txn) PutMediaRefs(room, event string, mxcs []MediaID, mark bool) error {
	if room == "" || event == "" || strings.ContainsRune(room, 0) || strings.ContainsRune(event, 0) {
		return fmt.Errorf("store: media references of event %q in room %q", event, room)
	}
	var kept []MediaID
	for _, m := range mxcs {
		if !m.valid() {
			return fmt.Errorf("store: media reference %q", m)
		}
		if !containsMedia(kept, m) {
			kept = append(kept, m)
		}
	}
	if len(kept) == 0 {
		return nil
	}
	if len(kept) > MaxMediaRefsPerEvent {
		kept = kept[:MaxMediaRefsPerEvent]
	}
	// An event seen again (its plain view came late) may name other
	// media than before: drop what it named then.
	if _, err := t.DropMediaRefs(event); err != nil {
		return err
	}
	for _, m := range kept {
		if err := t.txn.Set(keyMediaRef(m, room, event), nil); err != nil {
			return err
		}
		if !mark {
			continue
		}
		if err := t.WantMedia(m); err != nil {
			return err
		}
	}
	return t.txn.Set(keyMediaRefsOf(event), appendMediaRefs(nil, room, kept))
}

// DropMediaRefs removes the references the event made and returns the
// mxcs it named (nil if none), each marked for the media worker.
func (t *Txn) DropMediaRefs(event string) ([]MediaID, error) {
	b, err := get(t.txn, keyMediaRefsOf(event))
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	room, mxcs, err := decodeMediaRefs(b)
	if err != nil {
		return nil, err
	}
	for _, m := range mxcs {
		if err := t.txn.Delete(keyMediaRef(m, room, event)); err != nil {
			return nil, err
		}
		if err := t.WantMedia(m); err != nil {
			return nil, err
		}
	}
	return mxcs, t.txn.Delete(keyMediaRefsOf(event))
}

// MediaRefs calls fn with each reference of the mxc (room and event), in
// key order, until fn returns false.
func (t *Txn) MediaRefs(m MediaID, fn func(room, event string) (bool, error)) error {
	if !m.valid() {
		return nil
	}
	prefix := prefixMediaRefs(m)
	return t.scan(prefix, nil, false, func(k, _ []byte) (bool, error) {
		room, event, ok := strings.Cut(string(k[len(prefix):]), "\x00")
		if !ok {
			return false, fmt.Errorf("store: bad media reference key %q", k)
		}
		return fn(room, event)
	})
}

// MediaRefsIn calls fn with each event of the room that references the
// mxc, until fn returns false.
func (t *Txn) MediaRefsIn(m MediaID, room string, fn func(event string) (bool, error)) error {
	if !m.valid() || strings.ContainsRune(room, 0) {
		return nil
	}
	prefix := append(prefixMediaRefs(m), room+"\x00"...)
	return t.scan(prefix, nil, false, func(k, _ []byte) (bool, error) {
		return fn(string(k[len(prefix):]))
	})
}

// MediaReferenced reports whether any event references the mxc.
func (t *Txn) MediaReferenced(m MediaID) (bool, error) {
	found := false
	err := t.MediaRefs(m, func(string, string) (bool, error) {
		found = true
		return false, nil
	})
	return found, err
}

// WantMedia marks the mxc for the media worker.
func (t *Txn) WantMedia(m MediaID) error {
	if !m.valid() {
		return fmt.Errorf("store: media %q", m)
	}
	return t.txn.Set(keyMediaWant(m), nil)
}

// MediaWanted lists up to max mxcs marked for the media worker, in key
// order.
func (t *Txn) MediaWanted(max int) ([]MediaID, error) {
	var out []MediaID
	err := t.scan(prefixMediaWants, nil, false, func(k, _ []byte) (bool, error) {
		server, id, ok := strings.Cut(string(k[len(prefixMediaWants):]), "\x00")
		if !ok {
			return false, fmt.Errorf("store: bad media mark %q", k)
		}
		out = append(out, MediaID{Server: server, ID: id})
		return len(out) < max, nil
	})
	return out, err
}

// DoneMedia removes the mxc's mark.
func (t *Txn) DoneMedia(m MediaID) error {
	return t.txn.Delete(keyMediaWant(m))
}

func containsMedia(ms []MediaID, m MediaID) bool {
	for _, x := range ms {
		if x == m {
			return true
		}
	}
	return false
}

// appendMediaRefs encodes an event's references: the room, then each
// mxc's server and ID, every string length-prefixed.
func appendMediaRefs(b []byte, room string, mxcs []MediaID) []byte {
	put := func(s string) {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	put(room)
	for _, m := range mxcs {
		put(m.Server)
		put(m.ID)
	}
	return b
}

func decodeMediaRefs(b []byte) (string, []MediaID, error) {
	orig := b
	next := func() (string, bool) {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) {
			return "", false
		}
		s := string(b[k : k+int(n)])
		b = b[k+int(n):]
		return s, true
	}
	room, ok := next()
	if !ok {
		return "", nil, fmt.Errorf("store: bad media references %q", orig)
	}
	var out []MediaID
	for len(b) > 0 {
		server, ok1 := next()
		id, ok2 := next()
		if !ok1 || !ok2 {
			return "", nil, fmt.Errorf("store: bad media references %q", orig)
		}
		out = append(out, MediaID{Server: server, ID: id})
	}
	return room, out, nil
}
