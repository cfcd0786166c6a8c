package p2p

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/p2p/host/eventbus"
	relayclient "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	pbv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/pb"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/proto"
	relayv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	ma "github.com/multiformats/go-multiaddr"
)

// Reaching peers beyond the LAN.
//
// A node learns whether it is reachable from the internet through AutoNAT
// (every parley node answers AutoNAT probes for others). A node that is not
// known to be public keeps reservations with up to maxRelays circuit relays
// (relayCandidates: Config.Relays first, then bootstrap peers that offer the
// relay service, then room members that do, then relays found on the public
// libp2p network if Config.PublicNetwork) and advertises circuit addresses
// through them, so that others can reach it through the relay; DCUtR then
// tries to replace each relayed connection with a direct one (hole punching).
// Requests and room messages work over relayed connections too (see
// limited.go), so a conversation survives a NAT that defeats hole punching.
//
// Members relay for members: unless Config.RelayService (an open relay) or
// Config.NoMemberRelay, every node offers a relay service whose ACL admits
// room members only (memberACL, limits at memberRelayDuration). The Host
// runs the service only while the node is publicly reachable, by AutoNAT
// (a public address or a mapped port) or by an inbound connection from the
// internet (memberRelayLoop, selfrelay.go), and stops it otherwise; its peers see the hop
// protocol come and go through identify, which is how a member becomes, and
// stops being, a relay candidate. So a room with one reachable member works
// across any NATs with no infrastructure.
//
// Reservations are kept here rather than by libp2p's autorelay, which
// announces circuit addresses only through relays with public IP addresses
// and starts only after AutoNAT has decided (15 s or more): parley uses the
// relay addresses the user configured as they are, and reserves as soon as a
// relay is connected. The circuit addresses go to libp2p's address manager
// through the same event autorelay would send, so identify, the DHT and
// Addrs carry them.

// Limits of the relay service (Config.RelayService). libp2p's defaults (2
// minutes and 128 KiB per relayed connection) suit a relay that only helps
// peers to hole-punch; parley's relays also carry conversations between
// peers behind NATs that defeat hole punching, so a relayed connection lasts
// hours and may carry two maximum-size responses each way. When a limit is
// reached the relay resets the connection and the peers reconnect through it
// (room members are redialled by the node).
const (
	relayLimitDuration   = 2 * time.Hour
	relayLimitData       = 2 * MaxResponseSize // bytes each way per relayed connection
	relayReservationTTL  = time.Hour           // clients refresh before it ends
	relayMaxReservations = 128                 // peers holding a reservation at once
	relayMaxCircuits     = 16                  // relayed connections per peer
	relayBufferSize      = 16 << 10            // per direction per relayed connection
)

// Relay client tuning.
const (
	maxRelays       = 2                // reservations held at once
	reserveTimeout  = 15 * time.Second // connecting to a relay and reserving
	refreshBefore   = 5 * time.Minute  // refresh a reservation this long before it ends
	relayRetryMin   = 5 * time.Second  // first wait after a failed reservation
	relayRetryMax   = 5 * time.Minute  // longest wait between attempts with one relay
	relayIdle       = time.Minute      // look at reservations at least this often
	relayShortLook  = 3 * time.Second  // and this often while short of relays (see tendRelays)
	relayProtectTag = "parley-relay"   // connection manager tag of relays in use
	relaySettle     = time.Second      // age of a relay connection before announcing circuit addresses
	relayMinTTL     = time.Second      // a shorter reservation is refused (it would be renewed without rest)
)

// Limits of the member relay, chosen for chat, not bulk media. A sealed chat
// event is 1.3-1.7 KB, so a very busy room (one message a second) moves about
// 5.4 MB an hour plus gossip control: 32 MiB each way is some six times the
// busiest chat hour, and a relayed connection lasts an hour before the relay
// resets it and the members redial through it. Media (MaxResponseSize) does
// not fit, on purpose: a large download waits for a direct connection. A
// personal node serving a family or a newsroom needs tens of reservations,
// not hundreds; 4 relayed connections per peer cover a member's few devices
// and reconnects. Every relayed connection has a reserved destination, so at
// most 32 x 4 = 128 are open at once, each with two 16 KiB buffers: 4 MiB of
// buffers at worst, and at most 128 x 2 x 32 MiB = 8 GiB relayed an hour.
// Reservations per IP address bound what one household (or one attacker
// holding many member keys) takes; per ASN keeps libp2p's default.
const (
	memberRelayDuration        = time.Hour
	memberRelayData            = 32 << 20 // bytes each way per relayed connection
	memberReservationTTL       = time.Hour
	memberMaxReservations      = 32
	memberMaxCircuits          = 4
	memberBufferSize           = 16 << 10
	memberMaxReservationsPerIP = 8
)

// relayServiceOptions make the host a relay for others. The service runs only
// while the host believes it is publicly reachable, which an operator who sets
// RelayService asserts: AutoNAT is not consulted.
func relayServiceOptions(mr *memberRelay) []libp2p.Option {
	rc := relayv2.DefaultResources()
	rc.Limit = &relayv2.RelayLimit{Duration: relayLimitDuration, Data: relayLimitData}
	rc.ReservationTTL = relayReservationTTL
	rc.MaxReservations = relayMaxReservations
	rc.MaxCircuits = relayMaxCircuits
	rc.BufferSize = relayBufferSize
	return []libp2p.Option{
		libp2p.ForceReachabilityPublic(),
		libp2p.EnableRelayService(relayv2.WithResources(rc), relayv2.WithMetricsTracer(relayTracer{mr})),
	}
}

// memberRelayServiceOptions are the options of the member relay, which
// memberRelayLoop (selfrelay.go) starts while the node is publicly reachable.
func memberRelayServiceOptions(mr *memberRelay) []relayv2.Option {
	rc := relayv2.DefaultResources()
	rc.Limit = &relayv2.RelayLimit{Duration: memberRelayDuration, Data: memberRelayData}
	rc.ReservationTTL = memberReservationTTL
	rc.MaxReservations = memberMaxReservations
	rc.MaxCircuits = memberMaxCircuits
	rc.BufferSize = memberBufferSize
	rc.MaxReservationsPerIP = memberMaxReservationsPerIP
	return []relayv2.Option{
		relayv2.WithResources(rc),
		relayv2.WithACL(memberACL{mr}),
		relayv2.WithMetricsTracer(relayTracer{mr}),
	}
}

// relayOptions are the relay service options of the host, if any:
// RelayService's open relay, run by libp2p's relay manager. The member relay
// is not a libp2p option: memberRelayLoop runs it.
func (h *Host) relayOptions() []libp2p.Option {
	if h.service {
		return relayServiceOptions(&h.mr)
	}
	return nil
}

// memberRelay is the state of this node's relay service (the member relay,
// or RelayService's open relay) and what the relay loop knows of members as
// relays.
type memberRelay struct {
	members     func(peer.ID) bool // Config.Members
	memberPeers func() []peer.ID   // Config.MemberPeers
	enabled     bool               // a relay service is configured

	running      atomic.Bool  // the service is up (its metrics tracer says so)
	reservations atomic.Int64 // reservations held by others with this node
	refused      atomic.Uint64
	proof        publicProof // inbound connections that show the node reachable (selfrelay.go)

	// hopSince is when each member was first seen, in a row, offering
	// the relay service; members offering it longest are tried first. It
	// holds members only and belongs to the relay loop.
	hopSince map[peer.ID]time.Time
}

// initRelay takes the relay settings from cfg; New calls it.
func (h *Host) initRelay(cfg Config) {
	h.mr = memberRelay{
		members:     cfg.Members,
		memberPeers: cfg.MemberPeers,
		enabled:     cfg.RelayService || !cfg.NoMemberRelay,
		hopSince:    make(map[peer.ID]time.Time),
	}
	h.mr.proof.init()
	h.pub.enabled = cfg.PublicNetwork
	if cfg.PublicNetwork {
		h.pub.bootstrap = publicBootstrapPeers()
	}
}

func (m *memberRelay) isMember(p peer.ID) bool {
	return m.members != nil && m.members(p)
}

// memberACL admits room members to the member relay. A reservation needs the
// reserving peer to be a member. A relayed connection needs its destination
// to be a member, not its source: a joiner holding an invite link is not a
// room member yet when it dials the inviter through the relay, and the
// destination chose to be reachable through us by reserving. A member that
// leaves every room shared with us keeps its reservation until it ends, but
// no connection reaches it through us from then on. Each refusal is counted.
type memberACL struct{ m *memberRelay }

func (a memberACL) AllowReserve(p peer.ID, _ ma.Multiaddr) bool {
	return a.allow(p)
}

func (a memberACL) AllowConnect(_ peer.ID, _ ma.Multiaddr, dest peer.ID) bool {
	return a.allow(dest)
}

func (a memberACL) allow(p peer.ID) bool {
	if a.m.isMember(p) {
		return true
	}
	a.m.refused.Add(1)
	return false
}

// relayTracer follows the relay service for status: whether it runs and how
// many reservations it holds.
type relayTracer struct{ m *memberRelay }

func (t relayTracer) RelayStatus(enabled bool) { t.m.running.Store(enabled) }
func (t relayTracer) ReservationAllowed(isRenewal bool) {
	if !isRenewal {
		t.m.reservations.Add(1)
	}
}
func (t relayTracer) ReservationClosed(cnt int)           { t.m.reservations.Add(-int64(cnt)) }
func (relayTracer) ConnectionOpened()                     {}
func (relayTracer) ConnectionClosed(time.Duration)        {}
func (relayTracer) ConnectionRequestHandled(pbv2.Status)  {}
func (relayTracer) ReservationRequestHandled(pbv2.Status) {}
func (relayTracer) BytesTransferred(int)                  {}

// heldRelay is a reservation with a relay.
type heldRelay struct {
	addrs   []ma.Multiaddr // the relay's transport addresses, without /p2p
	expires time.Time
	ttl     time.Duration // the reservation's length when made
}

// refreshAt is when to renew the reservation: refreshBefore before it ends,
// or a quarter of its length before if that is shorter (a relay with short
// reservations is not asked again and again).
func (r heldRelay) refreshAt() time.Time {
	return r.expires.Add(-min(refreshBefore, r.ttl/4))
}

// retryAt is when a relay that failed may be tried again.
type retryAt struct {
	at    time.Time
	delay time.Duration
}

// Reachability reports what the node knows of its reachability from the
// internet: "public", "private" (behind a NAT or firewall) or "unknown" (not
// yet decided; AutoNAT needs a few peers that answer its probes).
func (h *Host) Reachability() string {
	switch network.Reachability(h.reach.Load()) {
	case network.ReachabilityPublic:
		return "public"
	case network.ReachabilityPrivate:
		return "private"
	}
	return "unknown"
}

// RelayAddrs returns the node's circuit addresses (through relays it holds a
// reservation with), as full multiaddrs ending in /p2p-circuit/p2p/<peer ID>.
// Empty when the node holds no reservation.
func (h *Host) RelayAddrs() []string {
	var out []string
	for _, a := range h.circuitAddrs() {
		out = append(out, a.Encapsulate(ma.StringCast("/p2p/"+h.id.String())).String())
	}
	return out
}

// circuitAddrs returns the circuit addresses of the reservations held, each
// <relay address>/p2p/<relay>/p2p-circuit, sorted.
func (h *Host) circuitAddrs() []ma.Multiaddr {
	h.relayMu.Lock()
	defer h.relayMu.Unlock()
	var out []ma.Multiaddr
	for p, r := range h.held {
		out = append(out, circuitsThrough(p, r)...)
	}
	slices.SortFunc(out, func(a, b ma.Multiaddr) int { return a.Compare(b) })
	return out
}

// circuitsThrough returns the circuit addresses through relay p.
func circuitsThrough(p peer.ID, r heldRelay) []ma.Multiaddr {
	circuit := ma.StringCast("/p2p/" + p.String() + "/p2p-circuit")
	out := make([]ma.Multiaddr, 0, len(r.addrs))
	for _, a := range r.addrs {
		out = append(out, a.Encapsulate(circuit))
	}
	return out
}

// relayClientEvents subscribes to what the relay loop reacts to, and makes
// the emitter of circuit addresses.
func (h *Host) relayClientEvents(lh host.Host) (event.Subscription, error) {
	sub, err := lh.EventBus().Subscribe([]any{
		new(event.EvtLocalReachabilityChanged),
		new(event.EvtPeerConnectednessChanged),
		new(event.EvtPeerIdentificationCompleted),
		new(event.EvtPeerProtocolsUpdated),
	}, eventbus.Name("parley relays"), eventbus.BufSize(256))
	if err != nil {
		return nil, fmt.Errorf("p2p: subscribe to relay events: %w", err)
	}
	emitter, err := lh.EventBus().Emitter(new(event.EvtAutoRelayAddrsUpdated), eventbus.Stateful)
	if err != nil {
		sub.Close()
		return nil, fmt.Errorf("p2p: relay address emitter: %w", err)
	}
	h.relayAddrsOut = emitter
	return sub, nil
}

// relayWatch tracks reachability and wakes relayLoop when an event concerns
// the relays. It never blocks on the network, so it keeps up with libp2p's
// event bus (a slow subscriber would hold up every emitter).
func (h *Host) relayWatch(sub event.Subscription, kick chan<- struct{}) {
	defer sub.Close()
	for {
		select {
		case <-h.ctx.Done():
			return
		case e, ok := <-sub.Out():
			if !ok {
				return
			}
			if !h.relayEventMatters(e) {
				continue
			}
			select {
			case kick <- struct{}{}:
			default: // a look is due already
			}
		}
	}
}

// relayLoop keeps reservations with relays while the node is not public.
func (h *Host) relayLoop(lh host.Host, kick <-chan struct{}) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-h.ctx.Done():
			return
		case <-kick:
		case <-timer.C:
		}
		timer.Reset(h.tendRelays(lh))
	}
}

// relayEventMatters records reachability changes and tells whether e calls
// for a look at the reservations.
func (h *Host) relayEventMatters(e any) bool {
	var p peer.ID
	switch ev := e.(type) {
	case event.EvtLocalReachabilityChanged:
		old := h.reach.Swap(int32(ev.Reachability))
		if old != int32(ev.Reachability) {
			h.log.Info("reachability", "status", h.Reachability())
			h.mr.proof.wake() // memberRelayLoop follows reachability too
		}
		return true
	case event.EvtPeerConnectednessChanged:
		p = ev.Peer
	case event.EvtPeerIdentificationCompleted:
		p = ev.Peer
	case event.EvtPeerProtocolsUpdated:
		p = ev.Peer
	default:
		return false
	}
	h.relayMu.Lock()
	_, held := h.held[p]
	h.relayMu.Unlock()
	return held || h.isRelayCandidate(p) || h.publicRelayEvent(e)
}

// isRelayCandidate reports whether p is, or may become, a relay candidate:
// a configured relay, a bootstrap peer or a room member. Events about these
// wake the relay loop, so that a member whose relay service starts (the hop
// protocol appears in identify) is used at once.
func (h *Host) isRelayCandidate(p peer.ID) bool {
	has := func(ai peer.AddrInfo) bool { return ai.ID == p }
	return slices.ContainsFunc(h.relays, has) || slices.ContainsFunc(h.bootstrap, has) || h.mr.isMember(p)
}

// offersRelay reports whether the peerstore lists the relay service (hop)
// among p's protocols, as identify last told.
func offersRelay(lh host.Host, p peer.ID) bool {
	protos, err := lh.Peerstore().SupportsProtocols(p, proto.ProtoIDv2Hop)
	return err == nil && len(protos) > 0
}

// stoppedRelaying reports whether identify has told p's protocols and the
// relay service (hop) is not among them.
func stoppedRelaying(lh host.Host, p peer.ID) bool {
	protos, err := lh.Peerstore().GetProtocols(p)
	return err == nil && len(protos) > 0 && !slices.Contains(protos, proto.ProtoIDv2Hop)
}

// relayCandidates lists the configured relays, then the bootstrap peers, the
// room members and (with Config.PublicNetwork) the public network's peers
// known to offer the relay service. Members that have offered it longest
// come first: a member that flaps between public and private loses its
// place. Candidates other than configured relays carry no addresses: reserve
// takes them from the connection.
func (h *Host) relayCandidates(lh host.Host, now time.Time) []peer.AddrInfo {
	out := slices.Clone(h.relays)
	listed := func(p peer.ID) bool {
		return p == h.id || slices.ContainsFunc(out, func(c peer.AddrInfo) bool { return c.ID == p })
	}
	for _, ai := range h.bootstrap {
		if !listed(ai.ID) && offersRelay(lh, ai.ID) {
			out = append(out, ai)
		}
	}
	out = append(out, h.memberRelays(lh, now, listed)...)
	for _, p := range h.publicRelays(lh) {
		if !listed(p) {
			out = append(out, peer.AddrInfo{ID: p})
		}
	}
	return out
}

// memberRelays lists the members offering the relay service that are not
// listed yet, longest offering first, and keeps hopSince. Only members with a
// direct connection now count: what the peerstore remembers of others may be
// old, and dialling each would hold up the relay loop (reserveTimeout each).
// The node keeps connections with room members; one that is public is
// dialled directly.
func (h *Host) memberRelays(lh host.Host, now time.Time, listed func(peer.ID) bool) []peer.AddrInfo {
	if h.mr.memberPeers == nil {
		clear(h.mr.hopSince)
		return nil
	}
	var ids []peer.ID
	seen := make(map[peer.ID]bool)
	for _, p := range h.mr.memberPeers() {
		if seen[p] || listed(p) {
			continue
		}
		seen[p] = true
		if lh.Network().Connectedness(p) != network.Connected || !offersRelay(lh, p) {
			continue
		}
		if _, ok := h.mr.hopSince[p]; !ok {
			h.mr.hopSince[p] = now
		}
		ids = append(ids, p)
	}
	offering := make(map[peer.ID]bool, len(ids))
	for _, p := range ids {
		offering[p] = true
	}
	maps.DeleteFunc(h.mr.hopSince, func(p peer.ID, _ time.Time) bool { return !offering[p] })
	slices.SortStableFunc(ids, func(a, b peer.ID) int { return h.mr.hopSince[a].Compare(h.mr.hopSince[b]) })
	out := make([]peer.AddrInfo, len(ids))
	for i, p := range ids {
		out[i] = peer.AddrInfo{ID: p}
	}
	return out
}

// tendRelays drops reservations that ended, refreshes those about to end and
// makes new ones up to maxRelays; a public node lets its reservations go. It
// returns how long until it should run again.
func (h *Host) tendRelays(lh host.Host) time.Duration {
	now := time.Now()
	next := now.Add(relayIdle)
	h.relayMu.Lock()
	held := make(map[peer.ID]heldRelay, len(h.held))
	for p, r := range h.held {
		held[p] = r
	}
	h.relayMu.Unlock()
	drop := func(p peer.ID) {
		delete(held, p)
		lh.ConnManager().Unprotect(p, relayProtectTag)
	}

	if network.Reachability(h.reach.Load()) == network.ReachabilityPublic {
		// Reachable directly: no relay needed; the reservations lapse.
		for p := range held {
			drop(p)
		}
	} else {
		for p, r := range held {
			// A reservation lives on the connection that made it, and
			// ends with the relay service (a member relay stops when
			// its node stops being public; identify tells).
			if lh.Network().Connectedness(p) != network.Connected || !now.Before(r.expires) || stoppedRelaying(lh, p) {
				h.log.Info("relay reservation ended", "relay", p)
				drop(p)
				// Try the other candidates first: this relay may be gone.
				h.relayFailed(p, now)
				continue
			}
			if now.Before(r.refreshAt()) {
				next = earliest(next, r.refreshAt())
				continue
			}
			fresh, err := h.reserve(lh, peer.AddrInfo{ID: p, Addrs: r.addrs})
			if err != nil {
				h.log.Warn("relay reservation not renewed", "relay", p, "err", err)
				drop(p)
				next = earliest(next, h.relayFailed(p, now))
				continue
			}
			h.log.Debug("relay reservation renewed", "relay", p, "expires", fresh.expires.Format(time.RFC3339))
			held[p] = fresh
			next = earliest(next, fresh.refreshAt())
		}
		candidates := h.relayCandidates(lh, now)
		for _, ai := range candidates {
			if len(held) >= maxRelays || h.ctx.Err() != nil {
				break
			}
			if _, ok := held[ai.ID]; ok {
				continue
			}
			if r, ok := h.relayRetry[ai.ID]; ok && now.Before(r.at) {
				next = earliest(next, r.at)
				continue
			}
			r, err := h.reserve(lh, ai)
			if err != nil {
				if h.ctx.Err() == nil {
					h.log.Debug("no reservation with relay", "relay", ai.ID, "err", err)
				}
				next = earliest(next, h.relayFailed(ai.ID, now))
				continue
			}
			delete(h.relayRetry, ai.ID)
			lh.ConnManager().Protect(ai.ID, relayProtectTag)
			held[ai.ID] = r
			h.log.Info("relay reservation", "relay", ai.ID, "expires", r.expires.Format(time.RFC3339))
			next = earliest(next, r.refreshAt())
		}
		// Backoffs are kept for candidates only, so the map stays as
		// small as the candidate list.
		isCandidate := make(map[peer.ID]bool, len(candidates))
		for _, c := range candidates {
			isCandidate[c.ID] = true
		}
		maps.DeleteFunc(h.relayRetry, func(p peer.ID, _ retryAt) bool { return !isCandidate[p] })
		if len(held) < maxRelays && h.mr.memberPeers != nil {
			// A member may offer the relay service before this node
			// counts it as a member (identify on the connection that
			// carries the join), and no event tells when it becomes
			// one: look again soon. Each look reads the peerstore of
			// connected members only.
			next = earliest(next, now.Add(relayShortLook))
		}
		if h.pub.enabled && len(held) < maxRelays {
			// The public DHT adds relays to its routing table
			// without telling: look again soon.
			next = earliest(next, now.Add(publicRelayLook))
		}
	}

	h.relayMu.Lock()
	h.held = held
	h.relayMu.Unlock()
	next = h.announceRelayAddrs(lh, held, time.Now(), next)
	return max(time.Until(next), 100*time.Millisecond)
}

// announceRelayAddrs hands the circuit addresses to libp2p's address manager,
// which adds them to the host's addresses while the node is private; identify
// pushes them to connected peers. A relay's circuit addresses wait until the
// connection to it is relaySettle old: identify (go-libp2p v0.52) may process
// the identify exchange of a new connection after a push sent just after it,
// and the relay would then keep our addresses from before the reservation,
// and hand those to every DHT lookup for us. It returns when to look again.
func (h *Host) announceRelayAddrs(lh host.Host, held map[peer.ID]heldRelay, now, next time.Time) time.Time {
	var addrs []ma.Multiaddr
	for p, r := range held {
		opened := now
		for _, c := range lh.Network().ConnsToPeer(p) {
			if st := c.Stat(); !st.Limited && st.Opened.Before(opened) {
				opened = st.Opened
			}
		}
		if settled := opened.Add(relaySettle); now.Before(settled) {
			next = earliest(next, settled)
			continue
		}
		addrs = append(addrs, circuitsThrough(p, r)...)
	}
	slices.SortFunc(addrs, func(a, b ma.Multiaddr) int { return a.Compare(b) })
	if !slices.EqualFunc(addrs, h.announced, ma.Multiaddr.Equal) {
		h.announced = addrs
		h.setCircuitAddrs(addrs) // for the address factory, before libp2p recomputes
		h.relayAddrsOut.Emit(event.EvtAutoRelayAddrsUpdated{RelayAddrs: slices.Clone(addrs)})
		h.addrsChanged()
	}
	return next
}

// relayFailed backs off from relay p and returns when it may be tried again.
// Only the relay loop touches h.relayRetry.
func (h *Host) relayFailed(p peer.ID, now time.Time) time.Time {
	d := relayRetryMin
	if r, ok := h.relayRetry[p]; ok {
		d = min(2*r.delay, relayRetryMax)
	}
	h.relayRetry[p] = retryAt{at: now.Add(d), delay: d}
	return now.Add(d)
}

// reserve connects to relay ai directly (a reservation made through another
// relay would be useless) and reserves a slot. A candidate given without
// addresses (a member, a public relay) is dialled at the addresses the
// peerstore holds, and is announced at the public addresses it vouches for
// in the reservation, else at the addresses we reached it on.
func (h *Host) reserve(lh host.Host, ai peer.AddrInfo) (heldRelay, error) {
	ctx, cancel := context.WithTimeout(h.ctx, reserveTimeout)
	defer cancel()
	if lh.Network().Connectedness(ai.ID) != network.Connected {
		lh.Peerstore().AddAddrs(ai.ID, ai.Addrs, peerstore.PermanentAddrTTL)
		// Without WithAllowLimitedConn, libp2p dials directly even when
		// a relayed connection exists.
		if err := lh.Connect(ctx, peer.AddrInfo{ID: ai.ID}); err != nil {
			return heldRelay{}, err
		}
		if lh.Network().Connectedness(ai.ID) != network.Connected {
			return heldRelay{}, fmt.Errorf("no direct connection to relay %s", ai.ID)
		}
	}
	start := time.Now()
	rsvp, err := relayclient.Reserve(ctx, lh, peer.AddrInfo{ID: ai.ID})
	if err != nil {
		return heldRelay{}, err
	}
	ttl := rsvp.Expiration.Sub(start)
	if ttl < relayMinTTL {
		return heldRelay{}, fmt.Errorf("relay %s: reservation of %v, shorter than %v", ai.ID, ttl.Round(time.Millisecond), relayMinTTL)
	}
	// The addresses we were told to use, and any public ones the relay
	// vouches for.
	addrs := slices.Clone(ai.Addrs)
	for _, a := range rsvp.Addrs {
		if tpt, _ := peer.SplitAddr(a); tpt != nil && !slices.ContainsFunc(addrs, tpt.Equal) {
			addrs = append(addrs, tpt)
		}
	}
	if len(addrs) == 0 {
		addrs = dialedAddrs(lh, ai.ID)
	}
	if len(addrs) == 0 {
		return heldRelay{}, fmt.Errorf("relay %s: no address to announce", ai.ID)
	}
	return heldRelay{addrs: addrs, expires: rsvp.Expiration, ttl: ttl}, nil
}

// dialedAddrs are the addresses of p on which we hold a direct connection
// that we dialled (an incoming connection's address is p's ephemeral port).
func dialedAddrs(lh host.Host, p peer.ID) []ma.Multiaddr {
	var out []ma.Multiaddr
	for _, c := range lh.Network().ConnsToPeer(p) {
		st := c.Stat()
		if st.Limited || st.Direction != network.DirOutbound {
			continue
		}
		if a := c.RemoteMultiaddr(); !isCircuit(a) && !slices.ContainsFunc(out, a.Equal) {
			out = append(out, a)
		}
	}
	return out
}

// isCircuit reports whether a is a circuit (relayed) address.
func isCircuit(a ma.Multiaddr) bool {
	_, err := a.ValueForProtocol(ma.P_CIRCUIT)
	return err == nil
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// reservations lists the relay reservations held, for NetStatus.
func (h *Host) reservations() []Reservation {
	h.relayMu.Lock()
	defer h.relayMu.Unlock()
	out := make([]Reservation, 0, len(h.held))
	for p, r := range h.held {
		res := Reservation{Relay: p, Expires: r.expires}
		for _, a := range circuitsThrough(p, r) {
			res.Addrs = append(res.Addrs, a.String())
		}
		out = append(out, res)
	}
	slices.SortFunc(out, func(a, b Reservation) int { return strings.Compare(string(a.Relay), string(b.Relay)) })
	return out
}

// memberRelayStatus reports this node's relay service: the member relay, or
// with Config.RelayService the open relay.
func (h *Host) memberRelayStatus() MemberRelay {
	return MemberRelay{
		Enabled:      h.mr.enabled,
		Running:      h.mr.running.Load(),
		Reservations: int(max(h.mr.reservations.Load(), 0)),
		Refused:      h.mr.refused.Load(),
	}
}
