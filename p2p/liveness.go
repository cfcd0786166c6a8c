package p2p

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	msmux "github.com/multiformats/go-multistream"
)

// Direct connections that die without a word.
//
// A direct connection can stop carrying packets with nothing to say so: a
// NAT forgets its mapping, a router drops the path, a laptop changes
// networks. libp2p notices only when TCP's retransmissions, yamux's
// keepalive or QUIC's idle timeout give up, some 40 s later; meanwhile
// GossipSub keeps writing into the dead connection and new request streams
// take it too, since libp2p prefers a direct connection to a relayed one.
//
// The sign is this: GossipSub queued something for a room peer and has
// received nothing from that peer since, for liveSuspect. The peer is then
// pinged on each of its direct connections (a stream of our own on that
// connection, not the one libp2p would choose), one probe per peer at a
// time. A connection that answers none of liveProbeTries pings, each given
// liveProbeTimeout, is closed: GossipSub sees its stream fail and opens a
// new one on another connection (resync.go), and node/peers redials,
// through a relay, when none is left (OnPeerDisconnected). A new
// connection from a peer that we hold an older direct connection to is a
// sign too (the peer would not dial if that one worked for it): the older
// ones are probed at once, with one ping of liveDoubtTimeout, and paths.go
// does not move GossipSub onto them meanwhile. What the peer sent into a connection
// closed this way is lost: if the peer is still connected through another,
// the OnPeerConnected callbacks run for it, so node/peers catches up; if
// not, it is dialled again at once (through a relay, where the direct path
// is gone), and the reconnection runs them.
//
// Cost: nothing while a peer is idle or writes back; while we write to a
// peer that does not (one-way traffic) at most one ping (32 bytes each
// way) per liveSuspect and peer. Bounds: one entry per connected peer that
// GossipSub wrote to or that opened a connection beside a direct one,
// dropped when the peer disconnects; one probe per peer in flight; at most
// liveMaxConns connections probed per peer.
const (
	liveTick          = 250 * time.Millisecond
	liveSuspect       = time.Second     // unanswered this long: probe
	liveProbeTimeout  = 2 * time.Second // for one pong
	liveProbeTries    = 2
	liveDoubtTimeout  = time.Second // for the one pong of a probe for a doubt
	liveMaxConns      = 4
	liveRedialTimeout = 15 * time.Second
	liveRedialStagger = time.Second
)

// liveness is what GossipSub's tracer tells of each peer, and the probes
// under way. Its methods are safe for concurrent use and cheap: sent and
// heard run in GossipSub's event loop.
type liveness struct {
	mu    sync.Mutex
	peers map[peer.ID]*peerLive
}

type peerLive struct {
	unanswered time.Time // first RPC queued for the peer since it was last heard; zero if none
	heard      time.Time // last RPC or pong from the peer
	doubt      bool      // a new connection beside an older direct one: probe now
	probing    bool
}

func newLiveness() *liveness {
	return &liveness{peers: make(map[peer.ID]*peerLive)}
}

// sent records that GossipSub queued an RPC for p.
func (l *liveness) sent(p peer.ID) {
	if l == nil || p == "" {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.peers[p]
	if e == nil {
		e = &peerLive{}
		l.peers[p] = e
	}
	if e.unanswered.IsZero() {
		e.unanswered = time.Now()
	}
}

// heard records that something arrived from p.
func (l *liveness) heard(p peer.ID) {
	if l == nil || p == "" {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if e := l.peers[p]; e != nil {
		e.unanswered, e.heard = time.Time{}, time.Now()
	}
}

// heardSince reports whether something arrived from p after t.
func (l *liveness) heardSince(p peer.ID, t time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.peers[p]
	return e != nil && e.heard.After(t)
}

// doubtOf marks p's older direct connections for a probe.
func (l *liveness) doubtOf(p peer.ID) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.peers[p]
	if e == nil {
		e = &peerLive{}
		l.peers[p] = e
	}
	e.doubt = true
}

// doubtful reports whether p's direct connections are doubted or being
// probed: paths.go then leaves GossipSub where it is.
func (l *liveness) doubtful(p peer.ID) bool {
	if l == nil {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.peers[p]
	return e != nil && (e.doubt || e.probing)
}

// dueProbe is a peer to probe, and whether only for a doubt.
type dueProbe struct {
	p     peer.ID
	doubt bool
}

// due returns the peers to probe now and marks them as being probed; it
// forgets the peers gone.
func (l *liveness) due(now time.Time, gone func(peer.ID) bool) []dueProbe {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []dueProbe
	for p, e := range l.peers {
		if e.probing {
			continue
		}
		if gone(p) {
			delete(l.peers, p)
			continue
		}
		unanswered := !e.unanswered.IsZero() && now.Sub(e.unanswered) >= liveSuspect
		if e.doubt || unanswered {
			e.probing = true
			out = append(out, dueProbe{p: p, doubt: !unanswered})
		}
	}
	return out
}

// done ends a probe of p; alive clears what was unanswered.
func (l *liveness) done(p peer.ID, alive bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.peers[p]
	if e == nil {
		return
	}
	e.probing, e.doubt = false, false
	if alive {
		e.unanswered, e.heard = time.Time{}, time.Now()
	}
}

// livenessLoop probes, every liveTick, the direct connections of the room
// peers that went unanswered (see the top of this file).
func (h *Host) livenessLoop(lh host.Host) {
	l := h.live
	nb := &network.NotifyBundle{
		ConnectedF: func(n network.Network, c network.Conn) {
			p := c.RemotePeer()
			for _, o := range n.ConnsToPeer(p) {
				if o != c && !o.Stat().Limited && o.Stat().Opened.Before(c.Stat().Opened) {
					l.doubtOf(p)
					return
				}
			}
		},
	}
	lh.Network().Notify(nb)
	defer lh.Network().StopNotify(nb)
	tick := time.NewTicker(liveTick)
	defer tick.Stop()
	gone := func(p peer.ID) bool { return !connectedOrRelayed(lh, p) }
	for {
		select {
		case <-h.ctx.Done():
			return
		case <-tick.C:
		}
		due := l.due(time.Now(), gone)
		if len(due) == 0 {
			continue
		}
		room := h.subs.announcedTopics()
		for _, d := range due {
			p := d.p
			var direct []network.Conn
			for _, c := range lh.Network().ConnsToPeer(p) {
				if !c.Stat().Limited && !c.IsClosed() && len(direct) < liveMaxConns {
					direct = append(direct, c)
				}
			}
			if _, member := room[p]; !member || len(direct) == 0 {
				l.done(p, true)
				continue
			}
			tries, timeout := liveProbeTries, liveProbeTimeout
			if d.doubt {
				tries, timeout = 1, liveDoubtTimeout
			}
			if !h.spawn(func() { l.done(p, h.probe(lh, p, direct, tries, timeout)) }) {
				l.done(p, false)
			}
		}
	}
}

// probe pings p on each of conns, up to tries times with timeout each, and
// closes those that do not answer. It reports whether any answered.
func (h *Host) probe(lh host.Host, p peer.ID, conns []network.Conn, tries int, timeout time.Duration) bool {
	h.pathStats.probes.Add(1)
	start := time.Now()
	anyAlive, closed := false, false
	for _, c := range conns {
		alive := false
		var err error
		for try := 0; try < tries && !alive; try++ {
			var rtt time.Duration
			rtt, err = pingConn(h.ctx, c, timeout)
			switch {
			case err == nil:
				lh.Peerstore().RecordLatency(p, rtt)
				alive = true
			case errors.Is(err, msmux.ErrNotSupported[protocol.ID]{}):
				alive = true // an answer all the same
			case h.ctx.Err() != nil || c.IsClosed():
				return anyAlive
			case len(lh.Network().ConnsToPeer(p)) == 1 && h.live.heardSince(p, start):
				// Something arrived from p, on this, its only
				// connection: slow, not dead.
				alive = true
			}
		}
		if alive {
			anyAlive = true
			continue
		}
		if cerr := c.Close(); cerr != nil {
			h.log.Debug("closing a dead direct connection", "peer", p, "err", cerr)
			continue
		}
		h.pathStats.deadClosed.Add(1)
		h.log.Info("closed a direct connection that stopped answering", "peer", p,
			"addr", c.RemoteMultiaddr(), "after", time.Since(start).Round(time.Millisecond), "err", err)
		closed = true
	}
	switch {
	case !closed:
	case connectedOrRelayed(lh, p):
		// What p sent into the dead connection is lost, and p stays
		// connected through another: catch up with it as with a peer
		// that just connected.
		h.callPeerHooks(&h.onConnect, p)
	default:
		// No connection left: dial again, through a relay if that is
		// what works now (node/peers redials too, on its own schedule);
		// the reconnection runs the catch-up. The side with the larger
		// peer ID waits a moment, so that the two sides, which often
		// both find the connection dead, do not dial each other at once
		// (two relayed connections, GossipSub's streams on both).
		if h.id > p {
			t := time.NewTimer(liveRedialStagger)
			select {
			case <-t.C:
			case <-h.ctx.Done():
				t.Stop()
				return anyAlive
			}
		}
		ctx, cancel := context.WithTimeout(h.ctx, liveRedialTimeout)
		defer cancel()
		err := h.Connect(ctx, p)
		h.log.Debug("redialled a peer after closing its dead connection", "peer", p, "err", err)
	}
	return anyAlive
}

// pingConn sends one ping on c (libp2p's ping protocol, on a stream of its
// own on that connection) and returns the round trip.
func pingConn(ctx context.Context, c network.Conn, timeout time.Duration) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	s, err := c.NewStream(ctx)
	if err != nil {
		return 0, err
	}
	defer s.Reset()
	if err := s.SetDeadline(time.Now().Add(timeout)); err != nil {
		return 0, err
	}
	if err := s.SetProtocol(ping.ID); err != nil {
		return 0, err
	}
	rw := msmux.NewMSSelect(s, protocol.ID(ping.ID))
	out := make([]byte, ping.PingSize)
	rand.Read(out)
	start := time.Now()
	if _, err := rw.Write(out); err != nil {
		return 0, err
	}
	in := make([]byte, ping.PingSize)
	if _, err := io.ReadFull(rw, in); err != nil {
		return 0, err
	}
	if !bytes.Equal(in, out) {
		return 0, errors.New("p2p: ping: wrong echo")
	}
	return time.Since(start), nil
}
