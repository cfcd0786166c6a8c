package node

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/parley-p2p/parley/internal/testkit"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// readAll pages /messages back from the end and returns the message
// bodies, oldest first.
func readAll(t testing.TB, ctx context.Context, c *mautrix.Client, room id.RoomID) []string {
	t.Helper()
	bodies, _ := readTimeline(t, ctx, c, room)
	return bodies
}

// readTimeline is readAll that also counts the encrypted events shown as
// they are on the wire: those whose key has not reached c's node yet.
func readTimeline(t testing.TB, ctx context.Context, c *mautrix.Client, room id.RoomID) (bodies []string, waiting int) {
	t.Helper()
	from := ""
	for range 1000 {
		resp, err := c.Messages(ctx, room, from, "", mautrix.DirectionBackward, nil, 100)
		if err != nil {
			t.Fatalf("%s /messages: %v", c.UserID, err)
		}
		for _, ev := range resp.Chunk {
			switch ev.Type {
			case event.EventMessage:
				ev.Content.ParseRaw(ev.Type)
				bodies = append(bodies, ev.Content.AsMessage().Body)
			case event.EventEncrypted:
				waiting++
			}
		}
		if resp.End == "" {
			break
		}
		from = resp.End
	}
	slices.Reverse(bodies)
	return bodies, waiting
}

// TestLateJoinerReadsHistory: a user whose node joins after 500 messages
// reads all of them, in order, through /messages when the room's history
// is shared; with history visibility "joined" they read none.
func TestLateJoinerReadsHistory(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		visibility string
		want       int
	}{{"shared", 500}, {"joined", 0}} {
		t.Run("visibility "+tc.visibility, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			_, bn, alice, bob := twoNodes(t, ctx, testOpts{}, testOpts{})
			room := privateRoom(t, ctx, alice)
			if _, err := alice.SendStateEvent(ctx, room, event.StateHistoryVisibility, "", map[string]string{"history_visibility": tc.visibility}); err != nil {
				t.Fatal(err)
			}
			n := 500
			for i := range n {
				if _, err := alice.SendText(ctx, room, fmt.Sprintf("history %03d", i)); err != nil {
					t.Fatal(err)
				}
			}
			joinThrough(t, ctx, room, alice, bob)
			if _, err := alice.SendText(ctx, room, "after the join"); err != nil {
				t.Fatal(err)
			}
			// Late history is decrypted as its keys (the handovers alice's
			// node sends on bob's join) arrive: until then /messages shows
			// it encrypted, marked waiting.
			var got []string
			var waiting int
			defer func() {
				if t.Failed() {
					n := min(len(got), 3)
					t.Logf("bob read %d messages (the last %q), %d shown waiting for a key; his node holds %d waiting", len(got), got[len(got)-n:], waiting, waitingEvents(t, bn, room))
				}
			}()
			testkit.WaitFor(t, 60*time.Second, "the message after the join to reach bob, and every message before it to be readable", func() bool {
				got, waiting = readTimeline(t, ctx, bob, room)
				return waiting == 0 && len(got) > 0 && got[len(got)-1] == "after the join"
			})
			history := got[:len(got)-1]
			if len(history) != tc.want {
				t.Fatalf("bob read %d messages from before his join, want %d", len(history), tc.want)
			}
			for i, body := range history {
				if want := fmt.Sprintf("history %03d", i); body != want {
					t.Fatalf("message %d is %q, want %q", i, body, want)
				}
			}
		})
	}
}
