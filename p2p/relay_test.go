package p2p

import (
	"context"
	"crypto/ed25519"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	relayclient "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	ma "github.com/multiformats/go-multiaddr"
)

// relayOnlyGater refuses direct connections with the far peer and lets
// connections through a relay pass: two hosts behind NATs that defeat hole
// punching. While apart is set it refuses relayed ones too.
type relayOnlyGater struct {
	far   peer.ID
	apart atomic.Bool
}

func (g *relayOnlyGater) allowed(p peer.ID, a ma.Multiaddr) bool {
	return p != g.far || (isCircuit(a) && !g.apart.Load())
}

func (g *relayOnlyGater) InterceptPeerDial(p peer.ID) bool {
	return p != g.far || !g.apart.Load()
}
func (g *relayOnlyGater) InterceptAddrDial(p peer.ID, a ma.Multiaddr) bool { return g.allowed(p, a) }
func (g *relayOnlyGater) InterceptAccept(network.ConnMultiaddrs) bool      { return true }
func (g *relayOnlyGater) InterceptSecured(_ network.Direction, p peer.ID, c network.ConnMultiaddrs) bool {
	return g.allowed(p, c.RemoteMultiaddr())
}
func (g *relayOnlyGater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) {
	return true, 0
}

// connLog records the remote address of every connection a host makes or
// accepts with one peer.
type connLog struct {
	peer peer.ID
	mu   sync.Mutex
	seen []ma.Multiaddr
}

func watchConns(h *Host, p peer.ID) *connLog {
	l := &connLog{peer: p}
	h.LibP2P().Network().Notify(&network.NotifyBundle{ConnectedF: func(_ network.Network, c network.Conn) {
		if c.RemotePeer() == p {
			l.mu.Lock()
			l.seen = append(l.seen, c.RemoteMultiaddr())
			l.mu.Unlock()
		}
	}})
	return l
}

// check fails the test unless there was at least one connection and every
// one went through a relay.
func (l *connLog) check(t *testing.T, who string) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.seen) == 0 {
		t.Errorf("%s: no connection with %s", who, l.peer.ShortString())
	}
	for _, a := range l.seen {
		if !isCircuit(a) {
			t.Errorf("%s: direct connection with %s at %s", who, l.peer.ShortString(), a)
		}
	}
}

func peerOfKey(t *testing.T, key ed25519.PrivateKey) peer.ID {
	t.Helper()
	id, err := PeerIDFromKey(key.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// relayedPair starts a relay and two private hosts that may reach each other
// only through it: a holds a reservation with it as a configured relay, b as
// a bootstrap peer that offers the relay service. It returns once both hold
// a reservation and the relay knows both circuit addresses (so that a DHT
// lookup through it finds them). If apart, a and b cannot connect at all
// until the test calls together.
func relayedPair(t *testing.T, apart bool) (r, a, b *Host, together func()) {
	t.Helper()
	r = newTestHost(t, func(c *Config) { c.RelayService = true })
	keyA, keyB := newKey(t), newKey(t)
	gateA, gateB := &relayOnlyGater{far: peerOfKey(t, keyB)}, &relayOnlyGater{far: peerOfKey(t, keyA)}
	gateA.apart.Store(apart)
	gateB.apart.Store(apart)
	private := []libp2p.Option{libp2p.ForceReachabilityPrivate()}
	a = newTestHost(t, func(c *Config) {
		c.Key = keyA
		c.Relays = r.Addrs()
		c.Gater = gateA
		c.Options = private
	})
	b = newTestHost(t, func(c *Config) {
		c.Key = keyB
		c.Bootstrap = r.Addrs()
		c.Gater = gateB
		c.Options = private
	})
	for _, h := range []*Host{a, b} {
		waitFor(t, 10*time.Second, "a relay reservation", func() bool { return len(h.RelayAddrs()) > 0 })
		waitFor(t, 10*time.Second, "the relay to learn the circuit address", func() bool {
			for _, addr := range r.LibP2P().Peerstore().Addrs(h.ID()) {
				if isCircuit(addr) {
					return true
				}
			}
			return false
		})
	}
	return r, a, b, func() {
		gateA.apart.Store(false)
		gateB.apart.Store(false)
	}
}

func TestReachabilityAndRelayAddrs(t *testing.T) {
	r, a, b, _ := relayedPair(t, false)
	tests := []struct {
		name    string
		h       *Host
		reach   string
		relayed bool
	}{
		{"the relay is public and holds no reservation", r, "public", false},
		{"a host with a configured relay is private and reachable through it", a, "private", true},
		{"a host whose bootstrap peer is a relay is private and reachable through it", b, "private", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.h.Reachability(); got != tt.reach {
				t.Errorf("Reachability() = %q, want %q", got, tt.reach)
			}
			if got := len(tt.h.RelayAddrs()) > 0; got != tt.relayed {
				t.Errorf("RelayAddrs() = %v, want some: %v", tt.h.RelayAddrs(), tt.relayed)
			}
			want := "/p2p/" + r.ID().String() + "/p2p-circuit/p2p/" + tt.h.ID().String()
			inAddrs := false
			for _, s := range tt.h.Addrs() {
				inAddrs = inAddrs || strings.HasSuffix(s, want)
			}
			if inAddrs != tt.relayed {
				t.Errorf("Addrs() = %v; want a circuit address through the relay: %v", tt.h.Addrs(), tt.relayed)
			}
		})
	}
	if got := newTestHost(t).Reachability(); got != "unknown" {
		t.Errorf("a host on loopback that forces nothing: Reachability() = %q, want unknown", got)
	}
}

func TestRequestAndRoomMessagesCrossARelay(t *testing.T) {
	_, a, b, together := relayedPair(t, true)
	fromA, fromB := watchConns(a, b.ID()), watchConns(b, a.ID())
	b.Handle(testHandler)
	a.Handle(testHandler)
	var connected sync.Map
	b.OnPeerConnected(func(p peer.ID) { connected.Store(p, true) })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// a knows nothing of b but its peer ID (what a's DHT may have heard of
	// b while they were kept apart is forgotten). The DHT lookup through
	// the relay finds b's circuit address, and the request goes through the
	// relay; the lookup must not wait for a DHT query that cannot cross it.
	if connectedOrRelayed(a.LibP2P(), b.ID()) {
		t.Fatal("a and b connected while kept apart")
	}
	together()
	a.LibP2P().Peerstore().ClearAddrs(b.ID())
	start := time.Now()
	resp, err := a.Request(ctx, b.ID(), "echo", []byte("over the relay"))
	if err != nil {
		t.Fatalf("request from a to b: %v", err)
	}
	if string(resp) != "over the relay" {
		t.Fatalf("response %q", resp)
	}
	t.Logf("lookup, relayed dial and request: %v", time.Since(start).Round(time.Millisecond))
	if resp, err := b.Request(ctx, a.ID(), "whoami", nil); err != nil || peer.ID(resp) != b.ID() {
		t.Fatalf("request from b to a = %q, %v", resp, err)
	}
	waitFor(t, 5*time.Second, "b's OnPeerConnected for a", func() bool { _, ok := connected.Load(a.ID()); return ok })

	// The relayed connection carries the relay service's limits.
	for _, c := range a.LibP2P().Network().ConnsToPeer(b.ID()) {
		st := c.Stat()
		if !st.Limited || st.Extra[relayclient.StatLimitDuration] != relayLimitDuration ||
			st.Extra[relayclient.StatLimitData] != uint64(relayLimitData) {
			t.Errorf("connection %s: limited %v, limits %v; want the relay service's", c.RemoteMultiaddr(), st.Limited, st.Extra)
		}
	}

	boxA, boxB := newInbox(16), newInbox(16)
	if err := a.JoinRoom(testRoom, testKeys(testRoom), nil, boxA.take); err != nil {
		t.Fatal(err)
	}
	if err := b.JoinRoom(testRoom, testKeys(testRoom), nil, boxB.take); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "a and b to see each other in the room", func() bool {
		return inRoom(a, testRoom, b.ID())() && inRoom(b, testRoom, a.ID())()
	})
	if err := a.Publish(ctx, testRoom, []byte("hello b")); err != nil {
		t.Fatal(err)
	}
	if m := boxB.next(t, 5*time.Second); m.from != a.ID() || m.data != "hello b" {
		t.Errorf("b received %q from %s", m.data, m.from.ShortString())
	}
	if err := b.Publish(ctx, testRoom, []byte("hello a")); err != nil {
		t.Fatal(err)
	}
	if m := boxA.next(t, 5*time.Second); m.from != b.ID() || m.data != "hello a" {
		t.Errorf("a received %q from %s", m.data, m.from.ShortString())
	}

	fromA.check(t, "a")
	fromB.check(t, "b")
}
