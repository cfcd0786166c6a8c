package p2p

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// TestAFloodingPeerDoesNotStarveTheOthers: one real host publishes as fast
// as it can while another sends a few messages; the victim gets every one
// of the honest host's messages, in order, its validation queue never
// overflows, the flooder's excess is dropped unread, and what the victim
// holds for the flood stays within its bounds.
func TestAFloodingPeerDoesNotStarveTheOthers(t *testing.T) {
	// A share small enough that the flood exceeds it on any machine.
	rate, burst := peerMsgRate, peerMsgBurst
	peerMsgRate, peerMsgBurst = 100, 200
	t.Cleanup(func() { peerMsgRate, peerMsgBurst = rate, burst })

	const floods, honests = 3000, 50
	victim, flooder, honest := newTestHost(t), newTestHost(t), newTestHost(t)
	type got struct {
		from peer.ID
		data string
	}
	box := make(chan got, floods+honests)
	if err := victim.JoinRoom(testRoom, testKeys(testRoom), nil, func(from peer.ID, data []byte, _ any) {
		box <- got{from, string(data)}
	}); err != nil {
		t.Fatal(err)
	}
	for _, h := range []*Host{flooder, honest} {
		if err := h.JoinRoom(testRoom, testKeys(testRoom), nil, nil); err != nil {
			t.Fatal(err)
		}
		connect(t, h, victim)
		waitFor(t, 10*time.Second, "the peer to see the victim in the room", inRoom(h, testRoom, victim.ID()))
	}
	// The flooder and the honest host are not connected: all the victim
	// gets of each comes from that peer itself.
	if connected(flooder, honest)() {
		t.Fatal("flooder and honest host connected")
	}

	ctx := context.Background()
	done := make(chan error, 1)
	go func() {
		for i := range floods {
			if err := flooder.Publish(ctx, testRoom, []byte(fmt.Sprintf("flood %d %s", i, strings.Repeat("x", 500)))); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for i := range honests {
		if err := honest.Publish(ctx, testRoom, []byte(fmt.Sprintf("honest %d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	next, flooded := 0, 0
	deadline := time.After(20 * time.Second)
	for next < honests {
		select {
		case m := <-box:
			switch m.from {
			case honest.ID():
				if want := fmt.Sprintf("honest %d", next); m.data != want {
					t.Fatalf("got %q from the honest host, want %q", m.data, want)
				}
				next++
			case flooder.ID():
				flooded++
			}
		case <-deadline:
			t.Fatalf("the victim got %d of the honest host's %d messages (and %d of the flood); stats %+v",
				next, honests, flooded, victim.Stats())
		}
	}
	// The honest host's messages may all be in before the flood has
	// reached the victim (the flooder's queue drains behind them): the
	// throttle is checked once the flood arrives.
	throttled := func() bool { return victim.Stats().Throttled > 0 }
	deadlineAt := time.Now().Add(20 * time.Second)
	for !throttled() && time.Now().Before(deadlineAt) {
		select {
		case m := <-box:
			if m.from == flooder.ID() {
				flooded++
			}
		case <-time.After(50 * time.Millisecond):
		}
	}
	st := victim.Stats()
	if st.Throttled == 0 {
		t.Errorf("none of %d flood messages was throttled at a share of %v (%d delivered)", floods, peerMsgBurst, flooded)
	}
	if st.DroppedInbound != 0 || st.Undelivered != 0 {
		t.Errorf("the victim dropped messages past the throttle: %+v", st)
	}
	peers, digests, _ := victim.inflow.sizes()
	if peers > 2 || digests > 2*inflowGen {
		t.Errorf("inflow holds %d peers and %d digests, over its bounds (2, %d)", peers, digests, 2*inflowGen)
	}
	t.Logf("victim: %d flood messages delivered so far, stats %+v", flooded, st)
}

// TestEachHostValidatesEachMessageOnce: in a full mesh of five, each
// message reaches a host along several paths; the copies that arrive while
// the first waits for validation are stripped before it (inflow), pubsub's
// own duplicate check catches the rest, and nothing is lost on the way:
// each host's validator runs once per message and every message arrives.
func TestEachHostValidatesEachMessageOnce(t *testing.T) {
	const n, msgs = 5, 300
	hosts := make([]*Host, n)
	calls := make([]chan struct{}, n)
	for i := range hosts {
		hosts[i] = newTestHost(t)
		calls[i] = make(chan struct{}, n*msgs)
	}
	for i := range hosts {
		for j := i + 1; j < n; j++ {
			connect(t, hosts[i], hosts[j])
		}
	}
	delivered := make(chan struct{}, n*n*msgs)
	for i, h := range hosts {
		v := func(context.Context, peer.ID, []byte) (Verdict, any) {
			calls[i] <- struct{}{}
			return Accept, nil
		}
		if err := h.JoinRoom(testRoom, testKeys(testRoom), v, func(peer.ID, []byte, any) { delivered <- struct{}{} }); err != nil {
			t.Fatal(err)
		}
	}
	for _, h := range hosts {
		for _, o := range hosts {
			if h != o {
				waitFor(t, 10*time.Second, "room membership to spread", inRoom(h, testRoom, o.ID()))
			}
		}
	}
	ctx := context.Background()
	for i := range msgs {
		for _, h := range hosts {
			if err := h.Publish(ctx, testRoom, []byte(fmt.Sprintf("m %d", i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := n * (n - 1) * msgs
	waitFor(t, 30*time.Second, "every message to reach every host", func() bool { return len(delivered) >= want })
	for i := range hosts {
		if got := len(calls[i]); got != (n-1)*msgs {
			t.Errorf("host %d validated %d times for %d messages", i, got, (n-1)*msgs)
		}
	}
	dups := uint64(0)
	for _, h := range hosts {
		_, _, d := h.inflow.sizes()
		dups += d
	}
	t.Logf("copies stripped before validation: %d", dups)
}
