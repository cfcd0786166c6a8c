package dag

import (
	"fmt"

	"github.com/parley-p2p/parley/node/store"
)

// Outcome is what admitting an event did with it.
type Outcome struct {
	Info *Info
	// Committed delivers the result of the event's write.
	Committed <-chan error
	// Rejected is set when the event was rejected or soft-failed: it is
	// stored, but not part of the room's current state or timeline. A
	// local event's rejection is returned as the error instead, and the
	// event is not stored.
	Rejected *Rejection
}

// Stage is the check an event failed.
type Stage string

// The checks of admission, in order.
const (
	// StageAuthEvents: the event's auth events are rejected, of another
	// room, not the ones its type needs, or do not allow it.
	StageAuthEvents Stage = "auth events"
	// StagePrevEvents: none of its prev events can be built on.
	StagePrevEvents Stage = "prev events"
	// StateBefore: the state before the event (from its prev events)
	// does not allow it.
	StageStateBefore Stage = "state before"
	// StageCurrentState: the room's current state does not allow it: it
	// is soft-failed.
	StageCurrentState Stage = "current state"
	// StageStored: the event was judged when it first came; the stage
	// that refused it then is not kept.
	StageStored Stage = "stored verdict"
)

// Rejection is why an event was rejected or soft-failed.
type Rejection struct {
	Stage  Stage
	Soft   bool
	Reason string
}

func (e *Rejection) Error() string {
	if e.Soft {
		return "soft-failed: " + e.Reason
	}
	return "rejected: " + e.Reason
}

// Missing lists the events that must be fetched before an event can be
// admitted.
type Missing struct {
	Auth, Prev []string
}

func (e *Missing) Error() string {
	return fmt.Sprintf("missing %d auth and %d prev events", len(e.Auth), len(e.Prev))
}

// Opts tune admission for local events and for joins.
type Opts struct {
	// Local: built on this node; a rejected local event is not stored.
	Local bool
	// StateBefore overrides the computation from prev events (the first
	// event of a room joined through send_join).
	StateBefore store.StateMap
	TxnID       string
	TxnDevice   string

	// plain is what the codec's Seal returned for a local event.
	plain []byte
}
