package p2p

import (
	"fmt"
	"net"
	"slices"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	bhost "github.com/libp2p/go-libp2p/p2p/host/basic"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// The node's own addresses.
//
// What peers learn (identify, the DHT, signed peer records) is decided by
// one libp2p address factory, addrsFactory: libp2p's list (interface
// addresses of the listen addresses, IPv4 and global IPv6; ports mapped on
// the home router; observed addresses) plus the circuit addresses of the
// reservations parley holds, from the moment they settle rather than once
// AutoNAT has judged the node private (~17 s after start), minus loopback
// addresses unless the node has nothing else. LinkAddrs then picks, from
// Addrs, what is worth putting in an invite link.

// addrsDebounce is how long the OnAddrsChanged hooks wait after a change
// for the changes that follow it (a reservation is announced by parley and
// then by libp2p; a mapped port adds a TCP and a UDP address).
const addrsDebounce = 200 * time.Millisecond

// addrState is the Host's part in its own addresses.
type addrState struct {
	kick    chan struct{}                  // addrsChanged -> addrsLoop
	circuit atomic.Pointer[[]ma.Multiaddr] // settled circuit addresses (setCircuitAddrs)
	natmgr  atomic.Pointer[bhost.NATManager]
	punches punchTracer // hole punching outcomes, for the NAT type (nat.go)

	// only, if set, replaces libp2p's address list before the factory's
	// own work (tests: a libp2p that lists nothing).
	only func([]ma.Multiaddr) []ma.Multiaddr
}

func (s *addrState) init() {
	s.kick = make(chan struct{}, 1)
	s.punches.init()
}

// addrOptions are the libp2p options for the node's addresses: the address
// factory, port mapping (unless off, or nothing listens beyond loopback)
// and the hole punching tracer.
func (h *Host) addrOptions() []libp2p.Option {
	opts := []libp2p.Option{
		libp2p.AddrsFactory(h.addrsFactory),
		libp2p.EnableHolePunching(holepunch.WithTracer(&h.addrs.punches)),
	}
	if h.portMap {
		opts = append(opts, libp2p.NATManager(func(n network.Network) bhost.NATManager {
			m := bhost.NewNATManager(n)
			h.addrs.natmgr.Store(&m)
			return m
		}))
	}
	return opts
}

// setCircuitAddrs records the circuit addresses the relay loop announces,
// for the address factory. The caller then has libp2p recompute its
// addresses (EvtAutoRelayAddrsUpdated does).
func (h *Host) setCircuitAddrs(addrs []ma.Multiaddr) {
	c := slices.Clone(addrs)
	h.addrs.circuit.Store(&c)
}

// addrsFactory is libp2p's address factory: it decides what identify and
// the DHT tell peers. While the node is not known to be public it adds the
// circuit addresses of its settled reservations (libp2p itself would add
// them only once AutoNAT says private); then it drops what no peer can use.
func (h *Host) addrsFactory(addrs []ma.Multiaddr) []ma.Multiaddr {
	if h.addrs.only != nil {
		addrs = h.addrs.only(addrs)
	}
	out := make([]ma.Multiaddr, 0, len(addrs)+4)
	out = append(out, addrs...)
	if network.Reachability(h.reach.Load()) != network.ReachabilityPublic {
		if c := h.addrs.circuit.Load(); c != nil {
			for _, a := range *c {
				if !slices.ContainsFunc(out, a.Equal) {
					out = append(out, a)
				}
			}
		}
	}
	return identifyAddrs(out)
}

// identifyAddrs drops the addresses a peer elsewhere cannot dial: IPv6
// link-local (no zone) and unspecified ones always, loopback ones unless
// the node has no other direct address (tests, a node on one machine).
// Circuit addresses are kept whatever their relay's address is. LAN
// addresses are kept: a peer on the same LAN that learns them from the DHT
// dials them in parallel with the others.
func identifyAddrs(addrs []ma.Multiaddr) []ma.Multiaddr {
	onlyLoopback := true
	for _, a := range addrs {
		if !isCircuit(a) && !manet.IsIPLoopback(a) {
			onlyLoopback = false
			break
		}
	}
	out := make([]ma.Multiaddr, 0, len(addrs))
	for _, a := range addrs {
		switch {
		case isCircuit(a):
		case manet.IsIP6LinkLocal(a), manet.IsIPUnspecified(a):
			continue
		case manet.IsIPLoopback(a) && !onlyLoopback:
			continue
		}
		out = append(out, a)
	}
	return out
}

// isIP6 reports whether a is an IPv6 address.
func isIP6(a ma.Multiaddr) bool {
	return len(a) > 0 && a[0].Protocol().Code == ma.P_IP6
}

// mappable reports whether a router could map a port to listen address a:
// libp2p's NAT manager maps unspecified and unicast addresses, not
// loopback. A node that listens only on loopback asks no router.
func mappable(a ma.Multiaddr) bool {
	ip, err := manet.ToIP(a)
	return err == nil && (ip.IsUnspecified() || ip.IsGlobalUnicast())
}

// addrsEvents are the events addrsLoop follows.
var addrsEvents = []any{new(event.EvtLocalAddressesUpdated), new(event.EvtPeerConnectednessChanged)}

// addrsLoop calls the OnAddrsChanged hooks once for the changes of
// addrsDebounce: parley's own (addrsChanged) and libp2p's (its address
// list changed: an interface, a mapped port, an observed address, a
// circuit). It also notes, for the NAT type, peers whose relayed
// connection a direct one joined; limited holds the peers connected only
// through a relay, so no more than are connected.
func (h *Host) addrsLoop(sub event.Subscription) {
	defer sub.Close()
	timer := time.NewTimer(0)
	<-timer.C
	var due <-chan time.Time
	arm := func() {
		if due == nil {
			timer.Reset(addrsDebounce)
			due = timer.C
		}
	}
	limited := make(map[peer.ID]bool)
	for {
		select {
		case <-h.ctx.Done():
			timer.Stop()
			return
		case e, ok := <-sub.Out():
			if !ok {
				return
			}
			ev, ok := e.(event.EvtPeerConnectednessChanged)
			if !ok {
				arm() // EvtLocalAddressesUpdated
				continue
			}
			switch ev.Connectedness {
			case network.Limited:
				limited[ev.Peer] = true
			case network.Connected:
				if limited[ev.Peer] {
					h.addrs.punches.upgraded()
				}
				delete(limited, ev.Peer)
			default:
				delete(limited, ev.Peer)
			}
		case <-h.addrs.kick:
			arm()
		case <-due:
			due = nil
			h.callAddrsHooks()
		}
	}
}

// labPublicCIDR is the range a test lab may use as its "internet".
const labPublicCIDR = "100.64.0.0/10"

// TreatAsPublicForTests makes libp2p, and parley, count addresses in cidr
// as public, so that a lab of network namespaces can stand in for the
// internet: hole punching, AutoNAT, relay reservations and LinkAddrs all
// act only on public addresses. It is for tests only. It changes a
// process-wide table (manet.Private4) without a lock, so it must be called
// once, at start, before any Host exists. Only 100.64.0.0/10 (carrier-grade
// NAT space, which no home LAN uses) is accepted, so that home LAN ranges
// stay private; anything else is an error and changes nothing.
func TreatAsPublicForTests(cidr string) error {
	_, n, err := net.ParseCIDR(cidr)
	if err != nil {
		return fmt.Errorf("p2p: treat %q as public: %w", cidr, err)
	}
	if n.String() != labPublicCIDR || n.String() != cidr {
		return fmt.Errorf("p2p: treat %q as public: only %s may be (a test lab's internet)", cidr, labPublicCIDR)
	}
	manet.Private4 = slices.DeleteFunc(slices.Clone(manet.Private4), func(p *net.IPNet) bool {
		return p.String() == labPublicCIDR
	})
	return nil
}

// maxLinkAddrs bounds the addresses LinkAddrs keeps for one peer, so that
// an invite link stays short (node/invitesize_test.go).
const maxLinkAddrs = 8

// LinkAddrs keeps the addresses worth putting in an invite link, for a
// joiner who may be anywhere: public ones (public IPv4, global IPv6, DNS
// names, mapped ports) and circuit addresses through a public relay. LAN
// addresses are left to mDNS, unless nothing public is left (a LAN-only
// setup), and loopback addresses unless the node has nothing else (tests,
// one machine). Malformed addresses are dropped. At most maxLinkAddrs are
// kept, taken in turn from direct IPv4 (and DNS), IPv6 and circuit
// addresses so that each kind is represented, and listed in that order,
// each kind in the order given.
func LinkAddrs(addrs []string) []string {
	type kind int
	const (
		public kind = iota
		lan
		loopback
		useless
	)
	// Within a kind: direct IPv4 or DNS, IPv6, circuit.
	const (
		direct4 = iota
		direct6
		circuit
		families
	)
	classify := func(s string) (kind, int) {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return useless, 0
		}
		family := direct4
		if relay, _ := ma.SplitFunc(a, func(c ma.Component) bool { return c.Protocol().Code == ma.P_CIRCUIT }); relay != nil && len(relay) < len(a) {
			a, family = relay, circuit
		} else if isIP6(a) {
			family = direct6
		}
		switch {
		case manet.IsIPLoopback(a):
			return loopback, family
		case manet.IsIP6LinkLocal(a), manet.IsIPUnspecified(a):
			return useless, family
		case manet.IsPublicAddr(a):
			return public, family
		case manet.IsPrivateAddr(a):
			return lan, family
		}
		return useless, family
	}
	for want := public; want < useless; want++ {
		var byFamily [families][]string
		n := 0
		for _, s := range addrs {
			if k, f := classify(s); k == want {
				byFamily[f] = append(byFamily[f], s)
				n++
			}
		}
		if n == 0 {
			continue
		}
		// Take one of each family in turn up to the cap.
		var take [families]int
		for kept := 0; kept < min(n, maxLinkAddrs); {
			for f := range byFamily {
				if take[f] < len(byFamily[f]) && kept < maxLinkAddrs {
					take[f]++
					kept++
				}
			}
		}
		out := make([]string, 0, min(n, maxLinkAddrs))
		for f := range byFamily {
			out = append(out, byFamily[f][:take[f]]...)
		}
		return out
	}
	return nil
}
