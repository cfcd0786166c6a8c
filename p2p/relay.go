package p2p

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/p2p/host/eventbus"
	relayclient "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/proto"
	relayv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	ma "github.com/multiformats/go-multiaddr"
)

// Reaching peers beyond the LAN.
//
// A node learns whether it is reachable from the internet through AutoNAT
// (every parley node answers AutoNAT probes for others). A node that is not
// known to be public keeps reservations with up to maxRelays circuit relays
// (Config.Relays first, then bootstrap peers that offer the relay service) and
// advertises circuit addresses through them, so that others can reach it
// through the relay; DCUtR then tries to replace each relayed connection with
// a direct one (hole punching). Requests and room messages work over relayed
// connections too (see limited.go), so a conversation survives a NAT that
// defeats hole punching.
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
	relayProtectTag = "parley-relay"   // connection manager tag of relays in use
	relaySettle     = time.Second      // age of a relay connection before announcing circuit addresses
)

// relayServiceOptions make the host a relay for others. The service runs only
// while the host believes it is publicly reachable, which an operator who sets
// RelayService asserts: AutoNAT is not consulted.
func relayServiceOptions() []libp2p.Option {
	rc := relayv2.DefaultResources()
	rc.Limit = &relayv2.RelayLimit{Duration: relayLimitDuration, Data: relayLimitData}
	rc.ReservationTTL = relayReservationTTL
	rc.MaxReservations = relayMaxReservations
	rc.MaxCircuits = relayMaxCircuits
	rc.BufferSize = relayBufferSize
	return []libp2p.Option{
		libp2p.ForceReachabilityPublic(),
		libp2p.EnableRelayService(relayv2.WithResources(rc)),
	}
}

// heldRelay is a reservation with a relay.
type heldRelay struct {
	addrs   []ma.Multiaddr // the relay's transport addresses, without /p2p
	expires time.Time
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
	return held || h.isRelayCandidate(p)
}

func (h *Host) isRelayCandidate(p peer.ID) bool {
	has := func(ai peer.AddrInfo) bool { return ai.ID == p }
	return slices.ContainsFunc(h.relays, has) || slices.ContainsFunc(h.bootstrap, has)
}

// relayCandidates lists the configured relays, then the bootstrap peers known
// to offer the relay service.
func (h *Host) relayCandidates(lh host.Host) []peer.AddrInfo {
	out := slices.Clone(h.relays)
	for _, ai := range h.bootstrap {
		if slices.ContainsFunc(out, func(c peer.AddrInfo) bool { return c.ID == ai.ID }) {
			continue
		}
		if protos, err := lh.Peerstore().SupportsProtocols(ai.ID, proto.ProtoIDv2Hop); err == nil && len(protos) > 0 {
			out = append(out, ai)
		}
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
			// A reservation lives on the connection that made it.
			if lh.Network().Connectedness(p) != network.Connected || !now.Before(r.expires) {
				h.log.Info("relay reservation ended", "relay", p)
				drop(p)
				continue
			}
			if r.expires.Sub(now) > refreshBefore {
				next = earliest(next, r.expires.Add(-refreshBefore))
				continue
			}
			fresh, err := h.reserve(lh, peer.AddrInfo{ID: p, Addrs: r.addrs})
			if err != nil {
				h.log.Warn("relay reservation not renewed", "relay", p, "err", err)
				drop(p)
				next = earliest(next, h.relayFailed(p, now))
				continue
			}
			held[p] = fresh
			next = earliest(next, fresh.expires.Add(-refreshBefore))
		}
		for _, ai := range h.relayCandidates(lh) {
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
			next = earliest(next, r.expires.Add(-refreshBefore))
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
// relay would be useless) and reserves a slot.
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
	rsvp, err := relayclient.Reserve(ctx, lh, peer.AddrInfo{ID: ai.ID})
	if err != nil {
		return heldRelay{}, err
	}
	// The addresses we were told to use, and any public ones the relay
	// vouches for.
	addrs := slices.Clone(ai.Addrs)
	for _, a := range rsvp.Addrs {
		if tpt, _ := peer.SplitAddr(a); tpt != nil && !slices.ContainsFunc(addrs, tpt.Equal) {
			addrs = append(addrs, tpt)
		}
	}
	return heldRelay{addrs: addrs, expires: rsvp.Expiration}, nil
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

// memberRelayStatus reports the member relay (not built yet).
func (h *Host) memberRelayStatus() MemberRelay { return MemberRelay{} }
