package node

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/parley-p2p/parley/internal/testkit"
)

// seenFromSync is what a client that starts from a room's /sync
// timeline sees of the room's history: the timeline's events, and, if it
// is limited, every event /messages pages back to from its prev_batch,
// oldest first. It fails the test if paging back repeats an event.
func seenFromSync(t testing.TB, ctx context.Context, c *mautrix.Client, room id.RoomID, tl mautrix.SyncTimeline) []*event.Event {
	t.Helper()
	var older []*event.Event
	if tl.Limited {
		if tl.PrevBatch == "" {
			t.Fatalf("%s: a limited timeline without prev_batch", c.UserID)
		}
		from := tl.PrevBatch
		for range 100 {
			resp, err := c.Messages(ctx, room, from, "", mautrix.DirectionBackward, nil, 7)
			if err != nil {
				t.Fatalf("%s /messages from %s: %v", c.UserID, from, err)
			}
			older = append(older, resp.Chunk...)
			if resp.End == "" {
				break
			}
			from = resp.End
		}
		slices.Reverse(older)
	}
	all := append(older, tl.Events...)
	seen := map[id.EventID]bool{}
	for _, ev := range all {
		if seen[ev.ID] {
			t.Fatalf("%s sees event %s (%s) twice", c.UserID, ev.ID, ev.Type)
		}
		seen[ev.ID] = true
	}
	return all
}

// checkHistory fails the test unless evs start at m.room.create and hold
// the n messages "history NN" in order.
func checkHistory(t testing.TB, evs []*event.Event, n int) {
	t.Helper()
	if len(evs) == 0 || evs[0].Type != event.StateCreate {
		var first string
		if len(evs) > 0 {
			first = evs[0].Type.Type
		}
		t.Fatalf("history starts with %q (of %d events), want m.room.create", first, len(evs))
	}
	var bodies []string
	for _, ev := range evs {
		if ev.Type == event.EventMessage {
			ev.Content.ParseRaw(ev.Type)
			bodies = append(bodies, ev.Content.AsMessage().Body)
		}
	}
	if len(bodies) != n {
		t.Fatalf("%d messages in the history, want %d: %q", len(bodies), n, bodies)
	}
	for i, b := range bodies {
		if want := fmt.Sprintf("history %02d", i); b != want {
			t.Fatalf("message %d is %q, want %q", i, b, want)
		}
	}
}

// TestJoinerSeesHistoryFromFirstSync: a user who joins a room from
// another node finds, in the first /sync that shows the room, either the
// room's history or a limited timeline whose prev_batch pages back
// through all of it to m.room.create, each event once, in order: what
// matrix-js-sdk needs to show earlier messages. The same holds for an
// initial sync, and after the joiner's node restarts.
func TestJoinerSeesHistoryFromFirstSync(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	a, b, alice, bob := twoNodes(t, ctx, testOpts{}, testOpts{dir: dir})
	room := privateRoom(t, ctx, alice)
	const n = 30
	for i := range n {
		if _, err := alice.SendText(ctx, room, fmt.Sprintf("history %02d", i)); err != nil {
			t.Fatal(err)
		}
	}
	bs := &testkit.Syncer{Client: bob}
	if _, err := bs.Next(ctx, 0); err != nil {
		t.Fatal(err)
	}
	joinThrough(t, ctx, room, alice, bob)

	t.Run("the incremental sync that shows the join", func(t *testing.T) {
		var tl mautrix.SyncTimeline
		bs.Until(t, 30*time.Second, "bob's room in rooms.join", func(r *mautrix.RespSync) bool {
			jr, ok := r.Rooms.Join[room]
			if ok {
				tl = jr.Timeline
			}
			return ok
		})
		checkHistory(t, seenFromSync(t, ctx, bob, room, tl), n)
	})
	initial := func(t *testing.T, c *mautrix.Client) {
		resp, err := c.SyncRequest(ctx, 0, "", "", false, "")
		if err != nil {
			t.Fatal(err)
		}
		jr, ok := resp.Rooms.Join[room]
		if !ok {
			t.Fatal("the room is not in an initial sync's rooms.join")
		}
		checkHistory(t, seenFromSync(t, ctx, c, room, jr.Timeline), n)
	}
	t.Run("an initial sync", func(t *testing.T) { initial(t, bob) })
	t.Run("an initial sync after a restart", func(t *testing.T) {
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		b2 := newTestNode(t, testOpts{dir: dir, bootstrap: []*testNode{a}})
		c := b2.client()
		c.SetCredentials(bob.UserID, bob.AccessToken)
		initial(t, c)
	})
}
