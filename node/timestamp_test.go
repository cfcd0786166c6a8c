package node

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"
)

// timestamp_to_event answers the event nearest a time in the direction
// asked, among those the user may see.
func TestTimestampToEvent(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, alice, bob, carol := oneNode(t, ctx)
	room := privateRoom(t, ctx, alice)
	setVisibility(t, ctx, alice, room, "joined")
	var ids []id.EventID
	tsOf := map[id.EventID]int64{}
	for i := range 10 {
		ev := sendText(t, ctx, alice, room, fmt.Sprintf("m%d", i))
		got, err := alice.GetEvent(ctx, room, ev)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, ev)
		tsOf[ev] = got.Timestamp
	}
	lookup := func(c *mautrix.Client, ts int64, dir mautrix.Direction) (*mautrix.RespTimestampToEvent, error) {
		return c.TimestampToEvent(ctx, room, time.UnixMilli(ts), dir)
	}
	mid := tsOf[ids[5]]
	// Events sent within one millisecond share it: any of them is right.
	sameTime := func(ts int64) []id.EventID {
		var out []id.EventID
		for _, e := range ids {
			if tsOf[e] == ts {
				out = append(out, e)
			}
		}
		return out
	}
	for _, dir := range []mautrix.Direction{mautrix.DirectionForward, mautrix.DirectionBackward} {
		t.Run("at an event's own time, "+string(dir), func(t *testing.T) {
			resp, err := lookup(alice, mid, dir)
			if err != nil {
				t.Fatal(err)
			}
			if resp.Timestamp.UnixMilli() != mid || !slices.Contains(sameTime(mid), resp.EventID) {
				t.Fatalf("got %s at %d, want one of %v at %d", resp.EventID, resp.Timestamp.UnixMilli(), sameTime(mid), mid)
			}
		})
	}
	t.Run("backwards from the future is the newest", func(t *testing.T) {
		resp, err := lookup(alice, time.Now().Add(time.Hour).UnixMilli(), mautrix.DirectionBackward)
		last := tsOf[ids[9]]
		if err != nil || resp.Timestamp.UnixMilli() != last || !slices.Contains(sameTime(last), resp.EventID) {
			t.Fatalf("%+v, %v; want one of %v", resp, err, sameTime(last))
		}
	})
	t.Run("forwards from the start is no later than the first message", func(t *testing.T) {
		resp, err := lookup(alice, 0, mautrix.DirectionForward)
		if err != nil || resp.Timestamp.UnixMilli() > tsOf[ids[0]] {
			t.Fatalf("%+v, %v", resp, err)
		}
	})
	t.Run("nothing in the direction asked is 404", func(t *testing.T) {
		_, err := lookup(alice, time.Now().Add(time.Hour).UnixMilli(), mautrix.DirectionForward)
		wantHTTP(t, "forwards from the future", err, 404, "M_NOT_FOUND")
		_, err = lookup(alice, 0, mautrix.DirectionBackward)
		wantHTTP(t, "backwards from 1970", err, 404, "M_NOT_FOUND")
	})
	t.Run("a user not in the room is refused", func(t *testing.T) {
		_, err := lookup(carol, mid, mautrix.DirectionForward)
		wantHTTP(t, "carol", err, 403, "M_FORBIDDEN")
	})
	t.Run("history the user may not see is passed over", func(t *testing.T) {
		joinThrough(t, ctx, room, alice, bob)
		resp, err := lookup(bob, mid, mautrix.DirectionForward)
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(ids, resp.EventID) {
			t.Fatalf("bob was given %s, from before his join to a room with joined visibility", resp.EventID)
		}
		// Backwards: the shared history from before the room's
		// visibility became joined, which bob may see.
		resp, err = lookup(bob, mid, mautrix.DirectionBackward)
		if err != nil || slices.Contains(ids, resp.EventID) || resp.Timestamp.UnixMilli() > tsOf[ids[0]] {
			t.Fatalf("bob backwards: %+v, %v; want an event from before the visibility changed", resp, err)
		}
	})
}
