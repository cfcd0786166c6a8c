package p2p

import (
	"context"
	"crypto/sha256"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
)

// Tuning. A personal node talks to tens or hundreds of peers, not thousands,
// and must absorb bursts (a client sending many events, a peer catching up)
// without dropping messages, so queues are deep and limits generous.
const (
	// Connection manager watermarks: above connHigh connections, trim down
	// to connLow, sparing protected peers (room members) and new ones.
	connLow   = 100
	connHigh  = 400
	connGrace = time.Minute

	// GossipSub queues; a full queue drops messages. See "GossipSub for
	// rooms" below for the sizes.
	outboundQueue = 8192 // per peer, messages waiting to be written
	validateQueue = 8192 // per node, messages waiting for validation
	roomBuffer    = 1024 // per room, validated messages waiting for the Receiver

	// MaxMessageSize bounds the data of one room message (Publish).
	MaxMessageSize = 1 << 20
	// pubsubFrameSize bounds a whole pubsub RPC: a message plus its signature,
	// key, topic and control data.
	pubsubFrameSize = MaxMessageSize + 64<<10
)

// baseOptions are the libp2p options every parley host uses.
func baseOptions(key crypto.PrivKey, rm network.ResourceManager, cm *connmgr.BasicConnMgr) []libp2p.Option {
	return []libp2p.Option{
		libp2p.Identity(key),
		// Start binds listen addresses one by one, so that each failure is
		// reported (libp2p itself succeeds if any one address binds).
		libp2p.NoListenAddrs,
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(quic.NewTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Security(libp2ptls.ID, libp2ptls.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.ResourceManager(rm),
		libp2p.ConnectionManager(cm),
		// The relay client (dial and accept relayed connections) costs
		// nothing until a relay is in use; the Host keeps relay
		// reservations itself (relay.go). DCUtR hole punching is enabled
		// with the Host's address options (addrOptions), which trace it
		// for the NAT type. AutoNAT (v1) runs
		// on every libp2p host; the service answers other nodes' probes,
		// so that parley nodes learn their reachability from each other
		// (rate-limited by libp2p: 30 probes a minute, 3 per peer).
		libp2p.EnableRelay(),
		libp2p.EnableNATService(),
		libp2p.DisableMetrics(),
		libp2p.UserAgent("parley"),
	}
}

// Resource limits. libp2p's scaled defaults cap memory and streams in ways
// that stall yamux windows and drop bursts, and infinite limits let one
// stranger hold gigabytes; these are finite everywhere, and sized for a
// personal node: tens to hundreds of peers, a few rooms each.
const (
	// Per peer: the request protocol answers at most maxInflightPerPeer
	// requests of a peer at a time (request.go); a few more streams wait
	// their turn, and pubsub, identify, DHT and relay streams need a
	// handful. Streams beyond the cap are reset as they open.
	peerStreamsInbound  = 64
	peerStreamsOutbound = 256
	peerConns           = 8
	// peerMemory bounds what yamux may reserve for one peer's receive
	// windows: enough for a 16 MiB window on a few streams at once.
	peerMemory = 64 << 20

	systemConns          = 1024
	systemConnsInbound   = 512
	systemStreams        = 8192
	systemStreamsInbound = 4096
	systemMemory         = 1 << 30

	// Streams and connections not yet attributed to a peer or protocol.
	transientConns   = 128
	transientStreams = 512
	transientMemory  = 64 << 20
)

// newResourceManager returns a resource manager with finite limits on
// connections, streams and (yamux) memory, per peer and for the whole
// node, so that no peer, and no crowd of them, can exhaust file
// descriptors, goroutines or memory. It keeps libp2p's per-IP connection
// limits (loopback exempt).
func newResourceManager() (network.ResourceManager, error) {
	limits := rcmgr.PartialLimitConfig{
		System: rcmgr.ResourceLimits{
			Conns:          systemConns,
			ConnsInbound:   systemConnsInbound,
			Streams:        systemStreams,
			StreamsInbound: systemStreamsInbound,
			Memory:         systemMemory,
		},
		Transient: rcmgr.ResourceLimits{
			Conns:   transientConns,
			Streams: transientStreams,
			Memory:  transientMemory,
		},
		PeerDefault: rcmgr.ResourceLimits{
			Conns:           peerConns,
			Streams:         peerStreamsInbound + peerStreamsOutbound,
			StreamsInbound:  peerStreamsInbound,
			StreamsOutbound: peerStreamsOutbound,
			Memory:          peerMemory,
		},
	}.Build(rcmgr.InfiniteLimits)
	return rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(limits), rcmgr.WithMetricsDisabled())
}

func newConnManager() (*connmgr.BasicConnMgr, error) {
	return connmgr.NewConnManager(connLow, connHigh, connmgr.WithGracePeriod(connGrace))
}

// newPubSub starts GossipSub tuned for bursts and low latency:
//   - flood publishing: our own messages go straight to every peer known to
//     be in the topic, without waiting for the mesh to form at a heartbeat;
//   - the parameters and queue sizes stated at gossipParams, for rooms of
//     2 to 200 members;
//   - an RPC inspector (inflow.go) that keeps copies of queued messages and
//     a flooding peer's excess off the shared validation queue;
//   - no pubsub signatures: the events a room carries are signed by their
//     servers and checked by the validator, so messages carry no author;
//   - peer exchange on prune, which helps small networks find each other;
//   - relayed connections count (see pubsubHost), so members behind NATs
//     that defeat hole punching still get room messages through a relay;
//   - peer scoring (score.go): peers that relay forgeries are graylisted;
//   - a subscription filter (subfilter.go): a peer cannot make us track
//     more than a few topics we are not in.
func (h *Host) newPubSub(ctx context.Context, lh host.Host, tr *tracer) (*pubsub.PubSub, error) {
	return pubsub.NewGossipSub(ctx, pubsubHost{lh, h.pspaths},
		pubsub.WithGossipSubParams(gossipParams()),
		pubsub.WithFloodPublish(true),
		pubsub.WithPeerExchange(true),
		pubsub.WithPeerOutboundQueueSize(outboundQueue),
		pubsub.WithValidateQueueSize(validateQueue),
		pubsub.WithValidateWorkers(validateWorkers),
		// No pubsub signature: every room event is signed by its server,
		// and the validator checks that signature, so pubsub's own was a
		// second ed25519 verification of every delivery (11-17% of a
		// delivery's CPU). Messages have no author or sequence number;
		// their ID is the hash of their bytes, and publishers are told
		// apart by the stream header (order.go).
		pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign),
		pubsub.WithNoAuthor(),
		pubsub.WithMessageIdFn(contentID),
		pubsub.WithMaxMessageSize(pubsubFrameSize),
		pubsub.WithPeerScore(peerScoreParams(), peerScoreThresholds()),
		pubsub.WithPeerScoreInspect(tr.keepScores, scoreDecayInterval),
		pubsub.WithSubscriptionFilter(h.subs),
		pubsub.WithPeerFilter(h.subs.peerAllowed),
		pubsub.WithAppSpecificRpcInspector(h.inflow.inspect),
		pubsub.WithRawTracer(tr),
		pubsub.WithLogger(h.log.With("layer", "gossipsub")),
	)
}

// GossipSub for rooms of 2 to 200 members, at up to 1,000 messages a second
// in a room (the target: 10 members each receiving ~1,000 msg/s, p99 <=
// 250 ms). Measured with BenchmarkRoom and BenchmarkRoomTuning (10 hosts,
// each message ed25519-checked by every receiver); CPU per delivery is
// the figure compared, as wall time swings with the machine's other load.
//
//   - Flood publishing (on): the author sends each message straight to every
//     member it is connected to, which in a room of up to a few dozen is
//     everyone, so delivery takes one hop and never waits for the mesh or
//     a heartbeat. The mesh carries it on to the members the author is not
//     connected to, and covers losses.
//   - D=6, Dlo=5, Dhi=12 (the defaults). In rooms of up to 7 the mesh is
//     everyone; in a room of 200, a mesh of 6 reaches everyone in about 3
//     hops and survives several members going away at once. Each message
//     travels about members x D times, but the copies cost little: inflow.go
//     strips those waiting for validation and pubsub's seen cache the rest.
//     D=4 (Dlo 3, Dhi 8) measured no different: 515 vs 515 and 568 vs 576
//     us of CPU per delivery (load 5-7), so redundancy is not traded away.
//   - IDONTWANT only for messages of 8 KiB and more. Each one a node
//     receives past the threshold makes it send an IDONTWANT to every
//     mesh peer: D control RPCs to save a few duplicate copies, which
//     costs more than it saves until messages are several KiB. The
//     default threshold, 1 KiB, was above every plain chat event; once
//     rooms were encrypted (issue 11) a chat event grew to 1.3-1.7 KB
//     sealed and crossed it, and 10 nodes x 200 messages fell from
//     124-136 to 97-111 msg/s (1,281-1,359 -> 1,573-1,652 us of CPU
//     per delivery, load 1.9-2.2). Announcing smaller ones too measured
//     no gain earlier (546-579 vs 515-576 us/delivery).
//   - Dlazy=6, GossipFactor 0.25, HistoryGossip 3, HistoryLength 5 (the
//     defaults): each heartbeat advertises the last 3 s of message IDs to
//     a few non-mesh members, which fetch what they missed; the cache keeps
//     5 s of messages, at 1,000 msg/s about 5,000 (5 MB of 1 KB events), and
//     no more than the traffic of those 5 s.
//   - Heartbeat every second (the default), first one after 50 ms, so that a
//     new member's mesh forms at once. Delivery does not wait for it (flood
//     publishing); a faster heartbeat would only cost more control traffic
//     in every room.
//   - Queues. Outbound, per peer, 8,192 RPCs: pubsub keeps it as a slice
//     that grows on demand, so the depth costs nothing until a peer is slow,
//     and then holds 8 s of a 1,000 msg/s room for it. Validation, one per
//     node, 8,192: a burst of 1,800 messages in a 10-member room arriving up
//     to 7 times each overflowed it before inflow.go kept copies and
//     flooding peers out (14,529 dropped); now one peer can hold at most
//     peerMsgBurst of it. Subscription, per room, 1,024: a channel allocated
//     whole when the room is joined, 8 KB (at 2,048 slots it was 16 KB a
//     room, 19 MB of a 1,000-room node's heap; at 8,192, 64 MB). The
//     receive loop drains it without I/O (the Receiver only queues into
//     the room's own bounded inbox), yet it still falls behind when
//     pubsub's event loop hands over a burst without yielding the CPU:
//     in TestBurstOfPublishesAllArriveInOrder (2,000 publishes at once, 3
//     hosts on 2 cores) 256 slots lost messages in 3 runs of 5 and 512 in
//     1 of 5; 1,024 lost none in 20.
//   - One validation worker. Validators run inline, so the worker runs our
//     event signature check (~90 us; pubsub's own message signature, a
//     second one, is gone: see newPubSub). Two workers
//     would keep per-author order (order.go restores it, whichever worker
//     finishes first) but call the Validator concurrently, which node's
//     validator is not written for (its gate and verified cache), and measured
//     no better here: 470-568 vs 515-576 us/delivery, because 10 in-process
//     hosts already keep both cores busy. For one node per device it could
//     double validation throughput; worth a per-process measurement once the
//     validator is safe for concurrent use.
//
// Where the CPU goes (profile of BenchmarkRoom, 10 hosts, 540 us per
// delivery at load 4): ed25519 checks 29% (pubsub's signature of the
// message 17%, the Validator's 12%), QUIC 17-25%, pubsub's loops and GC
// most of the rest. TCP-only hosts cost 496-508 us per delivery against
// 614-707 with QUIC (load 5-6).
var gossipParams = func() pubsub.GossipSubParams {
	p := pubsub.DefaultGossipSubParams()
	p.D, p.Dlo, p.Dhi = 6, 5, 12
	p.Dlazy, p.GossipFactor = 6, 0.25
	p.HistoryLength, p.HistoryGossip = 5, 3
	p.HeartbeatInterval = time.Second
	p.HeartbeatInitialDelay = 50 * time.Millisecond
	p.IDontWantMessageThreshold = 8 << 10
	return p
}

// validateWorkers: see "One validation worker" above. gossipParams and
// validateWorkers are variables so that BenchmarkRoomTuning can compare
// settings.
var validateWorkers = 1

// Stats counts messages lost to full queues since Start. Non-zero values mean
// the node fell behind and should catch up through requests.
type Stats struct {
	DroppedOutbound uint64 // messages not sent because a peer's queue was full
	DroppedInbound  uint64 // received messages dropped before validation (queue full)
	Undelivered     uint64 // validated messages dropped because a Receiver was too slow
	// Throttled counts messages dropped unread because the peer sending
	// them was over its share of validation (inflow.go).
	Throttled uint64
	// RequestsRefused counts request streams reset unread because the
	// peer, or the node, had too many requests in flight.
	RequestsRefused uint64
	// Strangers counts room messages ignored unread because the peer
	// that sent them is not allowed in the room (SetRoomMembers), and
	// Unopened those rejected because they did not open under the
	// topic's key.
	Strangers uint64
	Unopened  uint64
}

// Stats returns the drop counters.
func (h *Host) Stats() Stats {
	return Stats{
		DroppedOutbound: h.stats.droppedOut.Load(),
		DroppedInbound:  h.stats.droppedIn.Load(),
		Undelivered:     h.stats.undelivered.Load(),
		Throttled:       h.stats.throttled.Load(),
		RequestsRefused: h.stats.refused.Load(),
		Strangers:       h.stats.strangers.Load(),
		Unopened:        h.stats.unopened.Load(),
	}
}

type counters struct {
	droppedOut, droppedIn, undelivered, refused, throttled, strangers, unopened atomic.Uint64
}

// tracer counts pubsub drops and logs them at exponentially spaced counts
// (1, 2, 4, 8...) so that a flood does not flood the log too. It also keeps
// track of our mesh peers per topic, which pubsub does not expose.
type tracer struct {
	h *Host

	mu     sync.Mutex
	mesh   map[string]map[peer.ID]struct{} // topic -> peers in our mesh
	scores map[peer.ID]float64             // GossipSub's peer scores, as last inspected
}

func newTracer(h *Host) *tracer {
	return &tracer{h: h, mesh: make(map[string]map[peer.ID]struct{})}
}

// keepScores takes pubsub's periodic report of peer scores.
func (t *tracer) keepScores(scores map[peer.ID]float64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.scores = scores
}

// score returns a peer's GossipSub score as last inspected (0 if unknown).
func (t *tracer) score(p peer.ID) float64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.scores[p]
}

// meshPeers returns the peers in our mesh for topic: those we relay its
// messages to.
func (t *tracer) meshPeers(topic string) []peer.ID {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]peer.ID, 0, len(t.mesh[topic]))
	for p := range t.mesh[topic] {
		out = append(out, p)
	}
	return out
}

func (t *tracer) Graft(p peer.ID, topic string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	m := t.mesh[topic]
	if m == nil {
		m = make(map[peer.ID]struct{})
		t.mesh[topic] = m
	}
	m[p] = struct{}{}
}

func (t *tracer) Prune(p peer.ID, topic string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.mesh[topic], p)
}

func (t *tracer) Leave(topic string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.mesh, topic)
}

func (t *tracer) OnClosedOutboundStream(p peer.ID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, m := range t.mesh {
		delete(m, p)
	}
}

func (t *tracer) count(c *atomic.Uint64, what string, args ...any) {
	t.h.countAndLog(c, what, args...)
}

// countAndLog adds one to c and logs a warning at exponentially spaced
// counts (1, 2, 4, 8...), so that a flood does not flood the log too.
func (h *Host) countAndLog(c *atomic.Uint64, what string, args ...any) {
	n := c.Add(1)
	if n&(n-1) == 0 {
		h.log.LogAttrs(context.Background(), slog.LevelWarn, what,
			append([]slog.Attr{slog.Uint64("total", n)}, slog.Group("last", args...))...)
	}
}

func (t *tracer) DropRPC(_ *pubsub.RPC, p peer.ID) {
	t.count(&t.h.stats.droppedOut, "pubsub: peer queue full, message dropped", "peer", p)
}

func (t *tracer) RejectMessage(msg *pubsub.Message, reason string) {
	if reason == pubsub.RejectValidationQueueFull || reason == pubsub.RejectValidationThrottled {
		t.h.inflow.dropped(msg.Message)
		t.count(&t.h.stats.droppedIn, "pubsub: validation queue full, message dropped",
			"from", msg.GetFrom(), "reason", reason)
	}
}

func (t *tracer) UndeliverableMessage(msg *pubsub.Message) {
	t.count(&t.h.stats.undelivered, "pubsub: receiver too slow, message dropped",
		"topic", msg.GetTopic(), "from", msg.GetFrom())
}

func (t *tracer) OnNewOutboundStream(peer.ID, protocol.ID)             {}
func (t *tracer) Join(string)                                          {}
func (t *tracer) ValidateMessage(*pubsub.Message)                      {}
func (t *tracer) DeliverMessage(*pubsub.Message)                       {}
func (t *tracer) DuplicateMessage(*pubsub.Message)                     {}
func (t *tracer) ThrottlePeer(peer.ID)                                 {}
func (t *tracer) RecvRPC(rpc *pubsub.RPC)                              { t.h.live.heard(rpc.From()) }
func (t *tracer) SendRPC(_ *pubsub.RPC, p peer.ID)                     { t.h.live.sent(p) }
func (t *tracer) SendRPCCompleted(*pubsub.RPC, peer.ID, time.Duration) {}

// contentID is a message's ID: the SHA-256 of its bytes, header included,
// so two publishes of one event are two messages.
func contentID(m *pb.Message) string {
	sum := sha256.Sum256(m.GetData())
	return string(sum[:])
}
