package p2p

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// blackhole is a TCP forwarder on loopback that can stop forwarding
// without closing anything: what it is sent after cut vanishes, as on a
// path that a router silently drops.
type blackhole struct {
	ln     net.Listener
	target string
	cut    atomic.Bool
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  []net.Conn
}

func newBlackhole(t *testing.T, target string) *blackhole {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &blackhole{ln: ln, target: target}
	b.wg.Add(1)
	go b.accept()
	t.Cleanup(b.close)
	return b
}

func (b *blackhole) addr() ma.Multiaddr {
	a := b.ln.Addr().(*net.TCPAddr)
	m, err := manet.FromNetAddr(a)
	if err != nil {
		panic(err)
	}
	return m
}

func (b *blackhole) accept() {
	defer b.wg.Done()
	for {
		in, err := b.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", b.target)
		if err != nil {
			in.Close()
			continue
		}
		b.mu.Lock()
		b.conns = append(b.conns, in, out)
		b.mu.Unlock()
		b.wg.Add(2)
		go b.pipe(out, in)
		go b.pipe(in, out)
	}
}

// pipe copies from src to dst until cut, then reads and drops; before
// the cut, a side that closes is closed on the other.
func (b *blackhole) pipe(dst, src net.Conn) {
	defer b.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if b.cut.Load() {
			if err != nil {
				return
			}
			continue
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				src.Close()
				return
			}
		}
		if err != nil {
			dst.Close()
			return
		}
	}
}

func (b *blackhole) close() {
	b.ln.Close()
	b.mu.Lock()
	for _, c := range b.conns {
		c.Close()
	}
	b.mu.Unlock()
	b.wg.Wait()
}

// viaGater lets a host reach the far peer through a relay always, and
// directly only at the address via, while it is set.
type viaGater struct {
	far peer.ID
	via atomic.Pointer[ma.Multiaddr]
}

func (g *viaGater) allowed(p peer.ID, a ma.Multiaddr) bool {
	if p != g.far || isCircuit(a) {
		return true
	}
	v := g.via.Load()
	return v != nil && a.Equal(*v)
}

func (g *viaGater) InterceptPeerDial(peer.ID) bool                   { return true }
func (g *viaGater) InterceptAddrDial(p peer.ID, a ma.Multiaddr) bool { return g.allowed(p, a) }
func (g *viaGater) InterceptAccept(network.ConnMultiaddrs) bool      { return true }
func (g *viaGater) InterceptSecured(_ network.Direction, p peer.ID, c network.ConnMultiaddrs) bool {
	return g.allowed(p, c.RemoteMultiaddr())
}
func (g *viaGater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) {
	return true, 0
}

// TestADirectConnectionThatDiesSilentlyIsClosed: a and b, in one room,
// talk over a direct connection (through a forwarder on loopback) after
// the relayed one they started on was closed. The forwarder then drops
// everything without closing anything. A side that sent a message that got
// no answer finds the connection dead and closes it within seconds (libp2p
// itself would take some 40 s), and redials through the relay, as
// node/peers does; a side that sent nothing closes it when that new
// connection arrives beside it, and is told to catch up with the peer.
// Then messages flow again.
func TestADirectConnectionThatDiesSilentlyIsClosed(t *testing.T) {
	t.Run("when both sides write", func(t *testing.T) { testDeadPath(t, false) })
	t.Run("when only one side writes", func(t *testing.T) { testDeadPath(t, true) })
}

func testDeadPath(t *testing.T, onlyA bool) {
	r := newTestHost(t, func(c *Config) { c.RelayService = true })
	keyA, keyB := newKey(t), newKey(t)
	gA := &viaGater{far: peerOfKey(t, keyB)}
	gB := &directGater{far: peerOfKey(t, keyA)}
	private := []libp2p.Option{libp2p.ForceReachabilityPrivate()}
	a := newTestHost(t, func(c *Config) { c.Key, c.Relays, c.Gater, c.Options = keyA, r.Addrs(), gA, private })
	b := newTestHost(t, func(c *Config) {
		c.Key, c.Relays, c.Gater, c.Options = keyB, r.Addrs(), gB, private
		c.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/0"}
	})
	boxA, boxB := newInbox(1024), newInbox(1024)
	for _, x := range []struct {
		h   *Host
		box *inbox
	}{{a, boxA}, {b, boxB}} {
		waitFor(t, 10*time.Second, "a relay reservation", func() bool { return len(x.h.RelayAddrs()) > 0 })
		if err := x.h.JoinRoom(testRoom, testKeys(testRoom), nil, x.box.take); err != nil {
			t.Fatal(err)
		}
	}

	// Through the relay first, then directly through the forwarder.
	a.AddAddrs(b.ID(), b.RelayAddrs())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Connect(ctx, b.ID()); err != nil {
		t.Fatalf("connect through the relay: %v", err)
	}
	waitFor(t, 5*time.Second, "a and b in the room over the relay", func() bool {
		return inRoom(a, testRoom, b.ID())() && inRoom(b, testRoom, a.ID())()
	})
	var target net.Addr
	for _, l := range b.LibP2P().Network().ListenAddresses() {
		if x, err := manet.ToNetAddr(l); err == nil {
			target = x
		}
	}
	if target == nil {
		t.Fatal("b listens on no TCP address")
	}
	fwd := newBlackhole(t, target.String())
	via := fwd.addr()
	gA.via.Store(&via)
	gB.direct.Store(true)
	a.LibP2P().Peerstore().AddAddr(b.ID(), via, time.Hour)
	if _, err := a.LibP2P().Network().DialPeer(network.WithForceDirectDial(ctx, "test"), b.ID()); err != nil {
		t.Fatalf("direct dial through the forwarder: %v", err)
	}
	waitFor(t, 5*time.Second, "b seeing the direct connection", func() bool { d, _ := conns(b, a.ID()); return d > 0 })
	gA.via.Store(nil) // no direct connection but this one
	gB.direct.Store(false)
	waitFor(t, 15*time.Second, "the relayed connection closed under the direct one", func() bool {
		da, ra := conns(a, b.ID())
		db, rb := conns(b, a.ID())
		return da == 1 && ra == 0 && db == 1 && rb == 0
	})
	if ab, ba := exchangeOnce(t, a, b, boxA, boxB, "direct", 5*time.Second); ab < 0 || ba < 0 {
		t.Fatalf("over the direct connection: a->b %v, b->a %v", ab, ba)
	}

	if a.PathStats().DeadClosed+b.PathStats().DeadClosed != 0 {
		t.Fatalf("a live direct connection was closed as dead: path stats a %+v, b %+v", a.PathStats(), b.PathStats())
	}

	// From now on a peer that loses every connection is redialled
	// through the relay.
	redial := func(h, far *Host) {
		h.OnPeerDisconnected(func(p peer.ID) {
			if p != far.ID() {
				return
			}
			h.AddAddrs(p, far.RelayAddrs())
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			h.LibP2P().Network().(*swarm.Swarm).Backoff().Clear(p)
			h.Connect(ctx, p)
		})
	}
	redial(a, b)
	redial(b, a)
	var caughtUp atomic.Int64 // when b was last told to catch up with a
	b.OnPeerConnected(func(p peer.ID) {
		if p == a.ID() {
			caughtUp.Store(time.Now().UnixNano())
		}
	})

	fwd.cut.Store(true)
	start := time.Now()
	// These may be lost with the connection (catch-up and anti-entropy
	// in node/peers bring such messages later); they make a side write.
	writers := []*Host{a, b}
	if onlyA {
		writers = writers[:1]
	}
	for _, x := range writers {
		if err := x.Publish(context.Background(), testRoom, []byte("into the void")); err != nil {
			t.Fatal(err)
		}
	}
	var closedA, closedB time.Duration
	waitFor(t, 15*time.Second, "both sides closing the dead connection", func() bool {
		if d, _ := conns(a, b.ID()); d == 0 && closedA == 0 {
			closedA = time.Since(start)
		}
		if d, _ := conns(b, a.ID()); d == 0 && closedB == 0 {
			closedB = time.Since(start)
		}
		return closedA > 0 && closedB > 0
	})
	if a.PathStats().DeadClosed+b.PathStats().DeadClosed == 0 {
		t.Errorf("the direct connection went, but not by liveness: path stats a %+v, b %+v", a.PathStats(), b.PathStats())
	}
	waitFor(t, 15*time.Second, "a and b in the room again over the relay", func() bool {
		return inRoom(a, testRoom, b.ID())() && inRoom(b, testRoom, a.ID())()
	})
	back := time.Since(start)
	if onlyA && caughtUp.Load() < start.UnixNano() {
		t.Errorf("b, which wrote nothing, lost a's message with the connection but was not told to catch up with a")
	}
	ab, ba := exchangeOnce(t, a, b, boxA, boxB, "after", 10*time.Second)
	if ab < 0 || ba < 0 {
		t.Fatalf("after the cut, over the relay: a->b %v, b->a %v", ab, ba)
	}
	t.Logf("dead connection closed by a after %v, by b after %v; both in the room over the relay after %v; then a->b %v, b->a %v",
		closedA.Round(time.Millisecond), closedB.Round(time.Millisecond), back.Round(time.Millisecond),
		ab.Round(time.Millisecond), ba.Round(time.Millisecond))
}

// exchangeOnce publishes one message each way and reports how long each
// took to arrive, or -1 if it did not within wait.
func exchangeOnce(t *testing.T, a, b *Host, boxA, boxB *inbox, tag string, wait time.Duration) (ab, ba time.Duration) {
	t.Helper()
	start := time.Now()
	if err := a.Publish(context.Background(), testRoom, []byte(tag+" from a")); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(context.Background(), testRoom, []byte(tag+" from b")); err != nil {
		t.Fatal(err)
	}
	return awaitMessage(boxB, tag+" from a", start, wait), awaitMessage(boxA, tag+" from b", start, wait)
}

// TestLivenessProbesOnlyUnansweredPeers: a peer is probed only once
// something sent to it went unanswered for liveSuspect (or a new
// connection cast doubt on its direct one), never twice at once, and is
// forgotten once gone.
func TestLivenessProbesOnlyUnansweredPeers(t *testing.T) {
	const p, q = peer.ID("p"), peer.ID("q")
	none := func(peer.ID) bool { return false }
	t.Run("a peer we sent nothing is not probed", func(t *testing.T) {
		l := newLiveness()
		if due := l.due(time.Now().Add(time.Hour), none); len(due) != 0 {
			t.Fatalf("due %v", due)
		}
	})
	t.Run("a peer that answered is not probed", func(t *testing.T) {
		l := newLiveness()
		l.sent(p)
		l.heard(p)
		if due := l.due(time.Now().Add(time.Hour), none); len(due) != 0 {
			t.Fatalf("due %v", due)
		}
	})
	t.Run("an unanswered peer is probed after liveSuspect, once at a time", func(t *testing.T) {
		l := newLiveness()
		l.sent(p)
		l.sent(q)
		l.heard(q)
		now := time.Now()
		if due := l.due(now, none); len(due) != 0 {
			t.Fatalf("due at once: %v", due)
		}
		due := l.due(now.Add(liveSuspect), none)
		if len(due) != 1 || due[0] != (dueProbe{p: p}) {
			t.Fatalf("due %v, want [p]", due)
		}
		if !l.doubtful(p) {
			t.Error("p is being probed but not doubtful")
		}
		if due := l.due(now.Add(2*liveSuspect), none); len(due) != 0 {
			t.Fatalf("probed twice at once: %v", due)
		}
		l.done(p, true)
		if l.doubtful(p) {
			t.Error("p answered but is still doubtful")
		}
		if due := l.due(now.Add(time.Hour), none); len(due) != 0 {
			t.Fatalf("probed again after answering: %v", due)
		}
	})
	t.Run("a peer whose probe failed is probed again when still unanswered", func(t *testing.T) {
		l := newLiveness()
		l.sent(p)
		now := time.Now()
		l.due(now.Add(liveSuspect), none)
		l.done(p, false)
		if due := l.due(now.Add(2*liveSuspect), none); len(due) != 1 {
			t.Fatalf("due %v, want [p]", due)
		}
	})
	t.Run("a doubted peer is probed at once", func(t *testing.T) {
		l := newLiveness()
		l.doubtOf(p)
		if due := l.due(time.Now(), none); len(due) != 1 || due[0] != (dueProbe{p: p, doubt: true}) {
			t.Fatalf("due %v, want [p, for a doubt]", due)
		}
	})
	t.Run("a peer gone is forgotten", func(t *testing.T) {
		l := newLiveness()
		l.sent(p)
		l.due(time.Now(), func(peer.ID) bool { return true })
		if len(l.peers) != 0 {
			t.Fatalf("%d peers kept", len(l.peers))
		}
	})
	t.Run("hearing from a peer never adds it", func(t *testing.T) {
		l := newLiveness()
		l.heard(p)
		if len(l.peers) != 0 {
			t.Fatalf("%d peers kept", len(l.peers))
		}
	})
}
