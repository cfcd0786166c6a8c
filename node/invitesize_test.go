package node

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/parley-p2p/parley/internal/testkit"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
)

// TestAnInviteToARoomWithLargeStateFitsARequest: a room whose name, topic
// and avatar are each near the event size limit still invites users on
// other nodes. The inviter sends the stripped state trimmed as the
// receiver keeps it, so the request stays under p2p.MaxRequestSize.
func TestAnInviteToARoomWithLargeStateFitsARequest(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, _, alice, bob := twoNodes(t, ctx, testOpts{}, testOpts{})
	// Each event carries its content encrypted in base64 (4/3 of its
	// size), so a user's content fits an event up to about 46 kB.
	big := strings.Repeat("x", 40000)
	created, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{
		Preset: "private_chat", Name: "big",
		InitialState: []*event.Event{
			// As initial state: createRoom's topic field would carry it
			// twice (plain and as the rich m.topic block).
			{Type: event.StateTopic, StateKey: new(string), Content: event.Content{Raw: map[string]any{"topic": big}}},
			{Type: event.StateRoomAvatar, StateKey: new(string), Content: event.Content{Raw: map[string]any{"url": "mxc://x/" + big}}},
			{Type: event.StateCanonicalAlias, StateKey: new(string), Content: event.Content{Raw: map[string]any{"alias": "#big:x", "pad": big}}},
			{Type: event.StateEncryption, StateKey: new(string), Content: event.Content{Raw: map[string]any{"algorithm": "m.megolm.v1.aes-sha2", "pad": big}}},
			{Type: event.StateJoinRules, StateKey: new(string), Content: event.Content{Raw: map[string]any{"join_rule": "invite", "pad": big}}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	bs := testkit.NewSyncer(t, ctx, bob)
	if _, err := alice.InviteUser(ctx, created.RoomID, &mautrix.ReqInviteUser{UserID: bob.UserID}); err != nil {
		t.Fatalf("invite to a room with large state: %v", err)
	}
	bs.Until(t, 30*time.Second, "bob's invite", func(r *mautrix.RespSync) bool {
		inv, ok := r.Rooms.Invite[created.RoomID]
		if !ok {
			return false
		}
		for _, ev := range inv.State.Events {
			if ev.Type == event.StateRoomName {
				return true
			}
		}
		t.Fatalf("bob's invite carries no room name: %d stripped events", len(inv.State.Events))
		return false
	})
}
