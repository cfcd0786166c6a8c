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
	conns := watchConns(a, b.ID())
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
	conns.mu.Lock()
	relayed := slices.ContainsFunc(conns.seen, isCircuit)
	conns.mu.Unlock()
	if !relayed {
		// Seen under -race: both sides dialled each other at once and the
		// firewall let that through; there was no relayed connection.
		t.Log("a and b connected directly at once: no upgrade to look at")
		return
	}
	waitFor(t, 10*time.Second, "the upgrade recorded on both sides", func() bool {
		return a.addrs.punches.verdict() == "cone" && b.addrs.punches.verdict() == "cone"
	})
}
