package node

import (
	"context"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"

	"github.com/parley-p2p/parley/internal/testkit"
)

// TestASyncWakesOnlyForItsOwnRooms: carol's /sync long-polls on a node
// where alice sends 20 messages to a room carol is not in. Carol's
// long-poll is not woken by them: her answer is built once before the
// messages and once when her own room changes, not once per message.
func TestASyncWakesOnlyForItsOwnRooms(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	a := newTestNode(t, testOpts{regToken: "family"})
	alice, carol := a.register(ctx, "alice"), a.registerWithToken(ctx, "carol", "family")
	busy := privateRoom(t, ctx, alice)
	quiet := privateRoom(t, ctx, carol)
	s := testkit.NewSyncer(t, ctx, carol)
	if _, err := s.Next(ctx, 0); err != nil {
		t.Fatal(err)
	}
	before := a.api.SyncBuilds()
	answer := make(chan *mautrix.RespSync, 1)
	go func() {
		resp, err := s.Next(ctx, 60*time.Second)
		if err != nil {
			t.Error(err)
		}
		answer <- resp
	}()
	testkit.WaitFor(t, 10*time.Second, "carol's long-poll to be built once", func() bool { return a.api.SyncBuilds() > before })
	for i := range 20 {
		if _, err := alice.SendMessageEvent(ctx, busy, event.EventMessage, map[string]any{"msgtype": "m.text", "body": "busy " + string(rune('a'+i))}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := carol.SendMessageEvent(ctx, quiet, event.EventMessage, map[string]any{"msgtype": "m.text", "body": "mine"}); err != nil {
		t.Fatal(err)
	}
	resp := <-answer
	if resp == nil || len(resp.Rooms.Join[quiet].Timeline.Events) == 0 {
		t.Fatal("carol's long-poll did not return her own room's message")
	}
	if _, ok := resp.Rooms.Join[busy]; ok {
		t.Error("carol's answer holds a room she is not in")
	}
	if builds := a.api.SyncBuilds() - before; builds > 3 {
		t.Errorf("carol's long-poll was built %d times for 20 messages in another room and 1 in hers, want at most 3", builds)
	}
}
