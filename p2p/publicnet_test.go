package p2p

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	relayv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"

	"github.com/parley-p2p/parley/internal/testkit"
)

// realPublicBootstrap is the production list of the public DHT's bootstrap
// peers. No test may dial it: init replaces publicBootstrapPeers, so that a
// host with PublicNetwork in a test has no bootstrap peer unless the test
// gives it local ones.
var realPublicBootstrap = publicBootstrapPeers

func init() {
	publicBootstrapPeers = func() []peer.AddrInfo { return nil }
}

// newPublicNetHost starts a host using a stand-in for the public network:
// bootstrap replaces the IPFS DHT's bootstrap peers.
func newPublicNetHost(t *testing.T, bootstrap []peer.AddrInfo, edit func(*Config)) *Host {
	t.Helper()
	cfg := Config{
		Key:           newKey(t),
		ListenAddrs:   loopbackListen,
		NoMDNS:        true,
		Logger:        testLogger(),
		PublicNetwork: true,
	}
	edit(&cfg)
	testkit.CheckGoroutines(t, libp2pLeaks(cfg)...)
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(h.pub.bootstrap) != 0 {
		t.Fatal("a test host was given the real public bootstrap peers")
	}
	h.pub.bootstrap = bootstrap
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := h.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return h
}

// newIPFSNode starts a bare libp2p host on loopback running a DHT server
// under the public network's prefix (/ipfs), as a public node does.
func newIPFSNode(t *testing.T, opts ...libp2p.Option) (host.Host, *dht.IpfsDHT) {
	t.Helper()
	lh, err := libp2p.New(append([]libp2p.Option{libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0")}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	kad, err := dht.New(lh, dht.Mode(dht.ModeServer))
	if err != nil {
		lh.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		kad.Close()
		lh.Close()
	})
	return lh, kad
}

func TestPublicBootstrapPeersAreTheIPFSOnes(t *testing.T) {
	// Reading the list resolves nothing and dials nothing.
	if got := realPublicBootstrap(); len(got) == 0 {
		t.Fatal("no public bootstrap peers")
	}
	h, err := New(Config{Key: newKey(t), PublicNetwork: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(h.pub.bootstrap) != 0 {
		t.Errorf("a host in a test got %d public bootstrap peers, want none", len(h.pub.bootstrap))
	}
	if !h.NetStatus().PublicNetwork {
		t.Error("NetStatus does not say the public network is used")
	}
}

// TestPublicNetworkFindsARelay: a node with no relay, bootstrap peer or
// member relay, using the public network, learns of a relay only through the
// public DHT (a bootstrap node that is no relay tells it of a DHT node that
// is one) and reserves with it.
func TestPublicNetworkFindsARelay(t *testing.T) {
	boot, bootKad := newIPFSNode(t)
	relay, _ := newIPFSNode(t,
		libp2p.ForceReachabilityPublic(),
		libp2p.EnableRelayService(relayv2.WithResources(relayv2.DefaultResources())),
	)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := relay.Connect(ctx, peer.AddrInfo{ID: boot.ID(), Addrs: boot.Addrs()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the bootstrap node to hold the relay in its routing table", func() bool {
		return bootKad.RoutingTable().Find(relay.ID()) != ""
	})

	start := time.Now()
	h := newPublicNetHost(t, []peer.AddrInfo{{ID: boot.ID(), Addrs: boot.Addrs()}}, func(c *Config) {
		c.Options = []libp2p.Option{libp2p.ForceReachabilityPrivate()}
	})
	waitFor(t, 20*time.Second, "a reservation with the relay found in the public DHT", func() bool { return heldThrough(h, relay.ID()) })
	t.Logf("start to reservation with a relay found through the public DHT: %v", time.Since(start).Round(time.Millisecond))
	if heldThrough(h, boot.ID()) {
		t.Error("reserved with the bootstrap node, which offers no relay service")
	}
	if len(h.RelayAddrs()) == 0 {
		t.Error("no circuit address through the public relay")
	}
	// The relay keeps libp2p's default limits: hole punching only.
	for _, c := range relay.Network().ConnsToPeer(h.ID()) {
		if isCircuit(c.RemoteMultiaddr()) {
			t.Errorf("the node reached the relay through a circuit: %s", c.RemoteMultiaddr())
		}
	}
}
