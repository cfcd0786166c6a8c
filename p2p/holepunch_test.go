package p2p

import (
	"context"
	"crypto/ed25519"
	"net"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	"github.com/libp2p/go-libp2p/p2p/transport/quicreuse"
	"github.com/marcopolo/simnet"
	ma "github.com/multiformats/go-multiaddr"
)

// Hole punching cannot be shown on loopback: DCUtR starts only once a host
// has a public address, and libp2p counts 127.0.0.1 as private. The test
// below runs QUIC over simnet instead, a simulated network in the process
// whose hosts have public-looking addresses behind a router that, like a
// NAT, drops unsolicited inbound packets to every host not marked public.

// fixedSourceIP makes quic-go send from the simulated address.
type fixedSourceIP struct{ ip atomic.Pointer[net.IP] }

func (s *fixedSourceIP) PreferredSourceIPForDestination(*net.UDPAddr) (net.IP, error) {
	return *s.ip.Load(), nil
}

// onSimnet puts a host's QUIC sockets on router's network; public hosts
// accept unsolicited packets, the others only answers to what they sent.
func onSimnet(router *simnet.SimpleFirewallRouter, public bool) libp2p.Option {
	src := &fixedSourceIP{}
	return libp2p.QUICReuse(quicreuse.NewConnManager,
		quicreuse.OverrideSourceIPSelector(func() (quicreuse.SourceIPSelector, error) { return src, nil }),
		quicreuse.OverrideListenUDP(func(_ string, addr *net.UDPAddr) (net.PacketConn, error) {
			src.ip.Store(&addr.IP)
			if public {
				router.SetAddrPubliclyReachable(addr)
			}
			c := simnet.NewSimConn(addr)
			c.SetUpPacketReceiver(router)
			router.AddNode(addr, c)
			return c, nil
		}))
}

// apartGater refuses every connection with the far peer until released.
type apartGater struct {
	far      peer.ID
	released atomic.Bool
}

func (g *apartGater) ok(p peer.ID) bool { return p != g.far || g.released.Load() }

func (g *apartGater) InterceptPeerDial(p peer.ID) bool                 { return g.ok(p) }
func (g *apartGater) InterceptAddrDial(p peer.ID, _ ma.Multiaddr) bool { return g.ok(p) }
func (g *apartGater) InterceptAccept(network.ConnMultiaddrs) bool      { return true }
func (g *apartGater) InterceptSecured(_ network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	return g.ok(p)
}
func (g *apartGater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) {
	return true, 0
}

// TestHolePunchingReplacesARelayedConnection: a and b, each behind a
// firewall, reach each other through relay r; DCUtR then opens a direct
// connection between them.
func TestHolePunchingReplacesARelayedConnection(t *testing.T) {
	router := &simnet.SimpleFirewallRouter{}
	r := newTestHost(t, func(c *Config) {
		c.ListenAddrs = []string{"/ip4/1.2.0.1/udp/4001/quic-v1"}
		c.RelayService = true
		c.Options = []libp2p.Option{onSimnet(router, true)}
	})
	// DCUtR acts only on relayed connections made after it started: a and
	// b are kept apart until then (their DHTs would connect them through
	// the relay).
	keyA, keyB := newKey(t), newKey(t)
	gateA, gateB := &apartGater{far: peerOfKey(t, keyB)}, &apartGater{far: peerOfKey(t, keyA)}
	behindFirewall := func(ip string, key ed25519.PrivateKey, gate *apartGater) func(*Config) {
		return func(c *Config) {
			c.Key = key
			c.Gater = gate
			c.ListenAddrs = []string{"/ip4/" + ip + "/udp/4001/quic-v1"}
			c.Relays = r.Addrs()
			c.Options = []libp2p.Option{onSimnet(router, false), libp2p.ForceReachabilityPrivate()}
		}
	}
	a := newTestHost(t, behindFirewall("2.2.0.1", keyA, gateA))
	b := newTestHost(t, behindFirewall("2.2.0.2", keyB, gateB))
	for _, h := range []*Host{a, b} {
		// Until libp2p announces the circuit addresses it announces the
		// direct ones instead, and DCUtR would first dial those, hole
		// punching only once the firewall has made that dial time out.
		waitFor(t, 10*time.Second, "circuit addresses", func() bool { return slices.ContainsFunc(h.LibP2P().Addrs(), isCircuit) })
		waitFor(t, 10*time.Second, "hole punching to start", func() bool {
			return slices.Contains(h.LibP2P().Mux().Protocols(), holepunch.Protocol)
		})
	}
	gateA.released.Store(true)
	gateB.released.Store(true)

	b.Handle(testHandler)
	seen := watchConns(a, b.ID())
	a.AddAddrs(b.ID(), b.RelayAddrs())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := a.Request(ctx, b.ID(), "echo", []byte("first through the relay")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "a direct connection between a and b", func() bool {
		for _, c := range a.LibP2P().Network().ConnsToPeer(b.ID()) {
			if !isCircuit(c.RemoteMultiaddr()) && !c.Stat().Limited {
				return true
			}
		}
		return false
	})
	if _, err := a.Request(ctx, b.ID(), "echo", []byte("then direct")); err != nil {
		t.Fatal(err)
	}
	// What NetStatus makes of it: the relay has a public address on its
	// interface; the direct connection that joined the relayed one shows
	// a's and b's firewalls to be cone-like. (a and b listen on public
	// simnet addresses, so their own NetStatus says "none".)
	if got := r.NetStatus().NATType; got != "none" {
		t.Errorf("relay's NAT type %q, want none", got)
	}
	seen.mu.Lock()
	relayed := slices.ContainsFunc(seen.seen, isCircuit)
	seen.mu.Unlock()
	if !relayed {
		// Seen under -race: both sides dialled each other at once and the
		// firewall let that through; there was no relayed connection.
		t.Log("a and b connected directly at once: no upgrade to look at")
		return
	}
	waitFor(t, 10*time.Second, "the upgrade recorded on both sides", func() bool {
		return a.addrs.punches.verdict() == "cone" && b.addrs.punches.verdict() == "cone"
	})

	// Room traffic moves to the direct connection too: GossipSub's
	// streams are on it, and the relayed connection is closed.
	boxA, boxB := newInbox(16), newInbox(16)
	for _, x := range []struct {
		h   *Host
		box *inbox
	}{{a, boxA}, {b, boxB}} {
		if err := x.h.JoinRoom(testRoom, testKeys(testRoom), nil, x.box.take); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "a and b in the room", func() bool {
		return inRoom(a, testRoom, b.ID())() && inRoom(b, testRoom, a.ID())()
	})
	waitFor(t, 10*time.Second, "the relayed connection closed on both sides", func() bool {
		_, ra := conns(a, b.ID())
		_, rb := conns(b, a.ID())
		return ra == 0 && rb == 0
	})
	for _, h := range []*Host{a, b} {
		far := a
		if h == a {
			far = b
		}
		waitFor(t, 5*time.Second, "GossipSub streams both ways on the direct connection", func() bool {
			in, out := 0, 0
			for _, c := range h.LibP2P().Network().ConnsToPeer(far.ID()) {
				for _, s := range c.GetStreams() {
					if !isPubsubProtocol(s.Protocol()) || c.Stat().Limited || isCircuit(c.RemoteMultiaddr()) {
						continue
					}
					if s.Stat().Direction == network.DirInbound {
						in++
					} else {
						out++
					}
				}
			}
			return in > 0 && out > 0
		})
	}
	if err := a.Publish(ctx, testRoom, []byte("direct from a")); err != nil {
		t.Fatal(err)
	}
	if m := boxB.next(t, 5*time.Second); m.data != "direct from a" {
		t.Errorf("b received %q", m.data)
	}
	if err := b.Publish(ctx, testRoom, []byte("direct from b")); err != nil {
		t.Fatal(err)
	}
	if m := boxA.next(t, 5*time.Second); m.data != "direct from b" {
		t.Errorf("a received %q", m.data)
	}
	for _, h := range []*Host{a, b} {
		for _, pp := range h.PeerPaths([]peer.ID{a.ID(), b.ID()}) {
			if pp.Peer != h.ID() && pp.Path != "direct" {
				t.Errorf("%s reaches %s by %q, want direct", h.ID().ShortString(), pp.Peer.ShortString(), pp.Path)
			}
		}
	}
}

// punchFailures counts DCUtR's failures: direct dials, punches, protocol
// errors.
type punchFailures struct{ failed atomic.Int32 }

func (pt *punchFailures) Trace(e *holepunch.Event) {
	switch ev := e.Evt.(type) {
	case *holepunch.EndHolePunchEvt:
		if !ev.Success {
			pt.failed.Add(1)
		}
	case *holepunch.DirectDialEvt:
		if !ev.Success {
			pt.failed.Add(1)
		}
	case *holepunch.ProtocolErrorEvt:
		pt.failed.Add(1)
	}
}

// TestHolePunchingIsTriedAgainAfterAFailure: the first hole punch between
// a and b fails (here gaters refuse their direct connections until a
// relayed connection between them closes); the side that dialled the
// relayed connection closes it and dials again after punchRetryAfter, and
// DCUtR then opens a direct connection.
func TestHolePunchingIsTriedAgainAfterAFailure(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the first retry (15 s)")
	}
	router := &simnet.SimpleFirewallRouter{}
	r := newTestHost(t, func(c *Config) {
		c.ListenAddrs = []string{"/ip4/1.2.0.1/udp/4001/quic-v1"}
		c.RelayService = true
		c.Options = []libp2p.Option{onSimnet(router, true)}
	})
	keyA, keyB := newKey(t), newKey(t)
	gateA, gateB := &directGater{far: peerOfKey(t, keyB)}, &directGater{far: peerOfKey(t, keyA)}
	var tracerA, tracerB punchFailures
	behindFirewall := func(ip string, key ed25519.PrivateKey, gate *directGater, tracer *punchFailures) func(*Config) {
		return func(c *Config) {
			c.Key = key
			c.Gater = gate
			c.ListenAddrs = []string{"/ip4/" + ip + "/udp/4001/quic-v1"}
			c.Relays = r.Addrs()
			c.Options = []libp2p.Option{onSimnet(router, false), libp2p.ForceReachabilityPrivate(),
				libp2p.EnableHolePunching(holepunch.WithTracer(tracer))}
		}
	}
	a := newTestHost(t, behindFirewall("2.2.0.1", keyA, gateA, &tracerA))
	b := newTestHost(t, behindFirewall("2.2.0.2", keyB, gateB, &tracerB))
	for _, h := range []*Host{a, b} {
		waitFor(t, 10*time.Second, "circuit addresses", func() bool { return slices.ContainsFunc(h.LibP2P().Addrs(), isCircuit) })
		waitFor(t, 10*time.Second, "hole punching to start", func() bool {
			return slices.Contains(h.LibP2P().Mux().Protocols(), holepunch.Protocol)
		})
	}
	// The network lets a and b meet directly from the moment a new
	// relayed connection between them opens after the first hole punch
	// failed (a retry), not before.
	release := &network.NotifyBundle{ConnectedF: func(_ network.Network, c network.Conn) {
		if c.Stat().Limited && tracerA.failed.Load()+tracerB.failed.Load() > 0 {
			gateA.direct.Store(true)
			gateB.direct.Store(true)
		}
	}}
	a.LibP2P().Network().Notify(release)
	b.LibP2P().Network().Notify(release)
	b.Handle(testHandler)
	a.AddAddrs(b.ID(), b.RelayAddrs())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	if _, err := a.Request(ctx, b.ID(), "echo", []byte("through the relay")); err != nil {
		t.Fatal(err)
	}
	// The side that got the relayed connection starts DCUtR, in vain.
	waitFor(t, 20*time.Second, "the first hole punch to fail", func() bool { return tracerA.failed.Load()+tracerB.failed.Load() > 0 })
	failedAt := time.Since(start)
	if d, _ := conns(a, b.ID()); d > 0 {
		t.Fatal("a direct connection although the gaters refuse it")
	}
	waitFor(t, 30*time.Second, "a direct connection after a retry", func() bool {
		d, _ := conns(a, b.ID())
		return d > 0
	})
	retries := a.PathStats().PunchRetries + b.PathStats().PunchRetries
	t.Logf("first hole punch failed after %v; direct connection %v after the relayed one; retries %d",
		failedAt.Round(time.Millisecond), time.Since(start).Round(time.Millisecond), retries)
	// Which side dialled the relayed connection depends on which DHT
	// looked the other up first (both may have): that side retries. The
	// punches that failed left dial backoffs on both sides, which may
	// defeat the first retry.
	if retries == 0 {
		t.Error("no retry")
	}
	waitFor(t, 5*time.Second, "the retry counted as an upgrade", func() bool {
		return a.PathStats().PunchUpgrades+b.PathStats().PunchUpgrades > 0
	})
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := a.Request(ctx, b.ID(), "echo", []byte("direct")); err != nil {
		t.Fatal(err)
	}
}
