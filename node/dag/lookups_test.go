package dag

import (
	"errors"
	"slices"
	"testing"

	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/rooms"
)

// TestEventsReadBackAsAdmitted: an event read back from the store (the
// trusted parse, no re-hashing) is the event that was admitted, with its
// record, and an unknown ID is store.ErrNotFound.
func TestEventsReadBackAsAdmitted(t *testing.T) {
	for _, version := range []string{rooms.V10, rooms.V11, rooms.V12} {
		t.Run(version, func(t *testing.T) {
			e := newPerfEngine(t, t.TempDir())
			r := newPerfRoom(t, e, version)
			bob := newRemote("bob")
			join := bob.build(t, e, r, nil, "m.room.member", &bob.user, `{"membership":"join","displayname":"<b>Bob</b> & co"}`)
			admitted := map[string]*rooms.Event{}
			if err := <-admitRemote(t, e, r, join).Committed; err != nil {
				t.Fatal(err)
			}
			msg := bob.build(t, e, r, join, "m.room.message", nil, `{"body":"a <b>bold</b> claim & more \u2028"}`)
			if err := <-admitRemote(t, e, r, msg).Committed; err != nil {
				t.Fatal(err)
			}
			admitted[join.ID()], admitted[msg.ID()] = join, msg
			for _, id := range sendMessages(t, e, r, 3) {
				i, err := e.Event(id)
				if err != nil {
					t.Fatal(err)
				}
				admitted[id] = i.Event
			}
			for id, want := range admitted {
				cached, err := e.Event(id)
				if err != nil {
					t.Fatal(err)
				}
				e.events.Del(id)
				got, err := e.Event(id)
				if err != nil {
					t.Fatal(err)
				}
				if got == cached {
					t.Fatalf("%s came from the cache, not the store", id)
				}
				if got.Event.ID() != id || !slices.Equal(got.Event.JSON(), want.JSON()) || got.Event.Sender() != want.Sender() ||
					got.Event.Type() != want.Type() || string(got.Event.Content()) != string(want.Content()) {
					t.Errorf("%s reads back as %s", want, got.Event)
				}
				if err := rooms.Verify(got.Event); err != nil {
					t.Errorf("%s read back does not verify: %v", id, err)
				}
				if got.Rec.StateAfter != cached.Rec.StateAfter || got.Pos() != cached.Pos() || got.Pos() == 0 {
					t.Errorf("%s record reads back as %+v at %d, was %+v at %d", id, got.Rec, got.Pos(), cached.Rec, cached.Pos())
				}
			}
			if _, err := e.Event("$" + "nosuchevent"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("an unknown event: %v, want store.ErrNotFound", err)
			}
		})
	}
}
