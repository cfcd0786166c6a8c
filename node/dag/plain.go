package dag

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/rooms"
)

// Plain views that come late: the codec could not open an event when it
// came (its key had not arrived), and hands its plain view over once it
// can, through SetPlain.

// SetPlain stores the plain view of an event of the room that the codec
// opened after storing it. An event in the room's timeline is then
// shown again: a redelivery entry at a new stream position (see
// store.PutRedelivery), and the room's position moved to it, so that
// OnCommitted wakes the /sync of the room's members and an incremental
// /sync since a token past the event delivers it, decrypted. It returns
// once the change is durable. The codec calls it from its own goroutine,
// never from Open or Seal (they hold the room's lock, which SetPlain
// takes).
func (e *Engine) SetPlain(r *Room, eventID string, plain []byte) error {
	if len(plain) == 0 {
		return errors.New("dag: set plain: empty")
	}
	// Under the room's lock: an event the codec found waiting as it
	// opened it is the engine's once the admission that opened it (which
	// holds the lock) has returned.
	r.mu.Lock()
	i, err := e.Event(eventID)
	r.mu.Unlock()
	if err != nil {
		return fmt.Errorf("dag: set plain of %s: %w", eventID, err)
	}
	if i.Event.RoomID() != r.ID {
		return fmt.Errorf("dag: set plain of %s: not an event of room %s", eventID, r.ID)
	}
	// The event's own write first: its record must be stored to change,
	// and its stream position known.
	if err := <-i.Written(); err != nil {
		return fmt.Errorf("dag: set plain of %s: %w", eventID, err)
	}
	r.mu.Lock()
	if err := e.rollBack(r); err != nil {
		r.mu.Unlock()
		return err
	}
	// Again under the lock: the Info a SetPlain just before this one made.
	if i, err = e.Event(eventID); err != nil {
		r.mu.Unlock()
		return fmt.Errorf("dag: set plain of %s: %w", eventID, err)
	}
	if bytes.Equal(i.Rec.Plain, plain) {
		r.mu.Unlock()
		return nil
	}
	ni := &Info{Event: i.Event, Rec: i.Rec, durable: make(chan struct{})}
	ni.Rec.Plain = bytes.Clone(plain)
	ni.pos.Store(i.Pos())
	e.events.Put(eventID, ni)
	// In the timeline, live (i.Pos: the record in memory has no Pos) or
	// as history.
	shown := i.Usable() && i.Rec.SoftFailed == "" && (i.Pos() != 0 || i.Rec.Order != 0 || inState(r, i.Event))
	roomRec := r.record()
	var onTimeline func(*store.Txn, uint64) error
	order := i.Rec.Order
	if p := i.Pos(); p != 0 {
		order = store.LiveBase + p
	}
	if shown && order != 0 && e.cfg.OnTimeline != nil {
		how := LatePlain
		if order < store.LiveBase {
			how = LateHistoryPlain
		}
		onTimeline = e.cfg.OnTimeline(r, i.Event, ni.Rec.Plain, how)
	}
	done := e.queueWrite(r, i.Event, func(t *store.Txn) error {
		if err := t.SetPlain(eventID, ni.Rec.Plain); err != nil {
			return err
		}
		if !shown {
			return nil
		}
		if onTimeline != nil {
			if err := onTimeline(t, order); err != nil {
				return err
			}
		}
		pos := t.NextPos()
		r.notePos(pos)
		noteMax(&r.redelivered, pos)
		if err := t.PutRedelivery(r.ID, pos, eventID); err != nil {
			return err
		}
		r.stamp(roomRec)
		roomRec.Pos = pos
		return t.PutRoom(roomRec)
	}, func(err error) {
		ni.writeErr = err
		close(ni.durable)
		if err == nil && shown && e.cfg.OnCommitted != nil {
			e.cfg.OnCommitted(r)
		}
	})
	r.mu.Unlock()
	if err := <-done; err != nil {
		return fmt.Errorf("dag: set plain of %s: %w", eventID, err)
	}
	return nil
}

// Sealed reports whether events of a type are the codec's own (key
// shares, room secrets), which no client is shown.
func (e *Engine) Sealed(evType string) bool {
	return e.cfg.Codec != nil && e.cfg.Codec.Sealed(evType)
}

// Encrypting reports whether the engine has a codec: events may then
// be encrypted, and wait for their keys.
func (e *Engine) Encrypting() bool { return e.cfg.Codec != nil }

// ReadContent is the event's content as its room's members read it: its
// plain view's, when the node could decrypt it, else the content on the
// wire (an unencrypted event's, or the keys a sealed state event keeps).
func (i *Info) ReadContent() json.RawMessage {
	if len(i.Rec.Plain) > 0 {
		if p, err := DecodePlain(i.Rec.Plain); err == nil && p.Status == "" && len(p.Content) > 0 {
			return p.Content
		}
	}
	return i.Event.Content()
}

// DecodePlain reads a record's Plain. Its Content may share b's bytes.
func DecodePlain(b []byte) (Plain, error) {
	if p, ok := decodePlainFast(b); ok {
		return p, nil
	}
	var p Plain
	if err := json.Unmarshal(b, &p); err != nil {
		return Plain{}, fmt.Errorf("dag: decode plain: %w", err)
	}
	return p, nil
}

// decodePlainFast reads a Plain in the form json.Marshal writes it (its
// keys in order, compact, strings without escapes) without reflection or
// a second pass: a /sync decodes one per encrypted event it shows. It
// reports false for anything else, which encoding/json then reads.
func decodePlainFast(b []byte) (Plain, bool) {
	var p Plain
	at, ok := plainString(b, 0, `{"type":"`)
	if !ok {
		return p, false
	}
	p.Type = internType(b[len(`{"type":"`) : at-1])
	const content = `,"content":`
	if bytes.HasPrefix(b[at:], []byte(content)) {
		start := at + len(content)
		end := rooms.SkipCompact(b, start)
		if end < 0 || !json.Valid(b[start:end]) {
			return p, false
		}
		p.Content, at = b[start:end:end], end
	}
	const status = `,"status":"`
	if bytes.HasPrefix(b[at:], []byte(status)) {
		end, ok := plainString(b, at, status)
		if !ok {
			return p, false
		}
		p.Status, at = string(b[at+len(status):end-1]), end
	}
	return p, at == len(b)-1 && b[at] == '}'
}

// plainString checks that b holds prefix at at, followed by a string's
// bytes without escapes or control characters, in valid UTF-8, and its
// closing quote; it returns the index past the quote.
func plainString(b []byte, at int, prefix string) (int, bool) {
	if !bytes.HasPrefix(b[at:], []byte(prefix)) {
		return 0, false
	}
	start := at + len(prefix)
	n := bytes.IndexByte(b[start:], '"')
	if n < 0 {
		return 0, false
	}
	s := b[start : start+n]
	for _, c := range s {
		if c == '\\' || c < 0x20 {
			return 0, false
		}
	}
	if !utf8.Valid(s) {
		return 0, false
	}
	return start + n + 1, true
}

// internType spares an allocation for the types most events have.
func internType(t []byte) string {
	switch string(t) {
	case "m.room.message":
		return "m.room.message"
	case "m.room.member":
		return "m.room.member"
	case "m.reaction":
		return "m.reaction"
	}
	return string(t)
}

// inState reports whether an event is part of the room's current state
// (state a join brought is stored as outliers: a client shows it, so
// its late plain view is delivered again too).
func inState(r *Room, ev *rooms.Event) bool {
	if !ev.IsState() {
		return false
	}
	return r.Head().State[ev.Key()] == ev.ID()
}
