package node

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"

	"github.com/parley-p2p/parley/internal/testkit"
	"github.com/parley-p2p/parley/node/peers"
	"github.com/parley-p2p/parley/p2p"
	"github.com/parley-p2p/parley/rooms"
)

// TestAnAuthorWhoNeverAnswersDoesNotStallTheRoom: a member's node floods
// the room with events naming auth and prev events nobody has, and never
// answers a request for them. While the victim's fetches from it hang (for
// until mallory's node gives up at its handler deadline, 30 s), another
// member's messages are delivered to the victim all the same: none of the
// hostile requests has ended when they arrive.
func TestAnAuthorWhoNeverAnswersDoesNotStallTheRoom(t *testing.T) {
	t.Parallel()
	const (
		flood  = 50
		honest = 20
	)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var asked, answered atomic.Int64
	release := make(chan struct{})
	hang := func(h p2p.Handler) p2p.Handler {
		return func(ctx context.Context, from peer.ID, method string, body []byte) ([]byte, error) {
			switch method {
			case peers.MethodGetEvent, peers.MethodAuthChain, peers.MethodMissingEvents, peers.MethodStateAfter, peers.MethodBackfill:
				// Hang until the node's own handler deadline (p2p's
				// DefaultRequestTimeout), then answer nothing useful.
				asked.Add(1)
				select {
				case <-release:
				case <-ctx.Done():
				}
				answered.Add(1)
				return nil, remoteErr("M_NOT_FOUND", "gone")
			}
			return h(ctx, from, method, body)
		}
	}
	// a's requests wait far longer than the test does, and no node's
	// anti-entropy runs during the test: bob's messages reach a through
	// its room worker or not at all.
	a := newTestNode(t, testOpts{requestTimeout: 10 * time.Minute, reconnect: time.Hour})
	b := newTestNode(t, testOpts{bootstrap: []*testNode{a}, reconnect: time.Hour})
	m := newTestNode(t, testOpts{bootstrap: []*testNode{a}, reconnect: time.Hour, wrap: hang})
	t.Cleanup(func() { close(release) })
	alice, bob, mallory := a.register(ctx, "alice"), b.register(ctx, "bob"), m.register(ctx, "mallory")
	room := privateRoom(t, ctx, alice)
	joinThrough(t, ctx, room, alice, bob)
	joinThrough(t, ctx, room, alice, mallory)
	ar := a.getRoom(room.String())
	testkit.WaitFor(t, 20*time.Second, "both joins to reach a", func() bool {
		return a.membership(ar, bob.UserID.String()) == "join" && a.membership(ar, mallory.UserID.String()) == "join"
	})
	as := testkit.NewSyncer(t, ctx, alice)
	as.Next(ctx, 0)

	// Mallory's node publishes events that build on events nobody has.
	mr := m.getRoom(room.String())
	made := func() string {
		var b [32]byte
		rand.Read(b[:])
		return "$" + base64.RawURLEncoding.EncodeToString(b[:])
	}
	for i := range flood {
		content, _ := rooms.MarshalCanonical(map[string]string{"msgtype": "m.text", "body": fmt.Sprint("stall ", i)})
		ev, err := rooms.Build(rooms.ProtoEvent{
			RoomID: mr.ID, Sender: mallory.UserID.String(), Type: "m.room.message", Content: content,
			PrevEvents: []string{made()}, AuthEvents: []string{made(), made()}, Depth: 100 + int64(i),
			OriginServerTS: time.Now().UnixMilli(),
		}, mr.Version, m.serverName, m.key)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.host.Publish(ctx, mr.ID, ev.JSON()); err != nil {
			t.Fatal(err)
		}
	}
	testkit.WaitFor(t, 30*time.Second, "a to ask mallory's node for what her events build on", func() bool { return asked.Load() > 0 })

	// Bob talks while a's fetches from mallory's node hang.
	for i := range honest {
		if _, err := bob.SendText(ctx, room, fmt.Sprint("bob ", i)); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	as.Until(t, time.Minute, "alice to receive bob's messages", func(resp *mautrix.RespSync) bool {
		jr := resp.Rooms.Join[room]
		if jr == nil {
			return false
		}
		for _, e := range jr.Timeline.Events {
			e.Content.ParseRaw(e.Type)
			if e.Type == event.EventMessage && e.Sender == bob.UserID {
				seen[e.Content.AsMessage().Body] = true
			}
		}
		return len(seen) == honest
	})
	t.Logf("mallory's node was asked %d times; answered %d", asked.Load(), answered.Load())
	if got := answered.Load(); got != 0 {
		t.Errorf("a hostile fetch ended (%d) before bob's messages were delivered: they waited for it", got)
	}
	// One fetch per author at a time: the flood does not become a flood of
	// hanging requests.
	if got := asked.Load(); got > 4 {
		t.Errorf("mallory's node was asked %d times while her events waited, want at most a few", got)
	}
}
