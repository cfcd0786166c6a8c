package node

import (
	"context"
	"fmt"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/parley-p2p/parley/internal/testkit"
)

func bodies(evs []*event.Event) []string {
	var out []string
	for _, ev := range evs {
		if ev.Type == event.EventMessage {
			ev.Content.ParseRaw(ev.Type)
			out = append(out, ev.Content.AsMessage().Body)
		}
	}
	return out
}

func TestContext(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, alice, bob, carol := oneNode(t, ctx)
	room := privateRoom(t, ctx, alice)
	var ids []id.EventID
	for i := range 10 {
		ids = append(ids, sendText(t, ctx, alice, room, fmt.Sprintf("m%d", i)))
	}

	resp, err := alice.Context(ctx, room, ids[5], nil, 4)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Event == nil || resp.Event.ID != ids[5] || resp.Event.Unsigned.Membership != event.MembershipJoin {
		t.Fatalf("event = %+v, want %s with unsigned.membership join", resp.Event, ids[5])
	}
	if got := fmt.Sprint(bodies(resp.EventsBefore)); got != "[m4 m3]" {
		t.Errorf("events_before = %s, want [m4 m3] (newest first)", got)
	}
	if got := fmt.Sprint(bodies(resp.EventsAfter)); got != "[m6 m7]" {
		t.Errorf("events_after = %s, want [m6 m7]", got)
	}
	var hasCreate bool
	for _, ev := range resp.State {
		hasCreate = hasCreate || ev.Type == event.StateCreate
	}
	if !hasCreate {
		t.Error("the state at the event has no m.room.create")
	}
	back, err := alice.Messages(ctx, room, resp.Start, "", mautrix.DirectionBackward, nil, 2)
	if err != nil || fmt.Sprint(bodies(back.Chunk)) != "[m2 m1]" {
		t.Errorf("/messages back from start: %v, %v; want [m2 m1]", back, err)
	}
	fwd, err := alice.Messages(ctx, room, resp.End, "", mautrix.DirectionForward, nil, 2)
	if err != nil || fmt.Sprint(bodies(fwd.Chunk)) != "[m8 m9]" {
		t.Errorf("/messages forward from end: %v, %v; want [m8 m9]", fwd, err)
	}

	t.Run("limit 0 returns the event alone", func(t *testing.T) {
		var resp mautrix.RespContext
		_, err := alice.MakeRequest(ctx, "GET", alice.BuildClientURL("v3", "rooms", room, "context", ids[9])+"?limit=0", nil, &resp)
		if err != nil || resp.Event.ID != ids[9] || len(resp.EventsBefore)+len(resp.EventsAfter) != 0 {
			t.Fatalf("%+v, %v", resp, err)
		}
	})
	t.Run("a filter applies to the events around", func(t *testing.T) {
		resp, err := alice.Context(ctx, room, ids[0], &mautrix.FilterPart{NotTypes: []event.Type{event.EventMessage}}, 10)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(bodies(resp.EventsAfter)) + len(bodies(resp.EventsBefore)); n != 0 {
			t.Errorf("%d messages around, filtered out", n)
		}
		if len(resp.EventsBefore) == 0 {
			t.Error("no state events before the first message")
		}
	})
	t.Run("errors", func(t *testing.T) {
		_, err := alice.Context(ctx, room, "$nosuchevent", nil, 4)
		wantHTTP(t, "an unknown event", err, 404, "M_NOT_FOUND")
		_, err = carol.Context(ctx, room, ids[5], nil, 4)
		wantHTTP(t, "a user not in the room", err, 404, "M_NOT_FOUND")
		_, err = alice.MakeRequest(ctx, "GET", alice.BuildClientURL("v3", "rooms", room, "context", ids[5])+"?limit=x", nil, nil)
		wantHTTP(t, "a limit that is not a number", err, 400, "M_INVALID_PARAM")
		_, err = alice.MakeRequest(ctx, "GET", alice.BuildClientURL("v3", "rooms", room, "context", ids[5])+"?filter=%7B%22limit%22%3A%22x%22%7D", nil, nil)
		wantHTTP(t, "a filter of the wrong type", err, 400, "M_INVALID_PARAM")
	})
	t.Run("history bob may not see is left out", func(t *testing.T) {
		setVisibility(t, ctx, alice, room, "joined")
		hidden := sendText(t, ctx, alice, room, "joined only, before bob")
		joinThrough(t, ctx, room, alice, bob)
		after := sendText(t, ctx, alice, room, "after bob")
		_, err := bob.Context(ctx, room, hidden, nil, 4)
		wantHTTP(t, "bob asks for a message from before his join", err, 404, "M_NOT_FOUND")
		resp, err := bob.Context(ctx, room, after, nil, 40)
		if err != nil {
			t.Fatal(err)
		}
		// The shared history before the change is his; what came after
		// it and before his join is not.
		if got := fmt.Sprint(bodies(resp.EventsBefore)); got != "[m9 m8 m7 m6 m5 m4 m3 m2 m1 m0]" {
			t.Errorf("bob sees %s before his join", got)
		}
	})
}

func TestMembersAtAndFilters(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, alice, bob, carol := oneNode(t, ctx)
	room := privateRoom(t, ctx, alice)
	early, err := alice.SyncRequest(ctx, 0, "", "", false, "")
	if err != nil {
		t.Fatal(err)
	}
	joinThrough(t, ctx, room, alice, bob)
	if _, err := alice.InviteUser(ctx, room, &mautrix.ReqInviteUser{UserID: carol.UserID}); err != nil {
		t.Fatal(err)
	}
	members := func(req mautrix.ReqMembers) map[id.UserID]event.Membership {
		t.Helper()
		resp, err := alice.Members(ctx, room, req)
		if err != nil {
			t.Fatal(err)
		}
		out := map[id.UserID]event.Membership{}
		for _, ev := range resp.Chunk {
			ev.Content.ParseRaw(ev.Type)
			out[id.UserID(*ev.StateKey)] = ev.Content.AsMember().Membership
		}
		return out
	}
	for _, tc := range []struct {
		name string
		req  mautrix.ReqMembers
		want string
	}{
		{"all members now", mautrix.ReqMembers{}, fmt.Sprint(map[id.UserID]event.Membership{alice.UserID: "join", bob.UserID: "join", carol.UserID: "invite"})},
		{"the joined", mautrix.ReqMembers{Membership: "join"}, fmt.Sprint(map[id.UserID]event.Membership{alice.UserID: "join", bob.UserID: "join"})},
		{"all but the joined", mautrix.ReqMembers{NotMembership: "join"}, fmt.Sprint(map[id.UserID]event.Membership{carol.UserID: "invite"})},
		{"at a sync token from before bob came", mautrix.ReqMembers{At: early.NextBatch}, fmt.Sprint(map[id.UserID]event.Membership{alice.UserID: "join"})},
	} {
		if got := fmt.Sprint(members(tc.req)); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
	_, err = alice.Members(ctx, room, mautrix.ReqMembers{Membership: "joined"})
	wantHTTP(t, "an unknown membership", err, 400, "M_INVALID_PARAM")
	_, err = alice.Members(ctx, room, mautrix.ReqMembers{At: "yesterday"})
	wantHTTP(t, "an at that is not a token", err, 400, "M_INVALID_PARAM")
	_, err = carol.Members(ctx, room)
	wantHTTP(t, "an invited user", err, 403, "M_FORBIDDEN")
}

// TestJoinedMembersShowProfilesAndRoomNames: /joined_members carries each
// member's display name and avatar, on their node and on another, and a
// display name set for one room is kept in it.
func TestJoinedMembersShowProfilesAndRoomNames(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, _, alice, bob := twoNodes(t, ctx, testOpts{}, testOpts{})
	if err := bob.SetDisplayName(ctx, "Bob B"); err != nil {
		t.Fatal(err)
	}
	if err := bob.SetAvatarURL(ctx, id.ContentURI{Homeserver: "example.org", FileID: "bob"}); err != nil {
		t.Fatal(err)
	}
	room := privateRoom(t, ctx, alice)
	joinThrough(t, ctx, room, alice, bob)
	want := func(c *mautrix.Client, name, avatar string) {
		t.Helper()
		testkit.WaitFor(t, 30*time.Second, fmt.Sprintf("%s to see bob as %q %q", c.UserID, name, avatar), func() bool {
			resp, err := c.JoinedMembers(ctx, room)
			if err != nil {
				return false
			}
			m, ok := resp.Joined[bob.UserID]
			return ok && m.DisplayName == name && m.AvatarURL == avatar
		})
	}
	want(bob, "Bob B", "mxc://example.org/bob")
	want(alice, "Bob B", "mxc://example.org/bob")

	var mine event.MemberEventContent
	if err := bob.StateEvent(ctx, room, event.StateMember, bob.UserID.String(), &mine); err != nil {
		t.Fatal(err)
	}
	mine.Displayname = "Bob in this room"
	if _, err := bob.SendStateEvent(ctx, room, event.StateMember, bob.UserID.String(), &mine); err != nil {
		t.Fatal(err)
	}
	want(bob, "Bob in this room", "mxc://example.org/bob")
	want(alice, "Bob in this room", "mxc://example.org/bob")
	other := privateRoom(t, ctx, alice)
	joinThrough(t, ctx, other, alice, bob)
	resp, err := bob.JoinedMembers(ctx, other)
	if err != nil {
		t.Fatal(err)
	}
	if m := resp.Joined[bob.UserID]; m.DisplayName != "Bob B" {
		t.Errorf("in another room bob is %v, want his own name", m.DisplayName)
	}

	// A new avatar reaches every room and keeps the room's own name; a
	// new display name replaces it.
	if err := bob.SetAvatarURL(ctx, id.ContentURI{Homeserver: "example.org", FileID: "bob2"}); err != nil {
		t.Fatal(err)
	}
	want(alice, "Bob in this room", "mxc://example.org/bob2")
	want(bob, "Bob in this room", "mxc://example.org/bob2")
	if err := bob.SetDisplayName(ctx, "Robert"); err != nil {
		t.Fatal(err)
	}
	want(alice, "Robert", "mxc://example.org/bob2")
}
