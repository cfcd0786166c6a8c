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
	m, err := e.MemberEvent(nil, eventID)
	return m.Membership, err == nil
}

// Member is what a member event says of its member, as readers of who is
// in a room ask it: the membership, and the event's stream position (0
// if it has none: history, an outlier, or not yet written).
type Member struct {
	Membership string
	Pos        uint64
}

// memberCacheEntries bounds the member facts kept: about 2x this many,
// some 100 bytes each.
const memberCacheEntries = 8192

// MemberEvent reads a member event's Member, in t (nil: a read of its
// own). Both are fixed once the event has its stream position, and are
// then kept in a cache of their own: a node of a thousand rooms asks
// for its users' memberships in all of them at each search or sync, and
// parsing them again whenever the event cache let them go cost a
// millisecond a room. An event not in the event cache is skimmed from
// its record, not parsed into it: one read of every member of every
// room (a /sync's room summaries) would push out the events admission
// reads again and again, and a member event's content carries its
// node's KEM key (1.6 KB).
func (e *Engine) MemberEvent(t *store.Txn, eventID string) (Member, error) {
	if m, ok := e.members.Get(eventID); ok {
		return m, nil
	}
	var m Member
	if i, ok := e.events.Get(eventID); ok {
		m = Member{Membership: i.Event.Membership(), Pos: i.Pos()}
	} else {
		read := func(t *store.Txn) error {
			rec, err := t.Event(eventID)
			if err != nil {
				return err
			}
			m.Pos = rec.Pos
			if sk, ok := rooms.SkimStored(rec.PDU, rec.Version, eventID); ok {
				m.Membership = sk.Membership
				return nil
			}
			ev, err := parseStored(eventID, rec)
			if err != nil {
				return err
			}
			m.Membership = ev.Membership()
			return nil
		}
		var err error
		if t != nil {
			err = read(t)
		} else if !e.store.MayHaveEvent(eventID) {
			err = store.ErrNotFound
		} else {
			err = e.store.View(read)
		}
		if err != nil {
			return Member{}, err
		}
	}
	if m.Pos != 0 {
		e.members.Put(eventID, m)
	}
	return m, nil
}

// Speaks reports whether a membership gives its server a say in the room:
// joined, invited or knocking.
func Speaks(membership string) bool {
	return membership == "join" || membership == "invite" || membership == "knock"
}
