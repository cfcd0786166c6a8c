package node

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/parley-p2p/parley/internal/testkit"
)

// TestRejoinerReadsWhatCameWhileAway: a node whose only member left a
// room, and who joins it again from another node, holds the events sent
// while it was away in its timeline: /messages pages through them, each
// once, in order, down to m.room.create.
func TestRejoinerReadsWhatCameWhileAway(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a, _, alice, bob, room := twoMembers(t, ctx, testOpts{}, testOpts{})
	sendText(t, ctx, alice, room, "history 00")
	if _, err := bob.LeaveRoom(ctx, room); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 20*time.Second, "bob's leave to reach a", func() bool {
		return a.membership(a.getRoom(room.String()), bob.UserID.String()) == "leave"
	})
	for i := 1; i <= 3; i++ {
		sendText(t, ctx, alice, room, fmt.Sprintf("history %02d", i))
	}
	joinThrough(t, ctx, room, alice, bob)
	sendText(t, ctx, alice, room, "history 04")
	testkit.WaitFor(t, 30*time.Second, "the message after the rejoin to reach bob, and all before it to be readable", func() bool {
		got, waiting := readTimeline(t, ctx, bob, room)
		return waiting == 0 && len(got) > 0 && got[len(got)-1] == "history 04"
	})
	resp, err := bob.SyncRequest(ctx, 0, "", `{"room":{"timeline":{"limit":3}}}`, false, "")
	if err != nil {
		t.Fatal(err)
	}
	evs := seenFromSync(t, ctx, bob, room, resp.Rooms.Join[room].Timeline)
	defer func() {
		if t.Failed() {
			for _, ev := range evs {
				t.Logf("%s %s %s", ev.Type, ev.Sender, ev.Content.VeryRaw)
			}
		}
	}()
	checkHistory(t, evs, 5)
}
