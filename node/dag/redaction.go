package dag

import (
	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/rooms"
)

// RedactedBy returns the redaction that applies to ev, or nil. A
// redaction applies when it was accepted (not rejected or soft-failed)
// and the spec's rule for applying it holds (rooms.CanApplyRedaction):
// it names ev, in ev's room, and its sender has the redact level in the
// state before the redaction or is on the same server as ev's sender.
func (e *Engine) RedactedBy(ev *rooms.Event) *Info {
	if ev.Type() == "m.room.redaction" {
		return nil
	}
	var red *store.Redaction
	e.store.View(func(t *store.Txn) error {
		var err error
		red, err = t.Redaction(ev.ID())
		return err
	})
	if red == nil {
		return nil
	}
	by, err := e.Event(red.RedactionID)
	if err != nil || !by.Usable() || by.Rec.SoftFailed != "" || by.Rec.StateAfter == "" {
		return nil
	}
	before, err := e.Snapshot(by.Rec.StateAfter) // a redaction is not state: after is before
	if err != nil {
		return nil
	}
	r := e.Room(ev.RoomID())
	if r == nil {
		return nil
	}
	pl, err := rooms.PowerLevelsFrom(e.StateFunc(WithCreate(r, before)))
	if err != nil || !rooms.CanApplyRedaction(by.Event, ev, pl) {
		return nil
	}
	return by
}
