package node

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/parley-p2p/parley/internal/testkit"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// TestRoomVersion10AcrossTwoNodes: a version 10 room made through
// createRoom has a server-scoped room ID and a create event naming its
// creator; bob joins from another node, messages go both ways, and
// alice's redaction of bob's message is seen redacted on both nodes, its
// redacts at the top level where version 10 keeps it.
func TestRoomVersion10AcrossTwoNodes(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a, _, alice, bob := twoNodes(t, ctx, testOpts{}, testOpts{})

	resp, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", RoomVersion: "10", Name: "ten"})
	if err != nil {
		t.Fatalf("create a v10 room: %v", err)
	}
	room := resp.RoomID
	if !strings.HasSuffix(room.String(), ":"+a.ServerName()) {
		t.Errorf("room ID %s is not on alice's server %s", room, a.ServerName())
	}
	var create struct {
		Creator     string `json:"creator"`
		RoomVersion string `json:"room_version"`
	}
	if err := alice.StateEvent(ctx, room, event.StateCreate, "", &create); err != nil {
		t.Fatal(err)
	}
	if create.Creator != alice.UserID.String() || create.RoomVersion != "10" {
		t.Errorf("create content = %+v, want creator %s and room_version 10", create, alice.UserID)
	}

	joinThrough(t, ctx, room, alice, bob)
	testkit.WaitFor(t, 20*time.Second, "bob's join to reach a", func() bool {
		return a.membership(a.getRoom(room.String()), bob.UserID.String()) == "join"
	})

	fromAlice, err := alice.SendText(ctx, room, "hello from alice")
	if err != nil {
		t.Fatal(err)
	}
	fromBob, err := bob.SendText(ctx, room, "hello from bob")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*mautrix.Client{alice, bob} {
		for _, ev := range []id.EventID{fromAlice.EventID, fromBob.EventID} {
			testkit.WaitFor(t, 20*time.Second, string(c.UserID)+" to see "+ev.String(), func() bool {
				_, err := c.GetEvent(ctx, room, ev)
				return err == nil
			})
		}
	}

	red, err := alice.RedactEvent(ctx, room, fromBob.EventID, mautrix.ReqRedact{Reason: "test"})
	if err != nil {
		t.Fatalf("alice redacts bob's message: %v", err)
	}
	for _, c := range []*mautrix.Client{alice, bob} {
		var ev *event.Event
		testkit.WaitFor(t, 20*time.Second, string(c.UserID)+" to see bob's message redacted", func() bool {
			ev, err = c.GetEvent(ctx, room, fromBob.EventID)
			return err == nil && ev.Unsigned.RedactedBecause != nil
		})
		if _, ok := ev.Content.Raw["body"]; ok {
			t.Errorf("%s still sees the body of the redacted message", c.UserID)
		}
		if by := ev.Unsigned.RedactedBecause; by.ID != red.EventID || by.Redacts != fromBob.EventID {
			t.Errorf("%s: redacted_because is %s naming %s, want %s naming %s", c.UserID, by.ID, by.Redacts, red.EventID, fromBob.EventID)
		}
		redaction, err := c.GetEvent(ctx, room, red.EventID)
		if err != nil {
			t.Fatal(err)
		}
		if redaction.Redacts != fromBob.EventID {
			t.Errorf("%s: the redaction's top-level redacts is %q, want %s", c.UserID, redaction.Redacts, fromBob.EventID)
		}
		if msg, err := c.GetEvent(ctx, room, fromAlice.EventID); err != nil || msg.Content.Raw["body"] != "hello from alice" {
			t.Errorf("%s: alice's message is %v (%v), want it intact", c.UserID, msg, err)
		}
	}
}
