package p2p

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// GossipSub's streams when a peer's connections change.
//
// GossipSub (v0.19) keeps one stream to each peer, which it writes to, and
// reads the one the peer opens to it. The first thing written on a new
// stream is a hello: the writer's subscriptions. When the stream we write to
// fails, GossipSub declares the peer dead: it forgets every subscription the
// peer announced to us (on the *other* stream), and, if the peer is still
// connected, opens a new stream, which starts with our hello. It never asks
// the peer to announce itself again: the peer does that only when its own
// stream to us fails.
//
// Both streams usually fail together (their connection closed), and then
// both sides re-hello. But when the relayed connection under a direct one
// closes, each side notices at its own time: if one side's hello reaches the
// other before the other has noticed, the other then forgets the
// subscriptions it has just learnt, for good, and with flood publishing its
// messages skip that peer until the next anti-entropy round. Resetting a
// peer's stream to us to make it re-hello (rehello, members.go) had the same
// effect: the peer forgot our subscriptions. And after four such failures
// within ten minutes GossipSub stops opening streams to a still-connected
// peer altogether (its dead-peer backoff).
//
// pubsubPaths orders things so that neither happens:
//   - resync re-announces both ways with a peer in the safe order: our stream
//     is closed and GossipSub has processed that (it asks to open a new one)
//     before the peer is made to re-hello, and our new stream (our hello) is
//     held back until the peer's new one has arrived, so the peer has
//     processed its side too. paths.go uses it to move GossipSub off a
//     relayed connection, to repair a lasting disagreement, and rehello uses
//     it.
//   - a new stream from a peer while our stream to it is on another, relayed
//     or closed, connection means the peer's side of that connection failed
//     first: ours is closed before GossipSub reads the peer's hello.
//   - a peer that GossipSub stopped writing to is handed to GossipSub again
//     as if it had just connected (inject).
//
// Streams are closed, not reset, so that what was written before arrives.

// Bounds of the waits in resync and in the inbound check. Each is short
// next to the rounds of GossipSub's heartbeat and of anti-entropy, and long
// next to one round trip.
const (
	resyncDeadWait    = time.Second     // for GossipSub to process our closed stream
	resyncHelloWait   = 2 * time.Second // for the peer's new stream
	resyncHoldMax     = 3 * time.Second // longest a new stream of ours is held back
	inboundDeadWait   = 500 * time.Millisecond
	inboundCloseEvery = 10 * time.Second // at most one early close per peer
)

// pubsubPaths is shared by the Host (paths.go) and GossipSub's view of the
// libp2p host (pubsubHost). Every method is safe for concurrent use, and
// none calls GossipSub. What it holds is bounded by GossipSub's streams
// and the resyncs under way (one per peer); failedAt and early keep a
// peer for a few seconds only.
type pubsubPaths struct {
	mu     sync.Mutex
	holds  map[peer.ID]*streamHold
	opened map[peer.ID][]chan struct{} // waiting for GossipSub to open a stream to p
	early  map[peer.ID]time.Time       // last early close of our stream (inbound)
	// failedAt: our stream to p failed then, and GossipSub has not
	// opened a new one since.
	failedAt map[peer.ID]time.Time
	// outbound: GossipSub's streams to each peer that have not failed.
	outbound map[peer.ID]map[*watchedStream]struct{}
	injects  map[chan peer.ID]struct{} // GossipSub's new-peer subscriptions

	// keepRelayed stops paths.go from closing relayed connections (tests
	// that close them themselves).
	keepRelayed atomic.Bool
}

// streamHold holds back GossipSub's new streams to one peer during a resync.
type streamHold struct {
	release chan struct{} // closed when the resync ends
	hello   chan struct{} // closed when the peer opens a new stream to us
	once    sync.Once
}

func newPubsubPaths() *pubsubPaths {
	return &pubsubPaths{
		holds:    make(map[peer.ID]*streamHold),
		opened:   make(map[peer.ID][]chan struct{}),
		early:    make(map[peer.ID]time.Time),
		failedAt: make(map[peer.ID]time.Time),
		outbound: make(map[peer.ID]map[*watchedStream]struct{}),
		injects:  make(map[chan peer.ID]struct{}),
	}
}

// opening is called before GossipSub opens a stream to p: it tells those
// waiting for GossipSub to do so, and waits while a resync holds p.
func (pp *pubsubPaths) opening(ctx context.Context, p peer.ID) error {
	if pp == nil {
		return nil
	}
	pp.mu.Lock()
	for _, ch := range pp.opened[p] {
		close(ch)
	}
	delete(pp.opened, p)
	delete(pp.failedAt, p)
	hold := pp.holds[p]
	pp.mu.Unlock()
	if hold == nil {
		return nil
	}
	t := time.NewTimer(resyncHoldMax)
	defer t.Stop()
	select {
	case <-hold.release:
	case <-t.C:
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// watchOpen returns a channel closed when GossipSub next opens a stream to p.
func (pp *pubsubPaths) watchOpen(p peer.ID) chan struct{} {
	ch := make(chan struct{})
	pp.mu.Lock()
	pp.opened[p] = append(pp.opened[p], ch)
	pp.mu.Unlock()
	return ch
}

// unwatchOpen drops ch if GossipSub did not open a stream.
func (pp *pubsubPaths) unwatchOpen(p peer.ID, ch chan struct{}) {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	list := pp.opened[p]
	for i, c := range list {
		if c == ch {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(pp.opened, p)
	} else {
		pp.opened[p] = list
	}
}

// hold starts holding back GossipSub's new streams to p; nil if a resync
// with p is already under way.
func (pp *pubsubPaths) hold(p peer.ID) *streamHold {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	if pp.holds[p] != nil {
		return nil
	}
	h := &streamHold{release: make(chan struct{}), hello: make(chan struct{})}
	pp.holds[p] = h
	return h
}

func (pp *pubsubPaths) unhold(p peer.ID, h *streamHold) {
	pp.mu.Lock()
	if pp.holds[p] == h {
		delete(pp.holds, p)
	}
	pp.mu.Unlock()
	close(h.release)
}

// resyncing reports whether a resync with p is under way.
func (pp *pubsubPaths) resyncing(p peer.ID) bool {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	return pp.holds[p] != nil
}

// inbound wraps GossipSub's stream handler: see the type's comment.
func (pp *pubsubPaths) inbound(lh host.Host, handler network.StreamHandler) network.StreamHandler {
	if pp == nil {
		return handler
	}
	return func(s network.Stream) {
		p := s.Conn().RemotePeer()
		pp.mu.Lock()
		if h := pp.holds[p]; h != nil {
			h.once.Do(func() { close(h.hello) })
		}
		pp.mu.Unlock()
		pp.closeStale(lh, p, s.Conn())
		handler(s)
	}
}

// closeStale closes our GossipSub stream to p if it is on a connection
// other than in, relayed or closed, and waits (briefly) for GossipSub to
// process that before it reads the peer's new stream. It waits likewise
// if our stream to p has just failed and GossipSub has not yet opened a
// new one: GossipSub handles the failure and the peer's hello in either
// order, and the hello must come second.
func (pp *pubsubPaths) closeStale(lh host.Host, p peer.ID, in network.Conn) {
	// Our streams to p, as GossipSub opened them: a connection that
	// closed is no longer listed among p's, its streams still may be.
	var stale []*watchedStream
	now := time.Now()
	pp.mu.Lock()
	for s := range pp.outbound[p] {
		if c := s.Conn(); c != in && (c.Stat().Limited || c.IsClosed()) {
			stale = append(stale, s)
		}
	}
	failed, pending := pp.failedAt[p]
	pending = pending && now.Sub(failed) < resyncHoldMax
	// From a relayed connection to a direct one, this happens once: the
	// new streams take the direct one. Between relayed connections it
	// could go back and forth.
	if last, ok := pp.early[p]; ok && in.Stat().Limited && now.Sub(last) < inboundCloseEvery {
		stale = nil
	}
	if len(stale) > 0 {
		pp.early[p] = now
	}
	for q, t := range pp.early {
		if now.Sub(t) >= inboundCloseEvery {
			delete(pp.early, q)
		}
	}
	pp.mu.Unlock()
	if len(stale) == 0 && !pending {
		return
	}
	t := time.NewTimer(inboundDeadWait)
	defer t.Stop()
	// GossipSub sees each closed stream fail, then handles that and
	// opens a new stream (after its backoff, or when inject hands it
	// the peer back): only a stream opened after the failure tells that
	// the failure was handled.
	for _, s := range stale {
		s.Close()
		select {
		case <-s.dead:
		case <-t.C:
			return
		}
	}
	ch := pp.watchOpen(p)
	defer pp.unwatchOpen(p, ch)
	select {
	case <-ch:
	case <-t.C:
	}
}

// inject tells GossipSub that p supports it, as identify does for a new
// connection: if GossipSub has no stream to p (it gave up on it), it opens
// one, with our hello. It does nothing if it has one.
func (pp *pubsubPaths) inject(p peer.ID) {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	for ch := range pp.injects {
		select {
		case ch <- p:
		default:
		}
	}
}

// failed is told that GossipSub's stream to p failed. GossipSub then
// opens a new one, after a backoff, or, once it has done so four times
// within ten minutes, gives up on p while p is still connected: p is
// handed back to it a moment later (after GossipSub's own handling of the
// failure, which a hand-back would otherwise precede, and be ignored).
func (pp *pubsubPaths) failed(s *watchedStream) {
	close(s.dead)
	p := s.Conn().RemotePeer()
	now := time.Now()
	pp.mu.Lock()
	for q, t := range pp.failedAt {
		if now.Sub(t) >= resyncHoldMax {
			delete(pp.failedAt, q)
		}
	}
	pp.failedAt[p] = now
	if m := pp.outbound[p]; m != nil {
		delete(m, s)
		if len(m) == 0 {
			delete(pp.outbound, p)
		}
	}
	pp.mu.Unlock()
	for _, d := range failedInjectAfter {
		time.AfterFunc(d, func() { pp.inject(p) })
	}
}

// opened records a stream GossipSub opened.
func (pp *pubsubPaths) openedStream(s *watchedStream) {
	p := s.Conn().RemotePeer()
	pp.mu.Lock()
	defer pp.mu.Unlock()
	m := pp.outbound[p]
	if m == nil {
		m = make(map[*watchedStream]struct{})
		pp.outbound[p] = m
	}
	m[s] = struct{}{}
}

// failedInjectAfter: when failed hands a peer back to GossipSub.
var failedInjectAfter = []time.Duration{20 * time.Millisecond, 100 * time.Millisecond, 400 * time.Millisecond}

// pubsubBus is the event bus GossipSub sees: a subscription to protocol
// updates also gets inject's.
type pubsubBus struct {
	event.Bus
	paths *pubsubPaths
}

func (b pubsubBus) Subscribe(eventType any, opts ...event.SubscriptionOpt) (event.Subscription, error) {
	sub, err := b.Bus.Subscribe(eventType, opts...)
	if err != nil || b.paths == nil || !wantsProtocolUpdates(eventType) {
		return sub, err
	}
	m := &mergedSub{Subscription: sub, out: make(chan any), in: make(chan peer.ID, 16), done: make(chan struct{}), paths: b.paths}
	b.paths.mu.Lock()
	b.paths.injects[m.in] = struct{}{}
	b.paths.mu.Unlock()
	m.wg.Add(1)
	go m.forward()
	return m, nil
}

func wantsProtocolUpdates(eventType any) bool {
	if list, ok := eventType.([]any); ok {
		for _, e := range list {
			if _, ok := e.(*event.EvtPeerProtocolsUpdated); ok {
				return true
			}
		}
		return false
	}
	_, ok := eventType.(*event.EvtPeerProtocolsUpdated)
	return ok
}

// mergedSub is a subscription with injected protocol updates.
type mergedSub struct {
	event.Subscription
	out   chan any
	in    chan peer.ID
	done  chan struct{}
	once  sync.Once
	wg    sync.WaitGroup
	paths *pubsubPaths
}

var gossipProtocols = []protocol.ID{pubsub.GossipSubID_v13, pubsub.GossipSubID_v12, pubsub.GossipSubID_v11, pubsub.GossipSubID_v10}

func (m *mergedSub) forward() {
	defer m.wg.Done()
	defer close(m.out)
	src := m.Subscription.Out()
	for {
		var ev any
		select {
		case e, ok := <-src:
			if !ok {
				return
			}
			ev = e
		case p := <-m.in:
			ev = event.EvtPeerProtocolsUpdated{Peer: p, Added: gossipProtocols}
		case <-m.done:
			return
		}
		select {
		case m.out <- ev:
		case <-m.done:
			return
		}
	}
}

func (m *mergedSub) Out() <-chan any { return m.out }

func (m *mergedSub) Close() error {
	m.once.Do(func() {
		m.paths.mu.Lock()
		delete(m.paths.injects, m.in)
		m.paths.mu.Unlock()
		close(m.done)
	})
	err := m.Subscription.Close()
	m.wg.Wait()
	return err
}

// isPubsubProtocol reports whether a stream is GossipSub's (or FloodSub's).
func isPubsubProtocol(id protocol.ID) bool {
	s := string(id)
	return strings.HasPrefix(s, "/meshsub/") || strings.HasPrefix(s, "/floodsub/")
}

// pubsubStreams returns our GossipSub streams with p in direction dir.
func pubsubStreams(lh host.Host, p peer.ID, dir network.Direction) []network.Stream {
	var out []network.Stream
	for _, c := range lh.Network().ConnsToPeer(p) {
		for _, s := range c.GetStreams() {
			if s.Stat().Direction == dir && isPubsubProtocol(s.Protocol()) {
				out = append(out, s)
			}
		}
	}
	return out
}

// resync makes GossipSub on both sides announce its subscriptions to the
// other again, in the order described at the top of this file, and returns
// once it is done (a few round trips) or given up (resyncHoldMax). It does
// nothing if a resync with p is already under way.
func (h *Host) resync(lh host.Host, p peer.ID, why string) {
	pp := h.pspaths
	hold := pp.hold(p)
	if hold == nil {
		return
	}
	defer pp.unhold(p, hold)
	start := time.Now()

	opened := pp.watchOpen(p)
	for _, s := range pubsubStreams(lh, p, network.DirOutbound) {
		s.Close()
	}
	t := time.NewTimer(resyncDeadWait)
	respawned := true
	select {
	case <-opened:
	case <-t.C:
		// GossipSub gave up on p (its dead-peer backoff): it is handed
		// p again below, once p has re-announced itself.
		respawned = false
		pp.unwatchOpen(p, opened)
	case <-h.ctx.Done():
		t.Stop()
		return
	}
	t.Stop()

	for _, s := range pubsubStreams(lh, p, network.DirInbound) {
		s.Close()
	}
	t = time.NewTimer(resyncHelloWait)
	hello := true
	select {
	case <-hold.hello:
	case <-t.C:
		hello = false
	case <-h.ctx.Done():
	}
	t.Stop()
	if !respawned {
		pp.inject(p)
	}
	h.pathStats.resyncs.Add(1)
	h.log.Debug("pubsub: re-announced subscriptions", "peer", p, "reason", why, "respawned", respawned, "hello", hello, "took", time.Since(start))
}
