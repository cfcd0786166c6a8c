package p2p

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// boundPort returns the port h listens on for the given multiaddr protocol
// (ma.P_TCP or ma.P_UDP).
func boundPort(t *testing.T, h *Host, proto int) string {
	t.Helper()
	for _, a := range h.LibP2P().Network().ListenAddresses() {
		if v, err := a.ValueForProtocol(proto); err == nil {
			return v
		}
	}
	t.Fatalf("host listens on no address with protocol %d", proto)
	return ""
}

func TestStartFailsWhenAPortIsInUse(t *testing.T) {
	tcpHolder, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcpHolder.Close()
	udpHolder, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udpHolder.Close()
	other := newTestHost(t)

	tests := []struct {
		name   string
		listen string
	}{
		{"TCP port held by a plain listener", fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", tcpHolder.Addr().(*net.TCPAddr).Port)},
		{"TCP port held by another parley host", "/ip4/127.0.0.1/tcp/" + boundPort(t, other, ma.P_TCP)},
		{"UDP port held by a plain socket", fmt.Sprintf("/ip4/127.0.0.1/udp/%d/quic-v1", udpHolder.LocalAddr().(*net.UDPAddr).Port)},
		{"UDP port held by another parley host", "/ip4/127.0.0.1/udp/" + boundPort(t, other, ma.P_UDP) + "/quic-v1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The free address comes first: one clash among several still fails.
			h, err := New(Config{Key: newKey(t), NoMDNS: true, ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0", tt.listen}})
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close()
			err = h.Start(context.Background())
			if err == nil || !strings.Contains(err.Error(), tt.listen) {
				t.Fatalf("Start = %v, want an error naming %s", err, tt.listen)
			}
			if h.LibP2P() != nil {
				t.Errorf("a failed Start left a libp2p host behind")
			}
		})
	}
}

func TestLifecycleErrors(t *testing.T) {
	h, err := New(Config{Key: newKey(t), ListenAddrs: loopbackListen, NoMDNS: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := h.JoinRoom("!r", testKeys("!r"), nil, nil); !errors.Is(err, ErrNotStarted) {
		t.Errorf("JoinRoom before Start = %v, want ErrNotStarted", err)
	}
	if _, err := h.Request(ctx, h.ID(), "m", nil); !errors.Is(err, ErrNotStarted) {
		t.Errorf("Request before Start = %v, want ErrNotStarted", err)
	}
	if h.Addrs() != nil || h.ConnectedPeers() != nil || h.LibP2P() != nil {
		t.Errorf("a host that has not started reports addresses, peers or a libp2p host")
	}
	if err := h.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := h.Start(ctx); err == nil {
		t.Errorf("second Start succeeded")
	}
	for i := range 3 {
		if err := h.Close(); err != nil {
			t.Fatalf("Close #%d: %v", i+1, err)
		}
	}
	if err := h.Start(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("Start after Close = %v, want ErrClosed", err)
	}
	if err := h.Publish(ctx, "!r", []byte("x")); !errors.Is(err, ErrClosed) {
		t.Errorf("Publish after Close = %v, want ErrClosed", err)
	}
	if err := h.Connect(ctx, "x"); !errors.Is(err, ErrClosed) {
		t.Errorf("Connect after Close = %v, want ErrClosed", err)
	}
}

func TestAddrsAreFullMultiaddrs(t *testing.T) {
	h := newTestHost(t)
	addrs := h.Addrs()
	if len(addrs) < 2 {
		t.Fatalf("Addrs = %v, want a TCP and a QUIC address", addrs)
	}
	for _, s := range addrs {
		ai, err := peer.AddrInfoFromString(s)
		if err != nil {
			t.Fatalf("address %q: %v", s, err)
		}
		if ai.ID != h.ID() {
			t.Errorf("address %q names peer %s, want %s", s, ai.ID, h.ID())
		}
	}
}

func TestUnspecifiedListenAddressReportsInterfaceAddresses(t *testing.T) {
	h := newTestHost(t, func(c *Config) { c.ListenAddrs = []string{"/ip4/0.0.0.0/tcp/0"} })
	ifaces, err := manet.InterfaceMultiaddrs()
	if err != nil {
		t.Fatal(err)
	}
	// Loopback is reported only when the machine has no other address.
	want := "/ip4/127.0.0.1/tcp/"
	for _, a := range ifaces {
		if ip, err := manet.ToIP(a); err == nil && ip.To4() != nil && !ip.IsLoopback() {
			want = "/ip4/" + ip.String() + "/tcp/"
			break
		}
	}
	joined := strings.Join(h.Addrs(), " ")
	if strings.Contains(joined, "/0.0.0.0/") {
		t.Errorf("Addrs reports the unspecified address: %s", joined)
	}
	if !strings.Contains(joined, want) {
		t.Errorf("Addrs = %s, want an address starting %s", joined, want)
	}
	if want != "/ip4/127.0.0.1/tcp/" && strings.Contains(joined, "/ip4/127.0.0.1/") {
		t.Errorf("Addrs = %s, want no loopback address beside %s", joined, want)
	}
}

func TestHostsConnectThroughBootstrapPeers(t *testing.T) {
	a := newTestHost(t)
	b := newTestHost(t, bootstrapFrom(a))
	c := newTestHost(t, bootstrapFrom(a, b))
	for _, pair := range [][2]*Host{{a, b}, {a, c}, {b, c}} {
		x, y := pair[0], pair[1]
		waitFor(t, 10*time.Second, "a connection both ends see", func() bool {
			return hasPeer(x.ConnectedPeers(), y.ID()) && hasPeer(y.ConnectedPeers(), x.ID())
		})
	}
}

func TestConnectFindsAPeerThroughTheDHT(t *testing.T) {
	// A and C refuse each other until the test is ready, so that their own
	// DHT upkeep cannot connect them first.
	gateA, gateC := newBlockGater(), newBlockGater()
	b := newTestHost(t)
	a := newTestHost(t, bootstrapFrom(b), func(c *Config) { c.Gater = gateA })
	gateC.block(a.ID())
	c := newTestHost(t, bootstrapFrom(b), func(c *Config) { c.Gater = gateC })
	gateA.block(c.ID())
	// B must have C in its routing table to answer A's lookup, and A must
	// have B in its own to ask.
	waitFor(t, 10*time.Second, "C in B's routing table", func() bool { return b.dht.RoutingTable().Find(c.ID()) != "" })
	waitFor(t, 10*time.Second, "B in A's routing table", func() bool { return a.dht.RoutingTable().Find(b.ID()) != "" })

	// Whatever A overheard about C goes, so that only a lookup finds it.
	a.LibP2P().Peerstore().ClearAddrs(c.ID())
	if connected(a, c)() {
		t.Fatal("A is connected to C before the lookup")
	}
	gateA.unblock(c.ID())
	gateC.unblock(a.ID())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Connect(ctx, c.ID()); err != nil {
		t.Fatalf("Connect through the DHT: %v", err)
	}
	if !connected(a, c)() {
		t.Fatal("Connect returned without a connection")
	}
}

func TestConnectToAnUnknownPeerFails(t *testing.T) {
	a := newTestHost(t)
	stranger, err := PeerIDFromKey(newKey(t).Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.Connect(ctx, stranger); err == nil {
		t.Fatal("Connect to a peer nobody knows succeeded")
	}
}

func TestOnPeerConnectedSeesNewPeers(t *testing.T) {
	seen := make(chan peer.ID, 10)
	h, err := New(Config{Key: newKey(t), ListenAddrs: loopbackListen, NoMDNS: true})
	if err != nil {
		t.Fatal(err)
	}
	h.OnPeerConnected(func(p peer.ID) { seen <- p })
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	other := newTestHost(t)
	connect(t, other, h)
	select {
	case p := <-seen:
		if p != other.ID() {
			t.Fatalf("OnPeerConnected got %s, want %s", p, other.ID())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("OnPeerConnected not called")
	}
}

func TestAddAddrsBeforeStartIsKept(t *testing.T) {
	target := newTestHost(t)
	h, err := New(Config{Key: newKey(t), ListenAddrs: loopbackListen, NoMDNS: true})
	if err != nil {
		t.Fatal(err)
	}
	h.AddAddrs(target.ID(), target.Addrs())
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.Connect(ctx, target.ID()); err != nil {
		t.Fatal(err)
	}
}

func TestRoomMembersFindEachOtherThroughTheDHT(t *testing.T) {
	b := newTestHost(t)
	a := newTestHost(t, bootstrapFrom(b))
	c := newTestHost(t, bootstrapFrom(b))
	for _, h := range []*Host{a, c} {
		waitFor(t, 10*time.Second, "B in A's and C's routing tables", func() bool { return h.dht.RoutingTable().Find(b.ID()) != "" })
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.AdvertiseRendezvous(ctx, testRoom); err != nil {
		t.Fatal(err)
	}
	// Storing a provider record is a one-way message: it lands shortly
	// after AdvertiseRendezvous returns.
	var found []peer.ID
	waitFor(t, 10*time.Second, "C to find A's record", func() bool {
		var err error
		found, err = c.FindRendezvous(ctx, testRoom, 10)
		if err != nil {
			t.Fatal(err)
		}
		return len(found) > 0
	})
	if len(found) != 1 || found[0] != a.ID() {
		t.Fatalf("FindRoomPeers = %v, want [A]", found)
	}
	if other, _ := c.FindRendezvous(ctx, "!another:room", 10); len(other) != 0 {
		t.Fatalf("FindRoomPeers of another room = %v, want none", other)
	}
}

// libp2p's own address list can be empty (it fills it in the background);
// an invite link made at that moment must still carry an address.
func TestAddrsListsBoundAddressesWhenLibp2pListsNone(t *testing.T) {
	h, err := New(Config{
		Key: newKey(t), NoMDNS: true, NoPortMap: true,
		ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0", "/ip4/0.0.0.0/udp/0/quic-v1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	h.addrs.only = func([]ma.Multiaddr) []ma.Multiaddr { return nil }
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	if n := len(h.LibP2P().Addrs()); n != 0 {
		t.Fatalf("libp2p lists %d addresses; the test needs it to list none", n)
	}
	addrs := h.Addrs()
	joined := strings.Join(addrs, " ")
	if !strings.Contains(joined, "/ip4/127.0.0.1/tcp/"+boundPort(t, h, ma.P_TCP)) || !strings.Contains(joined, "/quic-v1/p2p/") {
		t.Fatalf("Addrs = %v, want the bound TCP port and a QUIC address", addrs)
	}
	if strings.Contains(joined, "/0.0.0.0/") {
		t.Errorf("Addrs reports the unspecified address: %v", addrs)
	}
}
