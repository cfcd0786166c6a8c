package dag

import (
	"iter"

	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/rooms"
)

// MemberEvents yields the server of each member in a state, with the ID
// of the user's membership event. Members with malformed IDs are skipped.
func MemberEvents(state store.StateMap) iter.Seq2[string, string] {
	return func(yield func(server, eventID string) bool) {
		for k, id := range state {
			if k.Type != "m.room.member" {
				continue
			}
			s, err := rooms.ServerOf(k.StateKey)
			if err != nil {
				continue
			}
			if !yield(s, id) {
				return
			}
		}
	}
}

// MembershipOf reads the membership of a member event; ok is false when
// the event cannot be read.
func (e *Engine) MembershipOf(eventID string) (membership string, ok bool) {
	i, err := e.Event(eventID)
	if err != nil {
		return "", false
	}
	return i.Event.Membership(), true
}

// Speaks reports whether a membership gives its server a say in the room:
// joined, invited or knocking.
func Speaks(membership string) bool {
	return membership == "join" || membership == "invite" || membership == "knock"
}
