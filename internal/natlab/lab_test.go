//go:build linux

package natlab

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/parley-p2p/parley/internal/testkit"
)

// parley is the command under test, built once per run.
var parley = testkit.Binary{Name: "parley", Pkg: "github.com/parley-p2p/parley/cmd/parley", Flags: []string{"-ldflags", "-s -w"}}

func TestMain(m *testing.M) {
	code := m.Run()
	parley.Remove()
	printTable()
	os.Exit(code)
}

var (
	setupOnce sync.Once
	setupSkip string
	labBin    *Binary
	binErr    error
)

// setup skips the test where the lab cannot run, and returns the built
// binary and the lab's internet prefix: 100.64.0 when the binary can be
// told that 100.64.0.0/10 is public, else 11.0.0 (public-looking
// addresses, which never leave the lab's namespaces).
func setup(t *testing.T) (*Binary, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("natlab: starts daemons in network namespaces")
	}
	setupOnce.Do(func() {
		if err := Available(); err != nil {
			setupSkip = err.Error()
		}
	})
	if setupSkip != "" {
		t.Skip(setupSkip)
	}
	path := parley.Path(t)
	if labBin == nil && binErr == nil {
		labBin, binErr = Inspect(path)
	}
	if binErr != nil {
		t.Fatal(binErr)
	}
	net := os.Getenv("PARLEY_LAB_NET")
	switch {
	case net != "":
		if ip, err := netip.ParseAddr(net + ".0"); err != nil || !ip.Is4() || ip.IsLoopback() || netip.MustParsePrefix("192.168.0.0/16").Contains(ip) {
			t.Fatalf("PARLEY_LAB_NET=%q: want three octets such as 100.64.0, outside 127/8 and 192.168/16 (the homes' LANs)", net)
		}
	case labBin.PublicEnv():
		net = "100.64.0"
	default:
		net = "11.0.0"
	}
	return labBin, net
}

// A row of the lab's table: one run of one scenario.
type row struct {
	scenario string
	rep      int
	joined   string // how the join connected: "relay" or "direct"
	link     string // the kinds of address the link carried
	path     string // how messages went: "direct" or "relayed", from the routers
	status   string // how the first home's status says it reaches the other
	upgrade  time.Duration
	msgs     stats
	note     string
}

// labSlots caps the scenarios that run at once, whatever -parallel says:
// each runs three to five daemons.
var labSlots = make(chan struct{}, 3)

var table struct {
	mu   sync.Mutex
	rows []row
}

func printTable() {
	table.mu.Lock()
	defer table.mu.Unlock()
	if len(table.rows) == 0 {
		return
	}
	slices.SortFunc(table.rows, func(a, b row) int {
		if c := strings.Compare(a.scenario, b.scenario); c != 0 {
			return c
		}
		return a.rep - b.rep
	})
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "scenario\trep\tlink\tjoined via\tpath\tstatus says\tupgrade\tmsg p50\tmsg max\tnote")
	for _, r := range table.rows {
		up := "-"
		if r.upgrade > 0 {
			up = r.upgrade.Round(time.Millisecond).String()
		}
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%v\t%v\t%s\n", r.scenario, r.rep, r.link, r.joined, r.path, r.status, up,
			r.msgs.p50.Round(100*time.Microsecond), r.msgs.max.Round(100*time.Microsecond), r.note)
	}
	w.Flush()
}

// reps runs the scenario PARLEY_LAB_REPS times (once by default), each in a
// lab of its own, and records each run's row.
func reps(t *testing.T, scenario string, run func(t *testing.T, bin *Binary, net string, r *row)) {
	bin, net := setup(t)
	t.Parallel()
	labSlots <- struct{}{}
	defer func() { <-labSlots }()
	n := 1
	if s := os.Getenv("PARLEY_LAB_REPS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 || v > 100 {
			t.Fatalf("PARLEY_LAB_REPS=%q: want 1..100", s)
		}
		n = v
	}
	for rep := 1; rep <= n; rep++ {
		t.Run(fmt.Sprintf("rep%d", rep), func(t *testing.T) {
			r := &row{scenario: scenario, rep: rep}
			defer func() {
				if t.Failed() {
					r.note = "FAILED " + r.note
				}
				t.Logf("%s: link %s, joined via %s, path %s (status: %s), upgrade %v, messages %v %s", scenario, r.link, r.joined, r.path, r.status, r.upgrade, r.msgs, r.note)
				table.mu.Lock()
				table.rows = append(table.rows, *r)
				table.mu.Unlock()
			}()
			run(t, bin, net, r)
		})
	}
}

// pair is two homes in a room, each with one user, and the lab around them.
type pair struct {
	lab          *Lab
	a, b         *Home
	da, db       *Daemon
	alice, bob   *user
	room         id.RoomID
	relayHost    *Host
	relay        *Daemon
	link, joined string

	t         *testing.T
	joinStart time.Time
	mu        sync.Mutex
	directAt  time.Time // when the routers first saw a direct flow
}

// relayedPair builds a public relay (--relay-service) at Net.10 and two
// homes behind NATs of the given kind, each given the relay with --relay;
// alice (home a) makes a room and a link once her node announces a circuit
// address; bob (home b) joins by the link. Each router counts the bytes it
// sends to the relay (to_relay) and to the other router (to_peer).
func relayedPair(t *testing.T, ctx context.Context, bin *Binary, net string, nat NAT) *pair {
	t.Helper()
	p := &pair{lab: New(t, net), t: t}
	p.relayHost = p.lab.Internet("relay", 10)
	p.a = p.lab.Home("a", 1, nat)
	p.b = p.lab.Home("b", 2, nat)
	p.a.Router.Count("to_relay", p.relayHost.IP)
	p.a.Router.Count("to_peer", p.b.Router.WAN)
	p.b.Router.Count("to_relay", p.relayHost.IP)
	p.b.Router.Count("to_peer", p.a.Router.WAN)

	p.relay = p.relayHost.Start(t, "relay", DaemonConfig{Bin: bin, Args: []string{"--relay-service", "--no-mdns"}})
	homeArgs := []string{"--relay", p.relay.Addr(), "--no-mdns"}
	p.da = p.a.Start(t, "a", DaemonConfig{Bin: bin, Args: homeArgs})
	p.db = p.b.Start(t, "b", DaemonConfig{Bin: bin, Args: homeArgs})
	p.alice = register(t, ctx, p.da, "alice")
	p.bob = register(t, ctx, p.db, "bob")

	start := time.Now()
	testkit.WaitFor(t, 30*time.Second, "alice's node to announce a circuit address", func() bool { return hasCircuitAddr(ctx, p.da) })
	t.Logf("a announced a circuit address %v after its banner", time.Since(start).Round(time.Millisecond))
	p.room = createRoom(t, ctx, p.alice, "across two NATs")
	link, kinds := makeLink(t, ctx, p.alice, p.room, net)
	p.link = strings.Join(kinds, "+")
	p.joinStart = time.Now()
	p.watchDirect()
	took := joinLink(t, ctx, p.bob, p.alice, link, p.room)
	p.joined = "relay"
	if d := p.directAfter(); d > 0 && d <= took {
		p.joined = "direct"
	}
	t.Logf("bob joined by a link carrying %s addresses in %v, via %s", p.link, took.Round(time.Millisecond), p.joined)
	return p
}

// watchDirect notes, for 20 s from the join on, when the routers first
// see a direct flow between the homes (read with directAfter).
func (p *pair) watchDirect() {
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		for time.Since(p.joinStart) < directWatch {
			if p.direct() {
				p.mu.Lock()
				p.directAt = time.Now()
				p.mu.Unlock()
				return
			}
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond): // a polling interval
			}
		}
	}()
	p.t.Cleanup(func() { close(done); <-stopped })
}

// directAfter is how long after the join request the first direct flow
// appeared; 0 while there is none.
func (p *pair) directAfter() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.directAt.IsZero() {
		return 0
	}
	return p.directAt.Sub(p.joinStart)
}

// sinceJoin is the time since the join request.
func (p *pair) sinceJoin() time.Duration { return time.Since(p.joinStart) }

// directWatch is how long after a join the routers are watched for a
// direct flow.
const directWatch = 20 * time.Second

// waitDirect waits up to directWatch after the join for a direct flow and
// returns how long after the join request it appeared.
func (p *pair) waitDirect() time.Duration {
	p.t.Helper()
	if !testkit.Eventually(time.Until(p.joinStart.Add(directWatch)), func() bool { return p.directAfter() > 0 }) {
		p.t.Fatalf("no direct flow between the homes' routers within %v of the join", directWatch)
	}
	return p.directAfter()
}

// direct reports whether a connection between the two homes has gone
// through both routers both ways (a hole punch that worked).
func (p *pair) direct() bool {
	n, err := p.a.Router.AnsweredFlowsTo(p.b.Router.WAN, 0)
	return err == nil && n > 0
}

// directFrom reports whether b's router has an answered flow to a's router
// from b's node on port (so not one left from before a restart).
func (p *pair) directFrom(port int) bool {
	n, err := p.b.Router.AnsweredFlowsTo(p.a.Router.WAN, port)
	return err == nil && n > 0
}

// bytes reads the two routers' counters: to the relay, and to each other.
func (p *pair) bytes(t *testing.T) (relay, peer uint64) {
	t.Helper()
	return p.a.Router.Bytes("to_relay") + p.b.Router.Bytes("to_relay"),
		p.a.Router.Bytes("to_peer") + p.b.Router.Bytes("to_peer")
}

// Messages of the scenarios: how many each way, how long one may take in
// general and once the relay has gone (the issue asks for no stall, every
// message within 1 s; this leaves room for a loaded machine), and the
// most the relay may carry while messages go the direct way.
const (
	msgsEachWay    = 20
	msgDeadline    = 20 * time.Second
	noStallLimit   = 2 * time.Second
	relayIdleBytes = 2 << 10
	minMsgBytes    = 200 // a message event on the wire is larger than this
	// quietBytes is the most a relay may carry while one message passes
	// each way for it to count as quiet: acknowledgements, no message.
	quietBytes = 256
	// moveLimit is how long room traffic may stay on the relay once a
	// direct connection exists (the relayed connection is closed within
	// 30 s).
	moveLimit = 30 * time.Second
	// reconnectLimit is how long a restarted node may take to be found
	// again (before issue 14: ~15-17 s, one redial interval).
	reconnectLimit = 30 * time.Second
)

// TestMasqueradingNATsUpgradeToDirect: two homes behind port-preserving
// NATs, joined through a public relay by link, end up talking directly:
// the routers see a direct flow, and while 20 messages pass each way the
// relay's counters grow by less than 2 KiB and the direct path carries
// them.
func TestMasqueradingNATsUpgradeToDirect(t *testing.T) {
	reps(t, "1 masquerade", func(t *testing.T, bin *Binary, net string, r *row) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		p := relayedPair(t, ctx, bin, net, Masquerade)
		r.link, r.joined = p.link, p.joined
		r.upgrade = p.waitDirect()
		// Room traffic moves to the direct connection some time after it
		// appears, and the relayed connection is closed (where the status
		// counts that: network.paths.relayed_closed) and winds down: then
		// one message each way at a time until the relay carries nothing but
		// a few acknowledgements while they pass.
		closed := "relayed connection closed: not counted by this build"
		if _, ok := findKey(statusOf(ctx, p.da), "relayed_closed"); ok {
			if !testkit.Eventually(moveLimit, func() bool {
				return relayedClosed(ctx, p.da)+relayedClosed(ctx, p.db) >= 1
			}) {
				t.Fatalf("neither home closed the relayed connection within %v of the direct one", moveLimit)
			}
			closed = fmt.Sprintf("relayed connection closed %v after the join", p.sinceJoin().Round(time.Millisecond))
		}
		rounds := 0
		if !testkit.Eventually(moveLimit, func() bool {
			relay0, _ := p.bytes(t)
			exchange(t, ctx, p.alice, p.bob, p.room, 1, fmt.Sprintf("settle %d", rounds), msgDeadline)
			rounds++
			relay1, _ := p.bytes(t)
			return relay1-relay0 < quietBytes
		}) {
			t.Fatalf("%d messages each way later, %v after the direct connection, the relay still carries them", rounds, moveLimit)
		}
		moved := p.sinceJoin()
		relay0, peer0 := p.bytes(t)
		lat := exchange(t, ctx, p.alice, p.bob, p.room, msgsEachWay, "direct", msgDeadline)
		relay1, peer1 := p.bytes(t)
		r.msgs = summarize(lat)
		r.status = statusPath(ctx, p.da, p.db.PeerID)
		r.note = fmt.Sprintf("%s; relay quiet %v after the join (%d rounds); relay +%d B, direct +%d B", closed, moved.Round(time.Millisecond), rounds, relay1-relay0, peer1-peer0)
		r.path = "relayed"
		if peer1-peer0 >= 2*msgsEachWay*minMsgBytes {
			r.path = "direct"
		}
		if relay1-relay0 >= relayIdleBytes {
			t.Errorf("the relay carried %d bytes while %d messages went each way over a direct connection (want < %d): %s", relay1-relay0, msgsEachWay, relayIdleBytes, r.note)
		}
		if r.path != "direct" {
			t.Errorf("the direct path carried %d bytes for %d messages: %s", peer1-peer0, 2*msgsEachWay, r.note)
		}
	})
}

// TestPortRandomisingNATsStayRelayed: behind NATs that give each
// connection a random port (symmetric), hole punching cannot work; the
// relay carries the conversation and every message arrives.
func TestPortRandomisingNATsStayRelayed(t *testing.T) {
	reps(t, "2 random ports", func(t *testing.T, bin *Binary, net string, r *row) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		p := relayedPair(t, ctx, bin, net, RandomPorts)
		r.link, r.joined = p.link, p.joined
		relay0, peer0 := p.bytes(t)
		lat := exchange(t, ctx, p.alice, p.bob, p.room, msgsEachWay, "relayed", msgDeadline)
		relay1, peer1 := p.bytes(t)
		r.msgs = summarize(lat)
		r.status = statusPath(ctx, p.da, p.db.PeerID)
		r.note = fmt.Sprintf("relay +%d B, direct +%d B", relay1-relay0, peer1-peer0)
		r.path = "relayed"
		if p.direct() {
			r.path = "direct"
			t.Errorf("a direct flow went through two port-randomising NATs")
		}
		if relay1-relay0 < 2*msgsEachWay*minMsgBytes {
			t.Errorf("the relay carried only %d bytes for %d messages", relay1-relay0, 2*msgsEachWay)
		}
	})
}

// TestRelayGoneAfterUpgrade: once the homes talk directly, the relay dies;
// messages keep flowing with no stall, each one timed.
func TestRelayGoneAfterUpgrade(t *testing.T) {
	reps(t, "3 relay stopped", func(t *testing.T, bin *Binary, net string, r *row) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		p := relayedPair(t, ctx, bin, net, Masquerade)
		r.link, r.joined = p.link, p.joined
		r.upgrade = p.waitDirect()
		exchange(t, ctx, p.alice, p.bob, p.room, 1, "before", msgDeadline)
		p.relay.Kill()
		lat := exchange(t, ctx, p.alice, p.bob, p.room, msgsEachWay, "relay gone", noStallLimit)
		r.msgs = summarize(lat)
		r.status = statusPath(ctx, p.da, p.db.PeerID)
		r.path = "direct"
	})
}

// TestRestartedHomeIsFoundAgain: bob's node restarts on a new port; alice's
// node reconnects to it and messages flow both ways again.
func TestRestartedHomeIsFoundAgain(t *testing.T) {
	reps(t, "4 restart", func(t *testing.T, bin *Binary, net string, r *row) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		p := relayedPair(t, ctx, bin, net, Masquerade)
		r.link, r.joined = p.link, p.joined
		exchange(t, ctx, p.alice, p.bob, p.room, 1, "before", msgDeadline)
		oldPort := p.db.Port
		p.db.Stop()
		start := time.Now()
		db := p.b.Start(t, "b2", DaemonConfig{Bin: bin, DataDir: p.db.DataDir, Args: []string{"--relay", p.relay.Addr(), "--no-mdns"}})
		if db.Port == oldPort {
			t.Fatalf("restarted on the same port %d", oldPort)
		}
		p.bob.moveTo(t, ctx, db)
		if !testkit.Eventually(reconnectLimit, func() bool { return slices.Contains(peersOf(ctx, p.da), db.PeerID) }) {
			t.Fatalf("alice's node did not reconnect to bob's restarted node within %v", reconnectLimit)
		}
		r.upgrade = time.Since(start)
		r.note = "upgrade = restart to reconnect"
		lat := exchange(t, ctx, p.alice, p.bob, p.room, 5, "after restart", msgDeadline)
		r.msgs = summarize(lat)
		// Not asserted (the issue asks that it be found again): whether the
		// two homes hole-punch again after the restart.
		r.path = "relayed"
		if testkit.Eventually(10*time.Second, func() bool { return p.directFrom(db.Port) }) {
			r.path = "direct"
			r.note += fmt.Sprintf("; direct again %v after the restart", time.Since(start).Round(time.Millisecond))
		} else {
			r.note += "; not direct again within 10 s"
		}
		r.status = statusPath(ctx, p.da, db.PeerID)
	})
}

// TestDirectPathCut: once the homes talk directly, the path between the
// two routers goes dead without a word (both routers drop it); the relay
// is still there, and messages find their way again. Each message's time
// is reported; the test asserts only that each arrives within a minute.
func TestDirectPathCut(t *testing.T) {
	reps(t, "8 direct path cut", func(t *testing.T, bin *Binary, net string, r *row) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		p := relayedPair(t, ctx, bin, net, Masquerade)
		r.link, r.joined = p.link, p.joined
		r.upgrade = p.waitDirect()
		// The steady state: the relayed connection closed, where the
		// status counts that.
		if _, ok := findKey(statusOf(ctx, p.da), "relayed_closed"); ok {
			if !testkit.Eventually(moveLimit, func() bool {
				return relayedClosed(ctx, p.da)+relayedClosed(ctx, p.db) >= 1
			}) {
				t.Fatalf("neither home closed the relayed connection within %v of the direct one", moveLimit)
			}
		}
		exchange(t, ctx, p.alice, p.bob, p.room, 1, "before", msgDeadline)
		p.a.Router.Cut(p.b.Router.WAN)
		p.b.Router.Cut(p.a.Router.WAN)
		start := time.Now()
		relay0, _ := p.bytes(t)
		lat := exchange(t, ctx, p.alice, p.bob, p.room, 5, "after the cut", time.Minute)
		relay1, _ := p.bytes(t)
		r.msgs = summarize(lat)
		r.path = "relayed"
		if relay1-relay0 < 10*minMsgBytes {
			t.Errorf("10 messages arrived after the direct path was cut, but the relay carried only %d bytes", relay1-relay0)
		}
		r.status = statusPath(ctx, p.da, p.db.PeerID)
		r.note = fmt.Sprintf("10 messages after the cut in %v; first a->b %v, first b->a %v", time.Since(start).Round(time.Millisecond),
			lat[0].Round(time.Millisecond), lat[5].Round(time.Millisecond))
	})
}

// TestMDNSOnOneBridge: two nodes on one LAN, no bootstrap and no relay,
// find each other by mDNS, then join by link and chat.
func TestMDNSOnOneBridge(t *testing.T) {
	reps(t, "7 mdns", func(t *testing.T, bin *Binary, net string, r *row) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		lab := New(t, net)
		ha, hb := lab.Internet("a", 31), lab.Internet("b", 32)
		start := time.Now()
		da := ha.Start(t, "a", DaemonConfig{Bin: bin})
		db := hb.Start(t, "b", DaemonConfig{Bin: bin})
		up := time.Since(start)
		start = time.Now()
		if !testkit.Eventually(30*time.Second, func() bool {
			return slices.Contains(peersOf(ctx, da), db.PeerID) && slices.Contains(peersOf(ctx, db), da.PeerID)
		}) {
			t.Fatalf("the nodes did not find each other by mDNS within 30 s")
		}
		r.upgrade, r.joined, r.path = time.Since(start), "direct", "direct"
		r.note = fmt.Sprintf("upgrade = both up (%v) to mDNS connect", up.Round(time.Millisecond))
		alice, bob := register(t, ctx, da, "alice"), register(t, ctx, db, "bob")
		room := createRoom(t, ctx, alice, "on one LAN")
		link, kinds := makeLink(t, ctx, alice, room, net)
		r.link = strings.Join(kinds, "+")
		joinLink(t, ctx, bob, alice, link, room)
		r.msgs = summarize(exchange(t, ctx, alice, bob, room, msgsEachWay, "lan", msgDeadline))
		r.status = statusPath(ctx, da, db.PeerID)
	})
}

// TestMembersRelayForMembers: nobody is given --relay. Pat's node is on
// the internet with no NAT; alice and bob, at home behind masquerading
// NATs, join pat's room by link. Pat's node, found public, relays for the
// room's members, so alice's and bob's nodes reach each other (through it,
// or directly once a hole punch works) and chat. Then a node in none of
// pat's rooms, given pat's node as its relay, is refused.
func TestMembersRelayForMembers(t *testing.T) {
	reps(t, "5 member relay", func(t *testing.T, bin *Binary, net string, r *row) {
		membersRelay(t, bin, net, 1, r)
	})
}

// TestMembersRelayWithTwoPublicMembers is TestMembersRelayForMembers with a
// second public member (quinn), so that each public node has a peer with a
// public address to ask whether it is reachable (AutoNAT v1 asks only
// such peers).
func TestMembersRelayWithTwoPublicMembers(t *testing.T) {
	reps(t, "5b two public members", func(t *testing.T, bin *Binary, net string, r *row) {
		membersRelay(t, bin, net, 2, r)
	})
}

// membersRelay runs the member relay scenario with 1 or 2 public members.
func membersRelay(t *testing.T, bin *Binary, net string, public int, r *row) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	lab := New(t, net)
	pub := lab.Internet("pub", 20)
	a, b, c := lab.Home("a", 1, Masquerade), lab.Home("b", 2, Masquerade), lab.Home("c", 3, Masquerade)
	a.Router.Count("to_pub", pub.IP)
	a.Router.Count("to_peer", b.Router.WAN)
	b.Router.Count("to_pub", pub.IP)
	b.Router.Count("to_peer", a.Router.WAN)
	start := time.Now()
	dp := pub.Start(t, "pub", DaemonConfig{Bin: bin, Args: []string{"--no-mdns"}})
	pat := register(t, ctx, dp, "pat")
	room := createRoom(t, ctx, pat, "a public member relays")
	link, kinds := makeLink(t, ctx, pat, room, net)
	r.link, r.joined = strings.Join(kinds, "+"), "direct"
	if public > 1 {
		dq := lab.Internet("pub2", 21).Start(t, "pub2", DaemonConfig{Bin: bin, Args: []string{"--no-mdns"}})
		joinLink(t, ctx, register(t, ctx, dq, "quinn"), pat, link, room)
	}
	da := a.Start(t, "a", DaemonConfig{Bin: bin, Args: []string{"--no-mdns"}})
	db := b.Start(t, "b", DaemonConfig{Bin: bin, Args: []string{"--no-mdns"}})
	alice, bob := register(t, ctx, da, "alice"), register(t, ctx, db, "bob")
	joinLink(t, ctx, alice, pat, link, room)
	joinLink(t, ctx, bob, pat, link, room)
	if memberRelay(ctx, dp) == nil {
		t.Fatalf("pat's status says nothing of a member relay: this build has none")
	}
	running := func() bool { v, _ := memberRelay(ctx, dp)["running"].(bool); return v }
	if !testkit.Eventually(60*time.Second, running) {
		st, _ := dp.Status(ctx)
		reach, _ := findKey(st, "reachability")
		t.Fatalf("pat's member relay is not running 60 s after pat's node started (reachability %v, member relay %v): "+
			"with %d public node(s), AutoNAT v1 (which asks only peers with a public address) may have no one to ask", reach, memberRelay(ctx, dp), public)
	}
	t.Logf("pat's member relay running %v after pat's node started", time.Since(start).Round(time.Millisecond))
	if !testkit.Eventually(60*time.Second, func() bool {
		return slices.Contains(peersOf(ctx, da), db.PeerID) && slices.Contains(peersOf(ctx, db), da.PeerID)
	}) {
		t.Fatalf("alice's and bob's nodes did not connect within 60 s of pat's member relay running (member relay %v; a holds a circuit address: %v)", memberRelay(ctx, dp), hasCircuitAddr(ctx, da))
	}
	r.upgrade = time.Since(start)
	r.status = statusPath(ctx, da, db.PeerID)
	pub0 := a.Router.Bytes("to_pub") + b.Router.Bytes("to_pub")
	peer0 := a.Router.Bytes("to_peer") + b.Router.Bytes("to_peer")
	r.msgs = summarize(exchange(t, ctx, alice, bob, room, msgsEachWay, "member relay", msgDeadline))
	pubN := a.Router.Bytes("to_pub") + b.Router.Bytes("to_pub")
	peerN := a.Router.Bytes("to_peer") + b.Router.Bytes("to_peer")
	r.path = "through pat"
	if n, err := a.Router.AnsweredFlowsTo(b.Router.WAN, 0); err == nil && n > 0 {
		r.path = "direct"
	}
	mr := memberRelay(ctx, dp)
	r.note = fmt.Sprintf("upgrade = pat's start to a-b connected; pat +%d B, direct +%d B; pat's member relay %v", pubN-pub0, peerN-peer0, mr)
	if number(mr, "reservations") < 1 {
		t.Errorf("pat's member relay holds no reservation: %v", mr)
	}

	// A node in none of pat's rooms, given pat's node as its relay, is
	// refused: the count of refusals grows once it asks.
	refused := number(mr, "refused")
	dc := c.Start(t, "c", DaemonConfig{Bin: bin, Args: []string{"--no-mdns", "--relay", dp.Addr()}})
	if !testkit.Eventually(60*time.Second, func() bool { return number(memberRelay(ctx, dp), "refused") > refused }) {
		t.Errorf("pat's member relay refused nothing within 60 s of a stranger asking (status %v)", memberRelay(ctx, dp))
	}
	if hasCircuitAddr(ctx, dc) {
		t.Errorf("the stranger announces a circuit address: it holds a reservation")
	}
}
