package node

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-p2p/parley/internal/testkit"
	"github.com/parley-p2p/parley/node/peers"
	"github.com/parley-p2p/parley/p2p"
	"github.com/parley-p2p/parley/rooms"
)

// TestAnEventThatOvertookItsParentIsPlacedWithoutFetching: with several
// members sending at once, gossip often brings an event a moment before
// the event it builds on. The worker holds it for that moment, and places
// both without asking any peer for anything.
func TestAnEventThatOvertookItsParentIsPlacedWithoutFetching(t *testing.T) {
	// Not parallel: the worker holds the early event for 200 ms only, and other tests' load could make the test miss that moment.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var fetches atomic.Int64
	count := func(h p2p.Handler) p2p.Handler {
		return func(ctx context.Context, from peer.ID, method string, body []byte) ([]byte, error) {
			switch method {
			case peers.MethodGetEvent, peers.MethodAuthChain, peers.MethodMissingEvents, peers.MethodStateAfter, peers.MethodBackfill:
				fetches.Add(1)
			}
			return h(ctx, from, method, body)
		}
	}
	a, b, alice, _, created := twoMembers(t, ctx, testOpts{reconnect: time.Hour, wrap: count}, testOpts{reconnect: time.Hour})
	room := created.String()
	ar, br := a.getRoom(room), b.getRoom(room)
	testkit.WaitFor(t, 20*time.Second, "b to hold the room as a does", func() bool {
		head := ar.Head().Ext
		for _, id := range head {
			if !b.dag.Known(id) {
				return false
			}
		}
		return true
	})
	before := fetches.Load()

	// Two messages of alice's, the second building on the first, made
	// on a's behalf but never sent: b gets them only from the test, the
	// second first.
	content, _ := rooms.MarshalCanonical(map[string]string{"msgtype": "m.text", "body": "first"})
	p, err := a.dag.Proto(ar.Room, alice.UserID.String(), "m.room.message", nil, content)
	if err != nil {
		t.Fatal(err)
	}
	first, err := rooms.Build(p, ar.Version, a.serverName, a.key)
	if err != nil {
		t.Fatal(err)
	}
	p.PrevEvents, p.Depth = []string{first.ID()}, p.Depth+1
	p.Content, _ = rooms.MarshalCanonical(map[string]string{"msgtype": "m.text", "body": "second"})
	second, err := rooms.Build(p, ar.Version, a.serverName, a.key)
	if err != nil {
		t.Fatal(err)
	}
	b.peers.Enqueue(br, a.PeerID(), second)
	testkit.WaitFor(t, 20*time.Second, "b's worker to hold the second message for its parent", func() bool { return br.Held() == 1 })
	b.peers.Enqueue(br, a.PeerID(), first)

	testkit.WaitFor(t, 20*time.Second, "b to place both messages", func() bool {
		return b.dag.Known(first.ID()) && b.dag.Known(second.ID())
	})
	if n := fetches.Load() - before; n != 0 {
		t.Fatalf("b asked a %d times for events already on their way", n)
	}
}
