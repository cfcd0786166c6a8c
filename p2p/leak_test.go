package p2p

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-p2p/parley/internal/testkit"
)

// A small network runs through everything the package does, a request is
// still in its handler when the hosts close, and each host is closed twice:
// once the hosts are closed, every goroutine they started has ended. (Every
// test host checks this when its test ends; this test is the one that
// exercises all of Host.)
func TestCloseLeavesNoGoroutinesBehind(t *testing.T) {
	testkit.CheckGoroutines(t)
	hosts, boxes := meshOf(t, 3, testRoom)
	a, b := hosts[0], hosts[1]
	a.OnPeerConnected(func(peer.ID) {})
	b.Handle(testHandler)
	ctx := context.Background()
	if err := a.Publish(ctx, testRoom, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	boxes[1].next(t, 5*time.Second)
	if _, err := a.Request(ctx, b.ID(), "echo", []byte("x")); err != nil {
		t.Fatal(err)
	}
	// A request still in its handler when the host closes.
	hung, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	a.Request(hung, b.ID(), "hang", nil)
	for _, h := range hosts {
		for range 2 {
			if err := h.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
}
