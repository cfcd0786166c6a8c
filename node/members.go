package node

import (
	"iter"

	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/rooms"
)

// currentState is the room's current state map. Maps in r.state are
// replaced, never changed, so the map may be read after the lock.
func (r *room) currentState() store.StateMap {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.state
}

// memberEvents yields the server of each member in a state, with the ID
// of the user's membership event. Members with malformed IDs are skipped.
func memberEvents(state store.StateMap) iter.Seq2[string, string] {
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

// membershipOf reads the membership of a member event; ok is false when
// the event cannot be read.
func (n *Node) membershipOf(eventID string) (membership string, ok bool) {
	i, err := n.eventInfo(eventID)
	if err != nil {
		return "", false
	}
	return i.ev.Membership(), true
}

// speaks reports whether a membership gives its server a say in the room:
// joined, invited or knocking.
func speaks(membership string) bool {
	return membership == "join" || membership == "invite" || membership == "knock"
}
