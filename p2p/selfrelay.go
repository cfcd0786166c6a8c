package p2p

import (
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	relayv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	"github.com/quic-go/quic-go"
)

// When the member relay runs.
//
// libp2p's relay manager (libp2p.EnableRelayService) starts a relay service
// only once AutoNAT v1 finds the node public, and AutoNAT v1 asks only peers
// that have a public address themselves. A member on a public address whose
// peers are all at home behind NATs (the case the member relay is for) would
// never be found public and never relay. So the Host runs the member relay
// itself (memberRelayLoop), while either AutoNAT says public or the node has
// proof of its own: a direct inbound connection from a public address to a
// public address of this node, open now or closed less than publicProofTTL
// ago. Such a connection was dialled unsolicited from the internet, which is
// what being reachable means. Connections that do not prove it: from
// loopback or a LAN (the remote address is not public); through a NAT's
// forwarded or mapped port (the local address is private; AutoNAT judges
// those); hole-punched ones (libp2p makes them as the result of a dial on
// both sides, so they are outbound); relayed ones.
//
// The proof only starts the member relay. Whether the node holds
// reservations and announces circuit addresses still follows AutoNAT
// (h.reach): the proof says that some peers reached us, not that every peer
// can, and a spare reservation costs little.
//
// --relay-service (Config.RelayService) is unchanged: an open relay on a
// node forced public, run by libp2p's relay manager.

// publicProofTTL is how long the node counts as publicly reachable after
// the last inbound connection that proved it closed.
const publicProofTTL = time.Hour

// publicProof is what the node has seen of its own reachability from
// inbound connections. It holds the open connections that prove it, so no
// more than libp2p keeps open.
type publicProof struct {
	mu    sync.Mutex
	conns map[network.Conn]struct{}
	last  time.Time // when the last proving connection opened or closed

	ttl  atomic.Int64  // time.Duration; publicProofTTL (tests shorten it)
	kick chan struct{} // wakes memberRelayLoop
}

func (p *publicProof) init() {
	p.conns = make(map[network.Conn]struct{})
	p.ttl.Store(int64(publicProofTTL))
	p.kick = make(chan struct{}, 1)
}

func (p *publicProof) wake() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// opened records c if it proves the node reachable.
func (p *publicProof) opened(c network.Conn) {
	if !provesPublic(c) {
		return
	}
	p.mu.Lock()
	p.conns[c] = struct{}{}
	p.last = time.Now()
	p.mu.Unlock()
	p.wake()
}

// closed forgets c; the proof lasts ttl from now.
func (p *publicProof) closed(c network.Conn) {
	p.mu.Lock()
	_, ok := p.conns[c]
	if ok {
		delete(p.conns, c)
		p.last = time.Now()
	}
	p.mu.Unlock()
	if ok {
		p.wake()
	}
}

// holds reports whether the proof holds at now and, if it does only for a
// while, until when.
func (p *publicProof) holds(now time.Time) (bool, time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.conns) > 0 {
		return true, time.Time{}
	}
	if p.last.IsZero() {
		return false, time.Time{}
	}
	until := p.last.Add(time.Duration(p.ttl.Load()))
	return now.Before(until), until
}

// provesPublic reports whether c is a direct inbound connection from a
// public address to a public address of ours.
func provesPublic(c network.Conn) bool {
	st := c.Stat()
	if st.Direction != network.DirInbound || st.Limited || isCircuit(c.RemoteMultiaddr()) {
		return false
	}
	if !manet.IsPublicAddr(c.RemoteMultiaddr()) {
		return false
	}
	local := localIP(c)
	return local != nil && !local.IsLoopback() && manet.IsPublicAddr(ipAddr(local))
}

// localIP is the address of ours that c arrived on. A TCP connection's
// local multiaddr is it; a QUIC connection's is its listener's, which may
// be unspecified (0.0.0.0), so the address the packets arrived on is taken
// from quic-go. Nil when unknown.
func localIP(c network.Conn) net.IP {
	if ip, err := manet.ToIP(c.LocalMultiaddr()); err == nil && !ip.IsUnspecified() {
		return ip
	}
	var qc *quic.Conn
	if c.As(&qc) && qc != nil {
		if ua, ok := qc.LocalAddr().(*net.UDPAddr); ok && !ua.IP.IsUnspecified() {
			return ua.IP
		}
	}
	return nil
}

// ipAddr is ip as a multiaddr.
func ipAddr(ip net.IP) ma.Multiaddr {
	a, err := manet.FromIP(ip)
	if err != nil {
		return nil
	}
	return a
}

// memberRelayLoop runs the member relay while the node is publicly
// reachable (AutoNAT, or publicProof) and stops it otherwise. relayWatch
// keeps h.reach and wakes the loop when it changes. The relay is closed
// when the Host closes.
func (h *Host) memberRelayLoop(lh host.Host) {
	if h.service || !h.mr.enabled {
		return // libp2p's relay manager runs the open relay; or none
	}
	notifiee := &network.NotifyBundle{
		ConnectedF:    func(_ network.Network, c network.Conn) { h.mr.proof.opened(c) },
		DisconnectedF: func(_ network.Network, c network.Conn) { h.mr.proof.closed(c) },
	}
	lh.Network().Notify(notifiee)
	defer lh.Network().StopNotify(notifiee)
	for _, c := range lh.Network().Conns() { // those that came before Notify
		h.mr.proof.opened(c)
	}

	var svc *relayv2.Relay
	defer func() {
		if svc != nil {
			svc.Close()
		}
	}()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-h.ctx.Done():
			return
		case <-h.mr.proof.kick:
		case <-timer.C:
		}
		now := time.Now()
		proven, until := h.mr.proof.holds(now)
		autonat := network.Reachability(h.reach.Load()) == network.ReachabilityPublic
		switch want := autonat || proven; {
		case want && svc == nil:
			r, err := relayv2.New(lh, memberRelayServiceOptions(&h.mr)...)
			if err != nil {
				h.log.Warn("member relay not started", "err", err)
				break
			}
			svc = r
			h.log.Info("member relay started", "autonat_public", autonat, "inbound_proof", proven)
		case !want && svc != nil:
			svc.Close()
			svc = nil
			h.log.Info("member relay stopped", "reachability", h.Reachability())
		}
		timer.Stop()
		if !until.IsZero() && now.Before(until) {
			timer.Reset(until.Sub(now))
		}
	}
}
