package p2p

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/parley-p2p/parley/internal/testkit"
)

// directGater lets a host reach the far peer through a relay always, and
// directly only while direct is set.
type directGater struct {
	far    peer.ID
	direct atomic.Bool
}

func (g *directGater) allowed(p peer.ID, a ma.Multiaddr) bool {
	return p != g.far || isCircuit(a) || g.direct.Load()
}

func (g *directGater) InterceptPeerDial(peer.ID) bool                   { return true }
func (g *directGater) InterceptAddrDial(p peer.ID, a ma.Multiaddr) bool { return g.allowed(p, a) }
func (g *directGater) InterceptAccept(network.ConnMultiaddrs) bool      { return true }
func (g *directGater) InterceptSecured(_ network.Direction, p peer.ID, c network.ConnMultiaddrs) bool {
	return g.allowed(p, c.RemoteMultiaddr())
}
func (g *directGater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) {
	return true, 0
}

// pathPair is two private hosts in one room that reach each other through
// a relay on loopback, and directly when the test lets them.
type pathPair struct {
	r, a, b    *Host
	gA, gB     *directGater
	boxA, boxB *inbox
}

func newPathPair(t *testing.T) *pathPair {
	t.Helper()
	pp := &pathPair{}
	pp.r = newTestHost(t, func(c *Config) { c.RelayService = true })
	keyA, keyB := newKey(t), newKey(t)
	pp.gA, pp.gB = &directGater{far: peerOfKey(t, keyB)}, &directGater{far: peerOfKey(t, keyA)}
	private := []libp2p.Option{libp2p.ForceReachabilityPrivate()}
	pp.a = newTestHost(t, func(c *Config) { c.Key, c.Relays, c.Gater, c.Options = keyA, pp.r.Addrs(), pp.gA, private })
	pp.b = newTestHost(t, func(c *Config) { c.Key, c.Relays, c.Gater, c.Options = keyB, pp.r.Addrs(), pp.gB, private })
	pp.boxA, pp.boxB = newInbox(1024), newInbox(1024)
	for _, x := range []struct {
		h   *Host
		box *inbox
	}{{pp.a, pp.boxA}, {pp.b, pp.boxB}} {
		waitFor(t, 10*time.Second, "a relay reservation", func() bool { return len(x.h.RelayAddrs()) > 0 })
		if err := x.h.JoinRoom(testRoom, testKeys(testRoom), nil, x.box.take); err != nil {
			t.Fatal(err)
		}
	}
	return pp
}

// conns counts h's direct and relayed connections with p.
func conns(h *Host, p peer.ID) (direct, relayed int) {
	for _, c := range h.LibP2P().Network().ConnsToPeer(p) {
		if c.Stat().Limited {
			relayed++
		} else {
			direct++
		}
	}
	return direct, relayed
}

// relayThenDirect disconnects the pair, connects a to b through the
// relay, waits until each sees the other in the room, and then connects
// them directly as well (as hole punching would).
func (pp *pathPair) relayThenDirect(t *testing.T) {
	t.Helper()
	pp.relayOnly(t)
	pp.addDirect(t)
}

// relayOnly disconnects the pair and connects a to b through the relay.
func (pp *pathPair) relayOnly(t *testing.T) {
	t.Helper()
	a, b := pp.a, pp.b
	pp.gA.direct.Store(false)
	pp.gB.direct.Store(false)
	// Either side may be redialling the other through the relay as this
	// starts (a hole-punch retry, a dead path's redial): close until both
	// see none.
	waitFor(t, 5*time.Second, "a and b apart", func() bool {
		a.LibP2P().Network().ClosePeer(b.ID())
		b.LibP2P().Network().ClosePeer(a.ID())
		return !connectedOrRelayed(a.LibP2P(), b.ID()) && !connectedOrRelayed(b.LibP2P(), a.ID())
	})
	a.AddAddrs(b.ID(), b.RelayAddrs())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Connect(ctx, b.ID()); err != nil {
		t.Fatalf("connect through the relay: %v", err)
	}
	waitFor(t, 5*time.Second, "a and b in the room over the relay", func() bool {
		return inRoom(a, testRoom, b.ID())() && inRoom(b, testRoom, a.ID())()
	})
	if d, _ := conns(a, b.ID()); d != 0 {
		t.Fatalf("a has %d direct connections to b while only the relay is allowed", d)
	}
}

// addDirect connects a and b directly, as hole punching would.
func (pp *pathPair) addDirect(t *testing.T) {
	t.Helper()
	a, b := pp.a, pp.b
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pp.gA.direct.Store(true)
	pp.gB.direct.Store(true)
	a.LibP2P().Network().(*swarm.Swarm).Backoff().Clear(b.ID())
	a.AddAddrs(b.ID(), directAddrs(b))
	if _, err := a.LibP2P().Network().DialPeer(network.WithForceDirectDial(ctx, "test"), b.ID()); err != nil {
		t.Fatalf("direct dial: %v", err)
	}
	waitFor(t, 5*time.Second, "a direct connection on both sides", func() bool {
		da, _ := conns(a, b.ID())
		db, _ := conns(b, a.ID())
		return da > 0 && db > 0
	})
}

// directAddrs are h's addresses that do not go through a relay.
func directAddrs(h *Host) []string {
	var out []string
	for _, a := range h.LibP2P().Network().ListenAddresses() {
		out = append(out, a.String())
	}
	return out
}

// exchange publishes one message each way and reports how long each took
// to arrive, or -1 if it did not within wait.
func (pp *pathPair) exchange(t *testing.T, tag string, wait time.Duration) (ab, ba time.Duration) {
	t.Helper()
	ctx := context.Background()
	start := time.Now()
	if err := pp.a.Publish(ctx, testRoom, []byte(tag+" from a")); err != nil {
		t.Fatal(err)
	}
	if err := pp.b.Publish(ctx, testRoom, []byte(tag+" from b")); err != nil {
		t.Fatal(err)
	}
	ab = awaitMessage(pp.boxB, tag+" from a", start, wait)
	ba = awaitMessage(pp.boxA, tag+" from b", start, wait)
	return ab, ba
}

// awaitMessage reads box until want arrives (other messages, late ones
// from earlier rounds, are skipped) and returns the time since start, or
// -1 after wait.
func awaitMessage(box *inbox, want string, start time.Time, wait time.Duration) time.Duration {
	deadline := time.NewTimer(time.Until(start.Add(wait)))
	defer deadline.Stop()
	for {
		select {
		case m := <-box.ch:
			if m.data == want {
				return time.Since(start)
			}
		case <-deadline.C:
			return -1
		}
	}
}

// pathCycles is how many path changes the tests below make
// (P2P_PATH_CYCLES overrides).
func pathCycles() int {
	if n, err := strconv.Atoi(os.Getenv("P2P_PATH_CYCLES")); err == nil && n > 0 {
		return n
	}
	return 30
}

// TestRoomTrafficMovesToTheDirectConnection: each time a peer reached
// through a relay also gets a direct connection, GossipSub's streams move
// to it and the relayed connection is closed; a message published each
// way right after arrives within a second, and both streams are on the
// direct connection.
func TestRoomTrafficMovesToTheDirectConnection(t *testing.T) {
	pp := newPathPair(t)
	a, b := pp.a, pp.b
	n := pathCycles()
	var late []string
	var worst time.Duration
	for i := range n {
		pp.relayThenDirect(t)
		waitFor(t, 5*time.Second, "the relayed connection closed on both sides", func() bool {
			_, ra := conns(a, b.ID())
			_, rb := conns(b, a.ID())
			return ra == 0 && rb == 0
		})
		ab, ba := pp.exchange(t, fmt.Sprintf("round %d", i), time.Second)
		if ab < 0 || ba < 0 {
			late = append(late, fmt.Sprintf("round %d: a->b %v, b->a %v", i, ab, ba))
		}
		worst = max(worst, ab, ba)
		for _, h := range []*Host{a, b} {
			for _, c := range h.LibP2P().Network().ConnsToPeer(other(pp, h).ID()) {
				for _, s := range c.GetStreams() {
					if isPubsubProtocol(s.Protocol()) && c.Stat().Limited {
						t.Errorf("round %d: %s's GossipSub stream on a relayed connection", i, h.ID().ShortString())
					}
				}
			}
		}
	}
	closed := a.PathStats().RelayedClosed + b.PathStats().RelayedClosed
	t.Logf("%d path changes: relayed connections closed %d, resyncs a %d b %d, slowest message %v",
		n, closed, a.PathStats().Resyncs, b.PathStats().Resyncs, worst.Round(time.Millisecond))
	if closed < uint64(n) {
		t.Errorf("closed %d relayed connections in %d path changes", closed, n)
	}
	for _, l := range late {
		t.Errorf("a message did not arrive within 1s: %s", l)
	}
}

func other(pp *pathPair, h *Host) *Host {
	if h == pp.a {
		return pp.b
	}
	return pp.a
}

// TestARelayedConnectionDyingUnderADirectOneStallsNothing: the relayed
// connection under a direct one ends abruptly (the relay stops, or its
// limit is reached), on one side first. GossipSub on each side keeps the
// other's subscriptions, or the repair gives them back (rounds where that
// took over a second are counted and logged), and a message each way then
// arrives within a second.
func TestARelayedConnectionDyingUnderADirectOneStallsNothing(t *testing.T) {
	pp := newPathPair(t)
	a, b := pp.a, pp.b
	keepRelayed(a)
	keepRelayed(b)
	n := pathCycles()
	const repairWithin = 4 * time.Second // a mismatch lasting 1 s, then a resync
	var forgot, unrepaired, lost int
	var worst time.Duration
	for i := range n {
		pp.relayThenDirect(t)
		closer := a
		if i%2 == 1 {
			closer = b
		}
		for _, c := range closer.LibP2P().Network().ConnsToPeer(other(pp, closer).ID()) {
			if c.Stat().Limited {
				c.Close()
			}
		}
		waitFor(t, 5*time.Second, "the relayed connection gone on both sides", func() bool {
			_, ra := conns(a, b.ID())
			_, rb := conns(b, a.ID())
			return ra == 0 && rb == 0
		})
		// Recovered: each side lists the other in the room again, and
		// GossipSub writes to it on a live connection.
		recovered := func() bool {
			return inRoom(a, testRoom, b.ID())() && inRoom(b, testRoom, a.ID())() &&
				writesOnLiveConn(a, b.ID()) && writesOnLiveConn(b, a.ID())
		}
		// Almost always both sides still know each other at once; when
		// the race struck anyway (once in 30 rounds under CI's load), the
		// repair (a mismatch lasting 1 s, then a resync) must mend it.
		if !testkit.Eventually(time.Second, recovered) {
			forgot++
			t.Logf("round %d: after 1s a sees b: %v, b sees a: %v", i, inRoom(a, testRoom, b.ID())(), inRoom(b, testRoom, a.ID())())
			if !testkit.Eventually(repairWithin, recovered) {
				unrepaired++
				t.Logf("round %d: not repaired within %v", i, repairWithin)
			}
		}
		ab, ba := pp.exchange(t, fmt.Sprintf("round %d", i), time.Second)
		if ab < 0 || ba < 0 {
			lost++
			t.Logf("round %d: a->b %v, b->a %v", i, ab, ba)
		}
		worst = max(worst, ab, ba)
	}
	t.Logf("%d relayed connections closed under a direct one: subscriptions forgotten for over 1s %d times, a message late or lost %d times; slowest %v; repairs a %d b %d",
		n, forgot, lost, worst.Round(time.Millisecond), a.PathStats().Repairs, b.PathStats().Repairs)
	if unrepaired > 0 || lost > 0 {
		t.Errorf("stalls in %d of %d rounds (not repaired within %v %d, messages late after recovery %d)", max(unrepaired, lost), n, repairWithin, unrepaired, lost)
	}
}

func keepRelayed(h *Host) { h.pspaths.keepRelayed.Store(true) }

// writesOnLiveConn reports whether h's GossipSub has a stream to p and
// none on a closed connection.
func writesOnLiveConn(h *Host, p peer.ID) bool {
	pp := h.pspaths
	pp.mu.Lock()
	defer pp.mu.Unlock()
	for s := range pp.outbound[p] {
		if s.Conn().IsClosed() {
			return false
		}
	}
	return len(pp.outbound[p]) > 0
}

// TestPeerPathsSayHowEachRoomPeerIsReachedWithItsRoundTrip: a room peer
// reached through a relay is "relayed" via that relay, one reached
// directly "direct", with a measured round trip (room peers are pinged as
// soon as they are seen, then every pingEvery); a peer with no connection
// is "offline".
func TestPeerPathsSayHowEachRoomPeerIsReachedWithItsRoundTrip(t *testing.T) {
	pp := newPathPair(t)
	a, b := pp.a, pp.b
	keepRelayed(a)
	keepRelayed(b)
	pp.relayThenDirect(t)
	// Back to the relay only: close the direct connection.
	pp.gA.direct.Store(false)
	pp.gB.direct.Store(false)
	for _, c := range a.LibP2P().Network().ConnsToPeer(b.ID()) {
		if !c.Stat().Limited {
			c.Close()
		}
	}
	waitFor(t, 5*time.Second, "a relayed path with a round trip", func() bool {
		p := a.PeerPaths([]peer.ID{b.ID()})[0]
		return p.Path == "relayed" && p.RTT > 0
	})
	got := a.PeerPaths([]peer.ID{b.ID(), pp.r.ID(), newTestHost(t).ID()})
	if got[0].Via != pp.r.ID() {
		t.Errorf("relayed via %s, want the relay %s", got[0].Via, pp.r.ID())
	}
	if got[1].Path != "direct" {
		t.Errorf("the relay itself is reached %q, want direct", got[1].Path)
	}
	if got[2].Path != "offline" || got[2].RTT != 0 {
		t.Errorf("a peer never connected: %+v, want offline without a round trip", got[2])
	}
	t.Logf("relayed round trip on loopback: %v", got[0].RTT)
}

// TestARelayedConnectionIsClosedOnlyOnceItsRequestsEnd: a request in
// flight on the relayed connection when a direct one appears keeps the
// relayed connection open (GossipSub moves at once) until it is answered.
func TestARelayedConnectionIsClosedOnlyOnceItsRequestsEnd(t *testing.T) {
	pp := newPathPair(t)
	a, b := pp.a, pp.b
	release := make(chan struct{})
	slow := func(ctx context.Context, from peer.ID, method string, body []byte) ([]byte, error) {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return body, nil
	}
	a.Handle(slow)
	b.Handle(slow)
	pp.relayOnly(t)
	answered := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_, err := a.Request(ctx, b.ID(), "slow", []byte("x"))
		answered <- err
	}()
	onRelay := func(h *Host, p peer.ID, what func(string) bool) bool {
		for _, c := range h.LibP2P().Network().ConnsToPeer(p) {
			for _, s := range c.GetStreams() {
				if c.Stat().Limited && what(string(s.Protocol())) {
					return true
				}
			}
		}
		return false
	}
	isRequest := func(id string) bool { return id == RequestProtocol }
	isGossip := func(id string) bool { return isPubsubProtocol(protocol.ID(id)) }
	waitFor(t, 5*time.Second, "the request on the relayed connection", func() bool { return onRelay(a, b.ID(), isRequest) })
	pp.addDirect(t)
	waitFor(t, 5*time.Second, "GossipSub off the relayed connection", func() bool {
		return !onRelay(a, b.ID(), isGossip) && !onRelay(b, a.ID(), isGossip)
	})
	if testkit.Eventually(2*pathsTick+500*time.Millisecond, func() bool { _, r := conns(a, b.ID()); return r == 0 }) {
		t.Fatal("the relayed connection was closed under a request in flight")
	}
	close(release)
	if err := <-answered; err != nil {
		t.Fatalf("the request in flight: %v", err)
	}
	waitFor(t, 5*time.Second, "the relayed connection closed once the request ended", func() bool {
		_, ra := conns(a, b.ID())
		_, rb := conns(b, a.ID())
		return ra == 0 && rb == 0
	})
}
