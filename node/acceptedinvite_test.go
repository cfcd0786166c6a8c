package node

import (
	"context"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"

	"github.com/parley-p2p/parley/internal/testkit"
)

// TestAnAcceptedInviteIsNeverShownAsLeft: bob accepts an invite while his
// client follows /sync; the invite's record is closed after his join, so
// a later sync reads a changed invite for a room with nothing new. Every
// incremental sync until alice's next message arrives must keep the room
// joined, never list it as left (a client then drops the room).
func TestAnAcceptedInviteIsNeverShownAsLeft(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	_, _, alice, bob := twoNodes(t, ctx, testOpts{}, testOpts{})
	room := privateRoom(t, ctx, alice)
	// Bob's client long-polls all along, as an app does: it wakes at his
	// join's commit and polls again while the invite is being closed.
	s := testkit.NewSyncer(t, ctx, bob)
	if _, err := s.Next(ctx, 0); err != nil {
		t.Fatal(err)
	}
	type result struct {
		left bool
		err  error
	}
	done := make(chan result, 1)
	go func() {
		for {
			resp, err := s.Next(ctx, 30*time.Second)
			if err != nil {
				done <- result{err: err}
				return
			}
			if _, left := resp.Rooms.Leave[room]; left {
				done <- result{left: true}
				return
			}
			if hasWelcome(resp, room) {
				done <- result{}
				return
			}
		}
	}()
	joinThrough(t, ctx, room, alice, bob)
	if _, err := alice.SendMessageEvent(ctx, room, event.EventMessage, map[string]any{"msgtype": "m.text", "body": "welcome"}); err != nil {
		t.Fatal(err)
	}
	switch r := <-done; {
	case r.err != nil:
		t.Fatal(r.err)
	case r.left:
		t.Fatal("an incremental sync listed the room bob had just joined as left")
	}
}

func hasWelcome(resp *mautrix.RespSync, room interface{ String() string }) bool {
	for id, jr := range resp.Rooms.Join {
		if id.String() != room.String() {
			continue
		}
		for _, ev := range jr.Timeline.Events {
			if ev.Type == event.EventMessage {
				return true
			}
		}
	}
	return false
}

// TestAJoinRightAfterAnInviteToAFollowedRoom: node b already follows the
// room for bob when alice invites more users of b. Each invite reaches
// its user straight from alice's node, ahead of the room's copy of it by
// gossip; a join sent the moment the invite shows in /sync must find it
// (the node takes the invite into the room first), never fail with
// "neither invited nor joined".
func TestAJoinRightAfterAnInviteToAFollowedRoom(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	_, b, alice, _, room := twoMembers(t, ctx, testOpts{}, testOpts{regToken: "reg-token-join"})
	for _, name := range []string{"dan", "erin", "frank"} {
		u := b.register(ctx, name)
		joinThrough(t, ctx, room, alice, u)
		if m := b.membership(b.getRoom(room.String()), u.UserID.String()); m != "join" {
			t.Fatalf("%s's membership on b after joining: %q", name, m)
		}
	}
}
