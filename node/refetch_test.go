package node

import (
	"bytes"
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"

	"github.com/parley-p2p/parley/internal/testkit"
	"github.com/parley-p2p/parley/rooms"
)

// TestAGossipedEventWhoseWriteFailedIsFetchedAgain: bob's node fails the
// write of alice's message once. The engine rolls the room back and
// forgets the event; it is fetched again from the room's members, with no
// further message to reveal the gap and anti-entropy too far off (10 min)
// to mend it, and bob's client sees it. (peers.WriteFailed asks for it at
// once; in this test the catch-ups that follow a join, 1 s and 5 s after
// it, would also bring it, so the test guards the outcome, not which of
// the two brings it.)
func TestAGossipedEventWhoseWriteFailedIsFetchedAgain(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var failed atomic.Int64
	failOnce := func(ev *rooms.Event, plain []byte) error {
		// The message travels encrypted: bob's node knows it by its
		// decrypted view.
		if bytes.Contains(plain, []byte("lost once")) && failed.CompareAndSwap(0, 1) {
			return errors.New("injected: write failed")
		}
		return nil
	}
	_, b, alice, bob, room := twoMembers(t, ctx, testOpts{reconnect: 10 * time.Minute}, testOpts{reconnect: 10 * time.Minute, failWrite: failOnce})
	resp, err := alice.SendMessageEvent(ctx, room, event.EventMessage, map[string]any{"msgtype": "m.text", "body": "lost once"})
	if err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 30*time.Second, "bob's node to fail the write", func() bool { return failed.Load() == 1 })
	testkit.WaitFor(t, 30*time.Second, "bob's node to fetch the message again", func() bool { return b.dag.Known(resp.EventID.String()) })
	s := testkit.NewSyncer(t, ctx, bob)
	s.Until(t, 30*time.Second, "bob's client to see the message", func(r *mautrix.RespSync) bool {
		for _, ev := range r.Rooms.Join[room].Timeline.Events {
			if ev.ID == resp.EventID {
				return true
			}
		}
		return false
	})
}
