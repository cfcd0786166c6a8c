package node

import (
	"context"
	"testing"
	"time"

	"github.com/parley-p2p/parley/internal/testkit"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
)

// TestRestartKeepsEverything: after a restart on the same data dir the
// account, its token, the room, its history and the sync position are
// all there, and a since token from before the restart still works.
func TestRestartKeepsEverything(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	a := newTestNode(t, testOpts{dir: dir})
	alice := a.register(ctx, "alice")
	room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Name: "kept"})
	if err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{"one", "two"} {
		if _, err := alice.SendText(ctx, room.RoomID, body); err != nil {
			t.Fatal(err)
		}
	}
	s := &testkit.Syncer{Client: alice}
	if _, err := s.Next(ctx, 0); err != nil {
		t.Fatal(err)
	}
	serverName := a.ServerName()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}

	b := newTestNode(t, testOpts{dir: dir})
	if b.ServerName() != serverName {
		t.Fatalf("server name changed across restart: %s -> %s", serverName, b.ServerName())
	}
	c := b.client()
	c.SetCredentials(alice.UserID, alice.AccessToken)
	if _, err := c.Whoami(ctx); err != nil {
		t.Fatalf("token from before the restart: %v", err)
	}
	if _, err := c.SendText(ctx, room.RoomID, "three"); err != nil {
		t.Fatal(err)
	}
	s.Client = c
	resp, err := s.Next(ctx, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	tl := resp.Rooms.Join[room.RoomID].Timeline.Events
	if len(tl) != 1 || tl[0].Type != event.EventMessage {
		t.Fatalf("incremental sync across the restart has %d events, want just the new message", len(tl))
	}
	tl[0].Content.ParseRaw(tl[0].Type)
	if body := tl[0].Content.AsMessage().Body; body != "three" {
		t.Errorf("got %q, want %q", body, "three")
	}
	msgs, err := c.Messages(ctx, room.RoomID, "", "", mautrix.DirectionBackward, nil, 50)
	if err != nil {
		t.Fatal(err)
	}
	var bodies []string
	for _, ev := range msgs.Chunk {
		if ev.Type == event.EventMessage {
			ev.Content.ParseRaw(ev.Type)
			bodies = append(bodies, ev.Content.AsMessage().Body)
		}
	}
	if len(bodies) != 3 || bodies[0] != "three" || bodies[2] != "one" {
		t.Errorf("history after restart = %v, want [three two one]", bodies)
	}
}
