package p2p

import (
	"context"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	ma "github.com/multiformats/go-multiaddr"
)

// Path changes without stalls.
//
// Once a peer has a direct connection as well as a relayed one, new
// streams (requests) take the direct one by themselves (libp2p prefers it),
// but GossipSub's long-lived streams stay where they were opened and the
// relay keeps carrying every room message. tendPaths moves them (resync)
// and then closes the relayed connections once no request is in flight on
// them (closeRelayedAfter at most). Only the side with the smaller peer ID
// does this, so the two sides do not race; the other sees the circuit end.
// A direct connection is never closed, the one to a relay included.
//
// It also checks, every pathsTick, that GossipSub still knows every
// subscription a peer announced to us (subFilter keeps the record) and
// still writes to every such peer; a lasting disagreement (repairAfter) is
// repaired by a resync, at most once per repairEvery per peer.
//
// Hole punching (DCUtR) is tried by libp2p once, when a relayed connection
// comes in, and never again. A peer reached only through a relay for
// punchRetryAfter gets another try: the side that dialled the relayed
// connection closes it (when idle) and dials again through the same relay,
// so that the other side sees a new relayed connection and hole punches.
// Retries back off (punchBackoff) and start over when our addresses change.
//
// Finally it measures the round trip to the peers of our rooms every
// pingEvery, for PeerPaths.
//
// A direct connection that dies silently is found and closed by
// liveness.go; while it is being probed, GossipSub is not moved onto it.
const (
	pathsTick         = time.Second
	directSettle      = 250 * time.Millisecond // age of a direct connection before GossipSub moves to it
	closeRelayedAfter = 30 * time.Second       // longest wait for requests on a relayed connection to end
	repairAfter       = time.Second            // a disagreement lasting this long is repaired
	repairEvery       = 10 * time.Second       // at most one repair per peer this often
	// punchRetryAfter: DCUtR tries three times, and each failed dial
	// leaves a backoff on the address (libp2p: 5 s + 1 s x failures²,
	// 14 s after three) on both sides; only our own can be cleared.
	punchRetryAfter   = 15 * time.Second
	punchDialTimeout  = 15 * time.Second
	punchRetryKeep    = time.Minute     // a disconnected peer's retry state is kept this long
	punchRetryStagger = 5 * time.Second // extra wait of the side with the larger peer ID
	pingEvery         = 30 * time.Second
	pingTimeout       = 5 * time.Second
	maxPingsPerRound  = 64
)

// punchBackoff is the wait before each hole-punching retry; the last
// repeats.
var punchBackoff = []time.Duration{punchRetryAfter, 30 * time.Second, 2 * time.Minute, 10 * time.Minute}

// pathCounters count what tendPaths did.
type pathCounters struct {
	relayedClosed atomic.Uint64 // relayed connections closed for a direct one
	resyncs       atomic.Uint64 // GossipSub re-announcements (resync)
	repairs       atomic.Uint64 // of them, repairs of a disagreement
	punchRetries  atomic.Uint64 // relayed connections redialled for hole punching
	punchUpgrades atomic.Uint64 // of them, followed by a direct connection
	probes        atomic.Uint64 // liveness probes of a peer's direct connections (liveness.go)
	deadClosed    atomic.Uint64 // direct connections closed for not answering them
}

// PathStats counts how the node moved its traffic between paths.
type PathStats struct {
	RelayedClosed uint64 `json:"relayed_closed"` // relayed connections closed once a direct one existed
	Resyncs       uint64 `json:"resyncs"`        // GossipSub subscriptions re-announced with a peer
	Repairs       uint64 `json:"repairs"`        // of them, because GossipSub had forgotten a peer's
	PunchRetries  uint64 `json:"punch_retries"`  // relayed connections redialled to hole punch again
	PunchUpgrades uint64 `json:"punch_upgrades"` // retries that ended with a direct connection
	Probes        uint64 `json:"probes"`         // peers pinged on their direct connections after going unanswered
	DeadClosed    uint64 `json:"dead_closed"`    // direct connections closed because they stopped answering
}

// PathStats returns the counters of path changes.
func (h *Host) PathStats() PathStats {
	return PathStats{
		RelayedClosed: h.pathStats.relayedClosed.Load(),
		Resyncs:       h.pathStats.resyncs.Load(),
		Repairs:       h.pathStats.repairs.Load(),
		PunchRetries:  h.pathStats.punchRetries.Load(),
		PunchUpgrades: h.pathStats.punchUpgrades.Load(),
		Probes:        h.pathStats.probes.Load(),
		DeadClosed:    h.pathStats.deadClosed.Load(),
	}
}

// pathsState belongs to pathsLoop.
type pathsState struct {
	lh       host.Host
	busy     map[peer.ID]chan struct{} // a resync or redial under way, closed when done
	mixed    map[peer.ID]time.Time     // direct and relayed since
	mismatch map[peer.ID]time.Time     // GossipSub and the record disagree since
	repaired map[peer.ID]time.Time
	retry    map[peer.ID]*punchRetry
	addrs    *atomic.Uint64 // counts changes of our addresses
	addrsGen uint64         // of addrs when retries last started over
	nextPing time.Time
	pinging  chan struct{} // closed when the ping round ends
	poke     func()        // runs tendPaths again soon
}

// punchRetry is the hole-punching retry state of a peer reached only
// through a relay.
type punchRetry struct {
	next    time.Time
	tries   int  // since the last change of our addresses
	retried bool // at least once
}

// pathsLoop runs tendPaths every pathsTick and whenever a connection
// opens or closes.
func (h *Host) pathsLoop(lh host.Host) {
	kick := make(chan struct{}, 1)
	poke := func() {
		select {
		case kick <- struct{}{}:
		default:
		}
	}
	nb := &network.NotifyBundle{
		ConnectedF: func(network.Network, network.Conn) { poke() },
		DisconnectedF: func(network.Network, network.Conn) {
			// GossipSub notices a closed stream a moment later, and
			// may give up on the peer then (see inject).
			poke()
			time.AfterFunc(150*time.Millisecond, poke)
			time.AfterFunc(600*time.Millisecond, poke)
		},
	}
	lh.Network().Notify(nb)
	defer lh.Network().StopNotify(nb)
	var addrs atomic.Uint64
	h.OnAddrsChanged(func() { addrs.Add(1) })
	st := &pathsState{
		lh:       lh,
		addrs:    &addrs,
		poke:     poke,
		busy:     make(map[peer.ID]chan struct{}),
		mixed:    make(map[peer.ID]time.Time),
		mismatch: make(map[peer.ID]time.Time),
		repaired: make(map[peer.ID]time.Time),
		retry:    make(map[peer.ID]*punchRetry),
		nextPing: time.Now().Add(pingEvery),
	}
	tick := time.NewTicker(pathsTick)
	defer tick.Stop()
	for {
		select {
		case <-h.ctx.Done():
			return
		case <-tick.C:
		case <-kick:
		}
		h.tendPaths(st, time.Now(), poke)
	}
}

// tendPaths is one round of pathsLoop.
func (h *Host) tendPaths(st *pathsState, now time.Time, poke func()) {
	lh := st.lh
	for p, done := range st.busy {
		select {
		case <-done:
			delete(st.busy, p)
		default:
		}
	}
	peers := lh.Network().Peers()
	live := make(map[peer.ID]bool, len(peers))
	for _, p := range peers {
		live[p] = true
	}
	for _, m := range []map[peer.ID]time.Time{st.mixed, st.mismatch, st.repaired} {
		for p := range m {
			if !live[p] {
				delete(m, p)
			}
		}
	}
	for p, r := range st.retry {
		// A retry disconnects the peer for a moment: keep its count.
		if !live[p] && (!r.retried || now.Sub(r.next) > punchRetryKeep) {
			delete(st.retry, p)
		}
	}
	if gen := st.addrs.Load(); gen != st.addrsGen {
		st.addrsGen = gen
		for _, r := range st.retry {
			r.tries, r.next = 0, now.Add(punchBackoff[0])
		}
	}
	// Run a job for p on its own goroutine, one at a time per peer.
	run := func(p peer.ID, job func()) {
		if _, ok := st.busy[p]; ok {
			return
		}
		done := make(chan struct{})
		if h.spawn(func() {
			defer poke()
			defer close(done)
			job()
		}) {
			st.busy[p] = done
		}
	}

	for _, p := range peers {
		conns := lh.Network().ConnsToPeer(p)
		var direct, relayed []network.Conn
		for _, c := range conns {
			if c.Stat().Limited {
				relayed = append(relayed, c)
			} else {
				direct = append(direct, c)
			}
		}
		switch {
		case len(relayed) > 0 && len(direct) > 0:
			if r, ok := st.retry[p]; ok && r.retried {
				h.pathStats.punchUpgrades.Add(1)
			}
			delete(st.retry, p)
			h.moveOffRelay(st, p, direct, relayed, now, run)
		case len(relayed) > 0:
			delete(st.mixed, p)
			h.retryHolePunch(st, p, relayed, now, run)
		default:
			delete(st.mixed, p)
			if r, ok := st.retry[p]; ok && r.retried {
				h.pathStats.punchUpgrades.Add(1)
			}
			delete(st.retry, p)
		}
	}
	h.checkPubsub(st, live, now, run)
	h.pingRoomPeers(st, live, now)
}

// moveOffRelay moves GossipSub off p's relayed connections and closes them
// once they carry no request, if our peer ID is the smaller.
func (h *Host) moveOffRelay(st *pathsState, p peer.ID, direct, relayed []network.Conn, now time.Time, run func(peer.ID, func())) {
	if h.id >= p || h.pspaths.keepRelayed.Load() {
		return
	}
	if h.live.doubtful(p) {
		// The direct connection may be dead (liveness.go): keep
		// GossipSub on the relay until the probe says.
		return
	}
	since, ok := st.mixed[p]
	if !ok {
		since = now
		st.mixed[p] = now
	}
	if _, busy := st.busy[p]; busy {
		return
	}
	gossip, requests := false, false
	for _, c := range relayed {
		for _, s := range c.GetStreams() {
			switch {
			case isPubsubProtocol(s.Protocol()):
				gossip = true
			case isRequestProtocol(string(s.Protocol())):
				requests = true
			}
		}
	}
	if gossip {
		// Give the peer time to see the direct connection too, or its
		// new stream would take the relayed one again.
		if wait := directSettle - now.Sub(newestOpened(direct)); wait > 0 {
			time.AfterFunc(wait, st.poke)
			return
		}
		run(p, func() { h.resync(st.lh, p, "move off relay") })
		return
	}
	// After a resync, wait for both new GossipSub streams, so that the
	// peer has our hello before the relayed connection goes.
	out, in := pubsubStreams(st.lh, p, network.DirOutbound), pubsubStreams(st.lh, p, network.DirInbound)
	if (len(out) > 0 || len(in) > 0) && (len(out) == 0 || len(in) == 0) && now.Sub(since) < closeRelayedAfter {
		return
	}
	if requests && now.Sub(since) < closeRelayedAfter {
		return
	}
	for _, c := range relayed {
		relay, _ := circuitRelay(c.RemoteMultiaddr())
		if err := c.Close(); err != nil {
			h.log.Debug("closing relayed connection", "peer", p, "relay", relay, "err", err)
			continue
		}
		h.pathStats.relayedClosed.Add(1)
		h.log.Debug("closed relayed connection: a direct one exists", "peer", p, "relay", relay, "after", now.Sub(since), "requests_cut", requests)
	}
	delete(st.mixed, p)
}

// newestOpened returns when the newest of conns was opened.
func newestOpened(conns []network.Conn) time.Time {
	var t time.Time
	for _, c := range conns {
		if o := c.Stat().Opened; o.After(t) {
			t = o
		}
	}
	return t
}

// isRequestProtocol reports whether a stream carries one of parley's
// requests, which a closed connection would cut.
func isRequestProtocol(id string) bool {
	return strings.HasPrefix(id, "/parley/") && !strings.HasPrefix(id, DHTProtocolPrefix+"/kad/")
}

// retryHolePunch redials p through its relay when p has been reached only
// through relays for a while and this side dialled the relayed connection.
func (h *Host) retryHolePunch(st *pathsState, p peer.ID, relayed []network.Conn, now time.Time, run func(peer.ID, func())) {
	r, ok := st.retry[p]
	if !ok {
		// Both sides may hold an outbound relayed connection; the one
		// with the larger peer ID waits a little longer, so that one
		// retry at a time is tried.
		first := punchRetryAfter
		if h.id > p {
			first += punchRetryStagger
		}
		st.retry[p] = &punchRetry{next: now.Add(first)}
		return
	}
	if now.Before(r.next) {
		return
	}
	if _, busy := st.busy[p]; busy {
		return
	}
	var out network.Conn
	for _, c := range relayed {
		if c.Stat().Direction != network.DirOutbound {
			continue
		}
		for _, s := range c.GetStreams() {
			if isRequestProtocol(string(s.Protocol())) {
				return // not idle: look again next round
			}
		}
		out = c
	}
	// The other side retries if it dialled. Hole punching needs DCUtR
	// running on both sides, which it does only once a host has a
	// public address.
	if out == nil || !holePunchReady(st.lh, p) {
		r.next = now.Add(punchBackoff[min(r.tries, len(punchBackoff)-1)])
		return
	}
	r.tries++
	r.retried = true
	r.next = now.Add(punchBackoff[min(r.tries, len(punchBackoff)-1)])
	if h.id > p {
		r.next = r.next.Add(punchRetryStagger)
	}
	addr := out.RemoteMultiaddr()
	tries := r.tries
	run(p, func() {
		h.pathStats.punchRetries.Add(1)
		out.Close()
		// The failed punches left a dial backoff on p's addresses.
		if sw, ok := st.lh.Network().(*swarm.Swarm); ok {
			sw.Backoff().Clear(p)
		}
		ctx, cancel := context.WithTimeout(h.ctx, punchDialTimeout)
		defer cancel()
		err := st.lh.Connect(allowLimited(ctx), peer.AddrInfo{ID: p, Addrs: []ma.Multiaddr{addr}})
		h.log.Debug("hole punching: redialled through the relay", "peer", p, "try", tries, "err", err)
	})
}

// holePunchReady reports whether DCUtR runs here and, as far as identify
// told us, on p.
func holePunchReady(lh host.Host, p peer.ID) bool {
	if !slices.Contains(lh.Mux().Protocols(), holepunch.Protocol) {
		return false
	}
	ok, err := lh.Peerstore().SupportsProtocols(p, holepunch.Protocol)
	return err == nil && len(ok) > 0
}

// checkPubsub compares what GossipSub knows of each connected peer's
// subscriptions with what the peer announced, and whether GossipSub writes
// to it, and repairs a lasting disagreement.
func (h *Host) checkPubsub(st *pathsState, live map[peer.ID]bool, now time.Time, run func(peer.ID, func())) {
	announced := h.subs.announcedTopics()
	if len(announced) == 0 {
		clear(st.mismatch)
		return
	}
	h.mu.Lock()
	ps := h.ps
	h.mu.Unlock()
	listed := make(map[string][]peer.ID)
	for p, topics := range announced {
		if !live[p] || h.pspaths.resyncing(p) {
			delete(st.mismatch, p)
			continue
		}
		ok := len(pubsubStreams(st.lh, p, network.DirOutbound)) > 0
		if !ok {
			// GossipSub may have given up on p; if not, this does nothing.
			h.pspaths.inject(p)
		}
		for _, topic := range topics {
			if !ok {
				break
			}
			list, seen := listed[topic]
			if !seen {
				list = ps.ListPeers(topic)
				listed[topic] = list
			}
			ok = slices.Contains(list, p)
		}
		if ok {
			delete(st.mismatch, p)
			continue
		}
		since, seen := st.mismatch[p]
		if !seen {
			st.mismatch[p] = now
			continue
		}
		if now.Sub(since) < repairAfter || now.Sub(st.repaired[p]) < repairEvery {
			continue
		}
		st.repaired[p] = now
		delete(st.mismatch, p)
		h.pathStats.repairs.Add(1)
		h.log.Debug("pubsub: peer's subscriptions forgotten or no stream to it; repairing", "peer", p, "for", now.Sub(since))
		run(p, func() { h.resync(st.lh, p, "repair") })
	}
}

// pingRoomPeers starts a round of pings to the connected peers of our
// rooms every pingEvery, and in between to those not measured yet, unless
// the last round is still going; libp2p keeps the averages (LatencyEWMA)
// that PeerPaths reports.
func (h *Host) pingRoomPeers(st *pathsState, live map[peer.ID]bool, now time.Time) {
	if st.pinging != nil {
		select {
		case <-st.pinging:
			st.pinging = nil
		default:
			return
		}
	}
	all := !now.Before(st.nextPing)
	if all {
		st.nextPing = now.Add(pingEvery)
	}
	var targets []peer.ID
	for p := range h.subs.announcedTopics() {
		if live[p] && len(targets) < maxPingsPerRound && (all || st.lh.Peerstore().LatencyEWMA(p) == 0) {
			targets = append(targets, p)
		}
	}
	if len(targets) == 0 {
		return
	}
	done := make(chan struct{})
	lh := st.lh
	if h.spawn(func() {
		defer close(done)
		for _, p := range targets {
			h.pingOnce(lh, p)
		}
	}) {
		st.pinging = done
	}
}

// pingOnce measures one round trip to p, over a relayed connection if
// that is all there is.
func (h *Host) pingOnce(lh host.Host, p peer.ID) {
	ctx, cancel := context.WithTimeout(allowLimited(h.ctx), pingTimeout)
	defer cancel()
	select {
	case res := <-ping.Ping(ctx, lh, p):
		if res.Error != nil {
			h.log.Debug("ping failed", "peer", p, "err", res.Error)
		}
	case <-ctx.Done():
	}
}
