package p2p

import (
	"context"
	"crypto/ed25519"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	relayclient "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	pbv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/pb"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/proto"
	relayv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	"github.com/marcopolo/simnet"
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

// memberSet is a mutable Config.Members for tests.
type memberSet struct {
	mu  sync.Mutex
	ids map[peer.ID]bool
}

func newMemberSet(ids ...peer.ID) *memberSet {
	m := &memberSet{ids: make(map[peer.ID]bool)}
	for _, p := range ids {
		m.ids[p] = true
	}
	return m
}

func (m *memberSet) has(p peer.ID) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ids[p]
}

func (m *memberSet) set(p peer.ID, member bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ids[p] = member
}

func (m *memberSet) list() []peer.ID {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []peer.ID
	for p, ok := range m.ids {
		if ok {
			out = append(out, p)
		}
	}
	return out
}

// heldThrough reports whether h holds a reservation with relay.
func heldThrough(h *Host, relay peer.ID) bool {
	for _, r := range h.reservations() {
		if r.Relay == relay {
			return true
		}
	}
	return false
}

// TestMembersRelayForMembers: no relay is configured anywhere. A member that
// is publicly reachable relays for a member behind a NAT, and for nobody
// else; a peer that is not (yet) a member reaches the member through it, as
// a joiner with an invite link does.
func TestMembersRelayForMembers(t *testing.T) {
	keyP, keyN, keyC := newKey(t), newKey(t), newKey(t)
	idP, idN, idC := peerOfKey(t, keyP), peerOfKey(t, keyN), peerOfKey(t, keyC)
	membersOfP := newMemberSet(idN)
	membersOfN := newMemberSet(idP)
	p := newTestHost(t, func(c *Config) {
		c.Key = keyP
		c.Members = membersOfP.has
		c.MemberPeers = membersOfP.list
		c.Options = []libp2p.Option{libp2p.ForceReachabilityPublic()}
	})
	n := newTestHost(t, func(c *Config) {
		c.Key = keyN
		c.Members = membersOfN.has
		c.MemberPeers = membersOfN.list
		c.Gater = &relayOnlyGater{far: idC}
		c.Options = []libp2p.Option{libp2p.ForceReachabilityPrivate()}
	})
	joiner := newTestHost(t, func(c *Config) {
		c.Key = keyC
		c.Gater = &relayOnlyGater{far: idN}
	})
	n.Handle(testHandler)
	waitFor(t, 10*time.Second, "the public member's relay service to run", func() bool {
		return p.NetStatus().MemberRelay.Running
	})
	if st := n.NetStatus().MemberRelay; !st.Enabled || st.Running {
		t.Errorf("private member's relay status %+v, want enabled and not running", st)
	}

	t.Run("a member behind a NAT reserves with a public member", func(t *testing.T) {
		start := time.Now()
		connect(t, n, p)
		waitFor(t, 10*time.Second, "a reservation with the public member", func() bool { return heldThrough(n, idP) })
		t.Logf("connect, identify and reserve with a member: %v", time.Since(start).Round(time.Millisecond))
		waitFor(t, 5*time.Second, "the relay to count the reservation", func() bool {
			return p.NetStatus().MemberRelay.Reservations == 1
		})
		want := "/p2p/" + idP.String() + "/p2p-circuit/p2p/" + idN.String()
		waitFor(t, 5*time.Second, "a circuit address through the member", func() bool {
			return slices.ContainsFunc(n.Addrs(), func(s string) bool { return strings.HasSuffix(s, want) })
		})
	})

	t.Run("a peer that is not a member reaches the member through the relay", func(t *testing.T) {
		fromC := watchConns(joiner, idN)
		joiner.AddAddrs(idN, n.RelayAddrs())
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp, err := joiner.Request(ctx, idN, "echo", []byte("through a member"))
		if err != nil || string(resp) != "through a member" {
			t.Fatalf("request through the member relay = %q, %v", resp, err)
		}
		fromC.check(t, "joiner")
		for _, c := range joiner.LibP2P().Network().ConnsToPeer(idN) {
			st := c.Stat()
			if relay, ok := circuitRelay(c.RemoteMultiaddr()); !ok || relay != idP {
				t.Errorf("connection %s is not through the member %s", c.RemoteMultiaddr(), idP.ShortString())
			}
			if st.Extra[relayclient.StatLimitDuration] != memberRelayDuration || st.Extra[relayclient.StatLimitData] != uint64(memberRelayData) {
				t.Errorf("relayed connection limits %v, want the member relay's", st.Extra)
			}
		}
		if got := p.NetStatus().MemberRelay.Refused; got != 0 {
			t.Errorf("refused = %d after a non-member reached a member, want 0", got)
		}
	})

	t.Run("a peer that is not a member cannot reserve", func(t *testing.T) {
		stranger := newTestHost(t)
		connect(t, stranger, p)
		before := p.NetStatus().MemberRelay.Refused
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := relayclient.Reserve(ctx, stranger.LibP2P(), peer.AddrInfo{ID: idP}); err == nil {
			t.Fatal("a non-member's reservation was accepted")
		}
		if got := p.NetStatus().MemberRelay.Refused; got != before+1 {
			t.Errorf("refused = %d, want %d", got, before+1)
		}
		if got := p.NetStatus().MemberRelay.Reservations; got != 1 {
			t.Errorf("reservations = %d, want 1 (the member's)", got)
		}
	})

	t.Run("no circuit reaches a peer that is no longer a member", func(t *testing.T) {
		membersOfP.set(idN, false)
		other := newTestHost(t, func(c *Config) { c.Gater = &relayOnlyGater{far: idN} })
		other.AddAddrs(idN, n.RelayAddrs())
		before := p.NetStatus().MemberRelay.Refused
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := other.LibP2P().Connect(allowLimited(ctx), peer.AddrInfo{ID: idN})
		if err == nil {
			t.Fatal("a circuit to a former member was relayed")
		}
		if got := p.NetStatus().MemberRelay.Refused; got <= before {
			t.Errorf("refused = %d, want more than %d", got, before)
		}
		if !heldThrough(n, idP) {
			t.Error("the former member lost its reservation; the refusal should come from the ACL alone")
		}
	})

	t.Run("a member that stops being public stops relaying, and its reservations end", func(t *testing.T) {
		emitter, err := p.LibP2P().EventBus().Emitter(new(event.EvtLocalReachabilityChanged))
		if err != nil {
			t.Fatal(err)
		}
		defer emitter.Close()
		start := time.Now()
		if err := emitter.Emit(event.EvtLocalReachabilityChanged{Reachability: network.ReachabilityPrivate}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 5*time.Second, "the relay service to stop", func() bool {
			st := p.NetStatus().MemberRelay
			return !st.Running && st.Reservations == 0
		})
		waitFor(t, 5*time.Second, "the reservation to end", func() bool { return !heldThrough(n, idP) && len(n.RelayAddrs()) == 0 })
		t.Logf("relay service stopped to reservation dropped: %v", time.Since(start).Round(time.Millisecond))
	})
}

// TestRelayCandidatesPutLongestOfferingMembersFirst: among members that offer
// the relay service, the one seen offering it longest comes first, and a
// member that stops offering it is no candidate.
func TestRelayCandidatesPutLongestOfferingMembersFirst(t *testing.T) {
	// A host that has not started (no relay loop to share hopSince
	// with), a bare libp2p host for its peerstore and connections, and
	// three members connected to it. Which of them offer the relay
	// service is set in the peerstore, as identify would.
	lh, err := libp2p.New(libp2p.NoListenAddrs)
	if err != nil {
		t.Fatal(err)
	}
	defer lh.Close()
	var ids []peer.ID
	for range 3 {
		m, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		if err := lh.Connect(context.Background(), peer.AddrInfo{ID: m.ID(), Addrs: m.Addrs()}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.ID())
	}
	members := newMemberSet(ids...)
	h, err := New(Config{Key: newKey(t), Members: members.has, MemberPeers: members.list})
	if err != nil {
		t.Fatal(err)
	}
	offer := func(p peer.ID, on bool) {
		if on {
			lh.Peerstore().AddProtocols(p, proto.ProtoIDv2Hop)
		} else {
			lh.Peerstore().RemoveProtocols(p, proto.ProtoIDv2Hop)
		}
	}
	order := func(now time.Time) []peer.ID {
		var out []peer.ID
		for _, ai := range h.relayCandidates(lh, now) {
			out = append(out, ai.ID)
		}
		return out
	}
	away := peerOfKey(t, newKey(t)) // a member not connected now
	members.set(away, true)
	offer(away, true)
	t0 := time.Now()
	offer(ids[2], true)
	if got := order(t0); !slices.Equal(got, []peer.ID{ids[2]}) {
		t.Fatalf("candidates %v, want only the connected member offering the relay service", got)
	}
	offer(ids[0], true)
	offer(ids[1], true)
	if got := order(t0.Add(time.Minute)); got[0] != ids[2] || len(got) != 3 {
		t.Errorf("candidates %v, want %s first", got, ids[2].ShortString())
	}
	offer(ids[2], false)
	if got := order(t0.Add(2 * time.Minute)); slices.Contains(got, ids[2]) || len(got) != 2 {
		t.Errorf("candidates %v, want the two members still offering", got)
	}
	offer(ids[2], true) // back after flapping: last
	if got := order(t0.Add(3 * time.Minute)); len(got) != 3 || got[2] != ids[2] {
		t.Errorf("candidates %v, want the flapping member last", got)
	}
}

// renewalCounter is a relay service's metrics tracer that counts
// reservations made and renewed.
type renewalCounter struct {
	made, renewed atomic.Int64
}

func (c *renewalCounter) ReservationAllowed(isRenewal bool) {
	if isRenewal {
		c.renewed.Add(1)
	} else {
		c.made.Add(1)
	}
}
func (*renewalCounter) RelayStatus(bool)                      {}
func (*renewalCounter) ConnectionOpened()                     {}
func (*renewalCounter) ConnectionClosed(time.Duration)        {}
func (*renewalCounter) ConnectionRequestHandled(pbv2.Status)  {}
func (*renewalCounter) ReservationClosed(int)                 {}
func (*renewalCounter) ReservationRequestHandled(pbv2.Status) {}
func (*renewalCounter) BytesTransferred(int)                  {}

// TestReservationIsRenewedBeforeItEnds: with a relay whose reservations last
// a few seconds, the host renews its reservation before each one ends, with
// the same relay, and keeps its circuit address throughout.
func TestReservationIsRenewedBeforeItEnds(t *testing.T) {
	const ttl = 2 * time.Second
	rc := relayv2.DefaultResources()
	rc.ReservationTTL = ttl
	counter := &renewalCounter{}
	relay, err := libp2p.New(
		libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"),
		libp2p.ForceReachabilityPublic(),
		libp2p.EnableRelayService(relayv2.WithResources(rc), relayv2.WithMetricsTracer(counter)),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { relay.Close() })
	full, err := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: relay.ID(), Addrs: relay.Addrs()})
	if err != nil {
		t.Fatal(err)
	}
	h := newTestHost(t, func(c *Config) {
		c.Relays = []string{full[0].String()}
		c.Options = []libp2p.Option{libp2p.ForceReachabilityPrivate()}
	})
	waitFor(t, 10*time.Second, "a reservation", func() bool { return heldThrough(h, relay.ID()) })
	first := h.reservations()[0].Expires
	start := time.Now()
	waitFor(t, 4*ttl, "two renewals, the second after the first reservation would have ended", func() bool {
		rs := h.reservations()
		return counter.renewed.Load() >= 2 && len(rs) == 1 && rs[0].Expires.After(first.Add(ttl/2)) && time.Now().After(first)
	})
	elapsed := time.Since(start)
	if made := counter.made.Load(); made != 1 {
		t.Errorf("the relay made %d reservations, want 1 renewed in place", made)
	}
	if len(h.RelayAddrs()) == 0 {
		t.Error("circuit address lost during renewal")
	}
	// Each renewal waits for three quarters of the reservation (of at
	// least a second: expiry times are whole seconds), not 100 ms as when
	// a reservation shorter than refreshBefore was renewed on every look.
	if renewed, bound := counter.renewed.Load(), int64(elapsed/(500*time.Millisecond))+2; renewed > bound {
		t.Errorf("%d renewals in %v, want at most %d", renewed, elapsed.Round(time.Millisecond), bound)
	}
	t.Logf("TTL %v: %d renewals in %v", ttl, counter.renewed.Load(), elapsed.Round(time.Millisecond))
}

// TestDeadRelayIsReplacedByTheNextCandidate: when a relay the host holds a
// reservation with goes away, the host reserves with the next candidate at
// once, and its addresses change to match.
func TestDeadRelayIsReplacedByTheNextCandidate(t *testing.T) {
	var relays []*Host
	var addrs []string
	for range 3 {
		r := newTestHost(t, func(c *Config) { c.RelayService = true })
		relays = append(relays, r)
		addrs = append(addrs, r.Addrs()[0])
	}
	var addrEvents atomic.Int64
	h := newTestHost(t, func(c *Config) {
		c.Relays = addrs
		c.Options = []libp2p.Option{libp2p.ForceReachabilityPrivate()}
	})
	h.OnAddrsChanged(func() { addrEvents.Add(1) })
	waitFor(t, 10*time.Second, "reservations with the first two relays", func() bool {
		return heldThrough(h, relays[0].ID()) && heldThrough(h, relays[1].ID())
	})
	if heldThrough(h, relays[2].ID()) {
		t.Fatal("more than two reservations")
	}
	circuitVia := func(r *Host) bool {
		return slices.ContainsFunc(h.Addrs(), func(s string) bool { return strings.Contains(s, "/p2p/"+r.ID().String()+"/p2p-circuit") })
	}
	waitFor(t, 5*time.Second, "circuit addresses through both", func() bool { return circuitVia(relays[0]) && circuitVia(relays[1]) })
	before := addrEvents.Load()

	start := time.Now()
	if err := relays[0].Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "a reservation with the third relay", func() bool { return heldThrough(h, relays[2].ID()) })
	reserved := time.Since(start)
	waitFor(t, 5*time.Second, "the addresses to follow", func() bool {
		return circuitVia(relays[2]) && !circuitVia(relays[0]) && addrEvents.Load() > before
	})
	t.Logf("relay closed to new reservation: %v; to new circuit address announced: %v",
		reserved.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	if heldThrough(h, relays[0].ID()) || !heldThrough(h, relays[1].ID()) {
		t.Errorf("reservations %+v, want the second and third relays", h.reservations())
	}
}

// TestPublicMemberReachedFromOutsideRelaysWithoutAutoNAT: a member on a
// public address whose peers are all behind NATs gets no AutoNAT verdict
// (AutoNAT v1 asks only peers with public addresses). An inbound connection
// from the internet to its public address is proof enough: it relays for
// the member that reached it, and stops once that proof is old. Loopback
// counts as private, so this runs on simnet (holepunch_test.go).
func TestPublicMemberReachedFromOutsideRelaysWithoutAutoNAT(t *testing.T) {
	router := &simnet.SimpleFirewallRouter{}
	keyP, keyM := newKey(t), newKey(t)
	idP, idM := peerOfKey(t, keyP), peerOfKey(t, keyM)
	p := newTestHost(t, func(c *Config) {
		c.Key = keyP
		c.ListenAddrs = []string{"/ip4/1.2.0.1/udp/4001/quic-v1"}
		c.Members = newMemberSet(idM).has
		c.MemberPeers = newMemberSet(idM).list
		c.Options = []libp2p.Option{onSimnet(router, true)}
	})
	gate := &apartGater{far: idP}
	gate.released.Store(true)
	m := newTestHost(t, func(c *Config) {
		c.Key = keyM
		c.Gater = gate
		c.ListenAddrs = []string{"/ip4/2.2.0.1/udp/4001/quic-v1"}
		c.Members = newMemberSet(idP).has
		c.MemberPeers = newMemberSet(idP).list
		c.Options = []libp2p.Option{onSimnet(router, false), libp2p.ForceReachabilityPrivate()}
	})
	if st := p.NetStatus().MemberRelay; !st.Enabled || st.Running {
		t.Fatalf("member relay %+v before anyone reached the node, want enabled and not running", st)
	}
	// A connection the node dialled proves nothing: a node behind a NAT
	// dials out too.
	q := newTestHost(t, func(c *Config) {
		c.ListenAddrs = []string{"/ip4/1.2.0.2/udp/4001/quic-v1"}
		c.Options = []libp2p.Option{onSimnet(router, true)}
	})
	connect(t, p, q)
	waitFor(t, 10*time.Second, "q to count the connection from p as proof", func() bool { return q.NetStatus().MemberRelay.Running })
	if p.NetStatus().MemberRelay.Running {
		t.Fatal("the member relay runs after an outbound connection only")
	}

	start := time.Now()
	connect(t, m, p)
	waitFor(t, 10*time.Second, "the member relay to run", func() bool { return p.NetStatus().MemberRelay.Running })
	t.Logf("inbound connection to member relay running: %v", time.Since(start).Round(time.Millisecond))
	if got := p.Reachability(); got == "public" {
		t.Fatalf("reachability %q: AutoNAT decided, so this shows nothing of the inbound proof", got)
	}
	waitFor(t, 10*time.Second, "the member behind the firewall to reserve", func() bool { return heldThrough(m, idP) })
	t.Logf("inbound connection to reservation: %v", time.Since(start).Round(time.Millisecond))

	// The member goes away and nothing else reaches the node: once the
	// proof is older than its TTL (shortened here), the relay stops.
	p.mr.proof.ttl.Store(int64(200 * time.Millisecond))
	gate.released.Store(false)
	if err := m.LibP2P().Network().ClosePeer(idP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the member relay to stop", func() bool { return !p.NetStatus().MemberRelay.Running })
	if got := p.Reachability(); got == "public" {
		t.Errorf("reachability %q after the member relay stopped", got)
	}
}
