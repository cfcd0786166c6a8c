package p2p

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

func TestLinkAddrsKeepWhatAJoinerElsewhereCanDial(t *testing.T) {
	const id = "/p2p/12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo"
	const relay = "/ip4/5.6.7.8/tcp/4001/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA/p2p-circuit"
	v4 := func(i int) string { return fmt.Sprintf("/ip4/1.2.3.%d/tcp/4001%s", i, id) }
	v6 := func(i int) string { return fmt.Sprintf("/ip6/2a01:4f8::%d/udp/4001/quic-v1%s", i, id) }
	circ := func(i int) string {
		return fmt.Sprintf("/ip4/5.6.7.%d/tcp/4001/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA/p2p-circuit%s", i, id)
	}
	cases := []struct {
		name string
		in   []string
		want []string
	}{
		{"public and circuit kept, LAN and loopback dropped, IPv4 before IPv6 before circuit",
			[]string{"/ip4/127.0.0.1/tcp/4001" + id, "/ip4/192.168.1.2/tcp/4001" + id, relay + id, "/ip6/2a01:4f8::1/udp/4001/quic-v1" + id, "/ip4/1.2.3.4/tcp/4001" + id},
			[]string{"/ip4/1.2.3.4/tcp/4001" + id, "/ip6/2a01:4f8::1/udp/4001/quic-v1" + id, relay + id}},
		{"LAN only keeps LAN",
			[]string{"/ip4/127.0.0.1/tcp/4001" + id, "/ip4/192.168.1.2/tcp/4001" + id, "/ip6/fe80::1/tcp/4001" + id},
			[]string{"/ip4/192.168.1.2/tcp/4001" + id}},
		{"loopback only keeps loopback",
			[]string{"/ip4/127.0.0.1/tcp/4001" + id, "not an address"},
			[]string{"/ip4/127.0.0.1/tcp/4001" + id}},
		{"unique local and documentation IPv6 are not public",
			[]string{"/ip6/fd00::2/tcp/4001" + id, "/ip6/2001:db8::1/tcp/4001" + id, "/ip4/1.2.3.4/tcp/4001" + id},
			[]string{"/ip4/1.2.3.4/tcp/4001" + id}},
		{"many addresses are capped, each kind represented",
			[]string{v6(1), v6(2), v6(3), v6(4), v6(5), v6(6), v6(7), v6(8), v4(1), v4(2), v4(3), circ(1), circ(2)},
			[]string{v4(1), v4(2), v4(3), v6(1), v6(2), v6(3), circ(1), circ(2)}},
		{"nothing", nil, nil},
	}
	for _, c := range cases {
		if got := LinkAddrs(c.in); !slices.Equal(got, c.want) {
			t.Errorf("%s:\n got %q\nwant %q", c.name, got, c.want)
		}
	}
}

func TestIdentifyAddrsDropLoopbackWhenThereIsAnythingElse(t *testing.T) {
	const circuit = "/ip4/127.0.0.1/tcp/9/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA/p2p-circuit"
	cases := []struct {
		name     string
		in, want []string
	}{
		{"loopback beside a LAN address goes",
			[]string{"/ip4/127.0.0.1/tcp/1", "/ip6/::1/tcp/1", "/ip4/192.168.1.2/tcp/1"},
			[]string{"/ip4/192.168.1.2/tcp/1"}},
		{"loopback alone stays",
			[]string{"/ip4/127.0.0.1/tcp/1", "/ip6/::1/udp/1/quic-v1"},
			[]string{"/ip4/127.0.0.1/tcp/1", "/ip6/::1/udp/1/quic-v1"}},
		{"a circuit through a loopback relay is kept and is not 'anything else'",
			[]string{"/ip4/127.0.0.1/tcp/1", circuit},
			[]string{"/ip4/127.0.0.1/tcp/1", circuit}},
		{"link-local and unspecified go",
			[]string{"/ip6/fe80::1/tcp/1", "/ip4/0.0.0.0/tcp/1", "/ip6/2a01:4f8::1/tcp/1"},
			[]string{"/ip6/2a01:4f8::1/tcp/1"}},
	}
	for _, c := range cases {
		var in []ma.Multiaddr
		for _, s := range c.in {
			in = append(in, ma.StringCast(s))
		}
		var got []string
		for _, a := range identifyAddrs(in) {
			got = append(got, a.String())
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s:\n got %q\nwant %q", c.name, got, c.want)
		}
	}
}

// canBindIPv6 reports whether the machine has IPv6 loopback.
func canBindIPv6(t *testing.T) bool {
	t.Helper()
	l, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		return false
	}
	l.Close()
	return true
}

func TestHostListensOnBothFamilies(t *testing.T) {
	if !canBindIPv6(t) {
		t.Skip("no IPv6 on this machine (cannot bind [::1])")
	}
	both := func(c *Config) {
		c.ListenAddrs = []string{
			"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1",
			"/ip6/::1/tcp/0", "/ip6/::1/udp/0/quic-v1",
		}
	}
	b := newTestHost(t, both)
	var v6 []string
	for _, s := range b.Addrs() {
		if strings.HasPrefix(s, "/ip6/::1/") {
			v6 = append(v6, s)
		}
	}
	if len(v6) != 2 {
		t.Fatalf("Addrs = %v, want a TCP and a QUIC address on ::1", b.Addrs())
	}
	// Another host reaches it over IPv6 alone.
	for _, s := range v6 {
		a := newTestHost(t, both)
		a.AddAddrs(b.ID(), []string{s})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := a.Connect(ctx, b.ID())
		cancel()
		if err != nil {
			t.Fatalf("connect over %s: %v", s, err)
		}
		conns := a.LibP2P().Network().ConnsToPeer(b.ID())
		if len(conns) == 0 || !isIP6(conns[0].RemoteMultiaddr()) {
			t.Errorf("connected over %v, want IPv6", conns)
		}
	}
}

// The port check binds by family: a plain "tcp" bind of [::] is dual-stack
// and would clash with the node's own IPv4 listener on the same port.
func TestPortCheckTellsIPv4AndIPv6Apart(t *testing.T) {
	if !canBindIPv6(t) {
		t.Skip("no IPv6 on this machine (cannot bind [::1])")
	}
	v4, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer v4.Close()
	p4 := v4.Addr().(*net.TCPAddr).Port
	if err := checkTCPPortFree(ma.StringCast(fmt.Sprintf("/ip6/::/tcp/%d", p4))); err != nil {
		t.Errorf("IPv6 port %d counted as busy because IPv4 holds it: %v", p4, err)
	}
	if err := checkTCPPortFree(ma.StringCast(fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", p4))); err == nil {
		t.Errorf("busy IPv4 port %d counted as free", p4)
	}

	v6, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Fatal(err)
	}
	defer v6.Close()
	p6 := v6.Addr().(*net.TCPAddr).Port
	if err := checkTCPPortFree(ma.StringCast(fmt.Sprintf("/ip6/::1/tcp/%d", p6))); err == nil {
		t.Errorf("busy IPv6 port %d counted as free", p6)
	}

	// A host that listens on one port in both families starts.
	v4.Close()
	v6.Close()
	h := newTestHost(t, func(c *Config) {
		c.ListenAddrs = []string{fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", p4), fmt.Sprintf("/ip6/::/tcp/%d", p4)}
	})
	if got := listening(h); len(got) != 2 {
		t.Errorf("listening on %v, want both families", got)
	}
}

// The defaults' shape: one port, TCP and QUIC, IPv4 and IPv6 (the
// defaults themselves use 4001, which another program may hold here).
func TestOnePortBindsInBothFamiliesOverBothTransports(t *testing.T) {
	if !canBindIPv6(t) {
		t.Skip("no IPv6 on this machine (cannot bind [::1])")
	}
	var listen []string
	for _, s := range DefaultListenAddrs {
		listen = append(listen, strings.Replace(s, "/4001", "/"+freePort(t), 1))
	}
	h := newTestHost(t, func(c *Config) { c.ListenAddrs = listen })
	if got := listening(h); len(got) != len(listen) {
		t.Errorf("listening on %v, want %v", got, listen)
	}
}

// freePort returns a port that was free on all interfaces for TCP and UDP
// in both families a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", ":0") // dual-stack: both families
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		u, err := net.ListenPacket("udp", fmt.Sprintf(":%d", port))
		if err != nil {
			continue
		}
		u.Close()
		return fmt.Sprint(port)
	}
	t.Fatal("no port free for both TCP and UDP")
	return ""
}

// listening returns h's listen addresses, the relay transport's aside.
func listening(h *Host) []ma.Multiaddr {
	return slices.DeleteFunc(h.LibP2P().Network().ListenAddresses(), isCircuit)
}

// The default IPv6 addresses are best-effort: a host without IPv6 starts on
// IPv4. An IPv6 address given explicitly must bind.
func TestDefaultIPv6IsSkippedWhenItCannotBind(t *testing.T) {
	for _, s := range []string{"/ip6/::/tcp/4001", "/ip6/::/udp/4001/quic-v1"} {
		if !slices.Contains(DefaultListenAddrs, s) {
			t.Errorf("DefaultListenAddrs = %v, want %s among them", DefaultListenAddrs, s)
		}
	}
	// 2001:db8::1 is on no interface: binding it fails as on a host
	// without IPv6.
	listen := []string{"/ip4/127.0.0.1/tcp/0", "/ip6/2001:db8::1/tcp/0", "/ip6/2001:db8::1/udp/0/quic-v1"}
	for _, defaults := range []bool{true, false} {
		t.Run(fmt.Sprintf("defaults=%v", defaults), func(t *testing.T) {
			h, err := New(Config{Key: newKey(t), NoMDNS: true, NoPortMap: true, ListenAddrs: listen})
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close()
			h.listenDefault = defaults
			err = h.Start(context.Background())
			if !defaults {
				if err == nil || !strings.Contains(err.Error(), "2001:db8::1") {
					t.Fatalf("Start = %v, want an error naming the IPv6 address", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Start = %v, want the IPv6 addresses skipped", err)
			}
			got := listening(h)
			if len(got) != 1 || isIP6(got[0]) {
				t.Errorf("listening on %v, want the IPv4 address only", got)
			}
		})
	}
}

// A reservation's circuit addresses reach libp2p's own address list, and so
// identify and the relay's peerstore, as soon as they settle: without
// waiting for AutoNAT to call the node private (reachability here stays
// unknown, as on a node just started).
func TestCircuitAddrsReachIdentifyWithoutAutoNAT(t *testing.T) {
	r := newTestHost(t, func(c *Config) { c.RelayService = true })
	start := time.Now()
	a := newTestHost(t, func(c *Config) { c.Relays = r.Addrs() })
	hasCircuit := func(addrs []ma.Multiaddr) bool { return slices.ContainsFunc(addrs, isCircuit) }
	waitFor(t, 10*time.Second, "circuit addresses in libp2p's list", func() bool { return hasCircuit(a.LibP2P().Addrs()) })
	inList := time.Since(start)
	waitFor(t, 10*time.Second, "circuit addresses in the relay's peerstore", func() bool {
		return hasCircuit(r.LibP2P().Peerstore().Addrs(a.ID()))
	})
	t.Logf("circuit addresses in libp2p's list %v after start, at the relay %v", inList.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	if got := a.Reachability(); got == "private" {
		t.Errorf("reachability %s: the test means to show circuit addresses before AutoNAT decides", got)
	}
	if st := a.NetStatus(); len(st.Reservations) != 1 || st.Reservations[0].Relay != r.ID() {
		t.Errorf("NetStatus reservations = %+v, want one with the relay", st.Reservations)
	}
}

// A node listening on every interface tells peers its interface addresses,
// not loopback, when it has any.
func TestIdentifyLeavesOutLoopbackBesideOtherAddrs(t *testing.T) {
	h := newTestHost(t, func(c *Config) { c.ListenAddrs = []string{"/ip4/0.0.0.0/tcp/0"} })
	addrs := h.LibP2P().Addrs()
	if len(addrs) == 0 {
		t.Fatal("libp2p lists no address")
	}
	if slices.ContainsFunc(addrs, func(a ma.Multiaddr) bool { return !manet.IsIPLoopback(a) }) {
		if slices.ContainsFunc(addrs, manet.IsIPLoopback) {
			t.Errorf("libp2p's addresses %v include loopback beside others", addrs)
		}
	} else {
		t.Logf("this machine has only loopback: %v", addrs)
	}
}

func TestAddrsChangedHooksRunOnceForABurst(t *testing.T) {
	h, err := New(Config{Key: newKey(t), NoMDNS: true, NoPortMap: true, ListenAddrs: loopbackListen})
	if err != nil {
		t.Fatal(err)
	}
	calls := make(chan struct{}, 10)
	h.OnAddrsChanged(func() { calls <- struct{}{} })
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	// Wait for libp2p's first address list to have been reported.
	waitFor(t, 5*time.Second, "a first call", func() bool { return len(calls) > 0 })
	for len(calls) > 0 {
		<-calls
	}
	for range 5 {
		h.addrsChanged()
	}
	select {
	case <-calls:
	case <-time.After(5 * time.Second):
		t.Fatal("no call after a change")
	}
	// A second listen address is a change libp2p reports.
	if err := h.LibP2P().Network().Listen(ma.StringCast("/ip4/127.0.0.1/tcp/0")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-calls:
	case <-time.After(10 * time.Second):
		t.Fatal("no call after libp2p's addresses changed")
	}
	if n := len(calls); n > 1 {
		t.Errorf("%d more calls, want at most one per change", n)
	}
}

func TestTreatAsPublicForTests(t *testing.T) {
	saved := manet.Private4
	t.Cleanup(func() { manet.Private4 = saved })
	lab := ma.StringCast("/ip4/100.64.1.2/udp/4001/quic-v1")
	home := ma.StringCast("/ip4/192.168.1.2/udp/4001/quic-v1")
	if manet.IsPublicAddr(lab) {
		t.Fatal("100.64.1.2 is public before the call")
	}
	for _, bad := range []string{"10.0.0.0/8", "192.168.0.0/16", "100.64.0.0/11", "100.64.0.1/10", "0.0.0.0/0", "garbage", ""} {
		if err := TreatAsPublicForTests(bad); err == nil {
			t.Errorf("TreatAsPublicForTests(%q) accepted", bad)
		}
	}
	if len(manet.Private4) != len(saved) || manet.IsPublicAddr(lab) {
		t.Fatal("a refused call changed the private ranges")
	}
	if err := TreatAsPublicForTests("100.64.0.0/10"); err != nil {
		t.Fatal(err)
	}
	if !manet.IsPublicAddr(lab) {
		t.Error("100.64.1.2 is not public after the call")
	}
	if manet.IsPublicAddr(home) {
		t.Error("192.168.1.2 became public")
	}
	if got := LinkAddrs([]string{home.String(), lab.String()}); !slices.Equal(got, []string{lab.String()}) {
		t.Errorf("LinkAddrs = %v, want the lab address only", got)
	}
	if err := TreatAsPublicForTests("100.64.0.0/10"); err != nil {
		t.Errorf("a second call: %v", err)
	}
}

func TestNetStatusReportsPortMappingAndNATType(t *testing.T) {
	t.Run("port mapping is on by default for a host that listens beyond loopback", func(t *testing.T) {
		// Not started: nothing is sent to any router.
		h, err := New(Config{Key: newKey(t), ListenAddrs: []string{"/ip4/0.0.0.0/tcp/0"}, PublicNetwork: true})
		if err != nil {
			t.Fatal(err)
		}
		st := h.NetStatus()
		if !st.PortMapping.Enabled || st.PortMapping.Found || len(st.PortMapping.Mapped) != 0 {
			t.Errorf("PortMapping = %+v, want enabled, nothing found yet", st.PortMapping)
		}
		if !st.PublicNetwork || st.NATType != "unknown" || st.Reachability != "unknown" {
			t.Errorf("NetStatus = %+v, want public network on, NAT type and reachability unknown", st)
		}
	})
	t.Run("off when turned off or when only loopback listens", func(t *testing.T) {
		for _, cfg := range []Config{
			{Key: newKey(t), ListenAddrs: []string{"/ip4/0.0.0.0/tcp/0"}, NoPortMap: true},
			{Key: newKey(t), ListenAddrs: loopbackListen},
		} {
			h, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if st := h.NetStatus(); st.PortMapping.Enabled || st.PublicNetwork {
				t.Errorf("listening on %v, NoPortMap %v: NetStatus = %+v, want port mapping and public network off", cfg.ListenAddrs, cfg.NoPortMap, st)
			}
		}
	})
	t.Run("a running host on loopback", func(t *testing.T) {
		h := newTestHost(t)
		st := h.NetStatus()
		if st.NATType != "unknown" || st.PortMapping.Enabled || st.PortMapping.Mapped == nil {
			t.Errorf("NetStatus = %+v, want NAT type unknown, port mapping off, an empty mapped list", st)
		}
	})
	t.Run("NAT type from what the node saw", func(t *testing.T) {
		p1, p2 := peer.ID("p1"), peer.ID("p2")
		end := func(p peer.ID, ok bool) *holepunch.Event {
			return &holepunch.Event{Remote: p, Type: holepunch.EndHolePunchEvtT, Evt: &holepunch.EndHolePunchEvt{Success: ok}}
		}
		cases := []struct {
			name   string
			events []*holepunch.Event
			mapped []string
			want   string
		}{
			{"nothing seen", nil, nil, "unknown"},
			{"one peer failed twice", []*holepunch.Event{end(p1, false), end(p1, false)}, nil, "unknown"},
			{"two peers failed", []*holepunch.Event{end(p1, false), end(p2, false)}, nil, "symmetric"},
			{"a success wins over failures", []*holepunch.Event{end(p1, false), end(p2, false), end(p2, true)}, nil, "cone"},
			{"a mapped port wins over hole punching", []*holepunch.Event{end(p1, true)}, []string{"/ip4/1.2.3.4/tcp/4001"}, "mapped"},
			{"other events do not count", []*holepunch.Event{{Remote: p1, Type: holepunch.StartHolePunchEvtT, Evt: &holepunch.StartHolePunchEvt{}}}, nil, "unknown"},
		}
		for _, c := range cases {
			h := &Host{}
			h.addrs.init()
			for _, e := range c.events {
				h.addrs.punches.Trace(e)
			}
			if got := h.natType(nil, PortMapping{Mapped: c.mapped}); got != c.want {
				t.Errorf("%s: NAT type %q, want %q", c.name, got, c.want)
			}
		}
	})
}
