package bench

import (
	"context"
	"testing"
	"time"
)

// TestTwoNodesExchangeOneMessage checks the harness itself: two nodes,
// one room, one message each way, both seen through the other member's
// /sync, with nothing lost.
func TestTwoNodesExchangeOneMessage(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl := newCluster(t, ctx, 2)
	res := cl.burst(t, ctx, "smoke", 1, 1)
	if res.lost != 0 {
		t.Fatalf("%d of 2 deliveries lost", res.lost)
	}
	if len(res.latencies) != 2 {
		t.Fatalf("got %d latencies, want one per delivery (2)", len(res.latencies))
	}
	if _, ok := cl.followers[1].arrived("smoke s0 m0"); !ok {
		t.Error("the second user's /sync did not show the first user's message")
	}
	if _, ok := cl.followers[0].arrived("smoke s1 m0"); !ok {
		t.Error("the first user's /sync did not show the second user's message")
	}
}
