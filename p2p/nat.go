package p2p

import (
	"slices"
	"sync"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	manet "github.com/multiformats/go-multiaddr/net"
)

// What kind of NAT the node is behind, as far as it can tell.
const (
	natNone      = "none"      // a public address on an interface: no NAT (for that family)
	natMapped    = "mapped"    // the home router mapped our ports (UPnP IGD, NAT-PMP)
	natCone      = "cone"      // a hole punch succeeded since start (a direct connection replaced a relayed one)
	natSymmetric = "symmetric" // hole punches failed with several peers, none succeeded
	natUnknown   = "unknown"
)

// symmetricAfter is how many peers hole punching must have failed with,
// and none succeeded, before the NAT counts as symmetric: one failure may
// be the other side's NAT.
const symmetricAfter = 2

// punchTracer keeps the outcomes of hole punching (libp2p's DCUtR calls
// Trace on its own goroutines, once per attempt, on both sides). It holds at
// most symmetricAfter peers.
type punchTracer struct {
	mu        sync.Mutex
	succeeded bool
	failed    map[peer.ID]struct{} // peers a punch failed with, up to symmetricAfter
}

func (t *punchTracer) init() { t.failed = make(map[peer.ID]struct{}, symmetricAfter) }

// Trace implements holepunch.EventTracer.
func (t *punchTracer) Trace(evt *holepunch.Event) {
	end, ok := evt.Evt.(*holepunch.EndHolePunchEvt)
	if !ok {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if end.Success {
		t.succeeded = true
	} else if len(t.failed) < symmetricAfter {
		t.failed[evt.Remote] = struct{}{}
	}
}

// upgraded records that a direct connection joined a relayed one: the NATs
// on the way let it through, whether DCUtR or both sides dialling at once
// opened it.
func (t *punchTracer) upgraded() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.succeeded = true
}

// verdict is what hole punching says of the NAT: natCone, natSymmetric or
// natUnknown.
func (t *punchTracer) verdict() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.succeeded:
		return natCone
	case len(t.failed) >= symmetricAfter:
		return natSymmetric
	}
	return natUnknown
}

// portMapping reports the port mapping: whether it is on, whether a router
// answered, and the external address mapped to each listen address.
func (h *Host) portMapping(lh host.Host) PortMapping {
	pm := PortMapping{Enabled: h.portMap, Mapped: []string{}}
	m := h.addrs.natmgr.Load()
	if m == nil || lh == nil {
		return pm
	}
	pm.Found = (*m).HasDiscoveredNAT()
	for _, a := range lh.Network().ListenAddresses() {
		if ext := (*m).GetMapping(a); ext != nil {
			if s := ext.String(); !slices.Contains(pm.Mapped, s) {
				pm.Mapped = append(pm.Mapped, s)
			}
		}
	}
	return pm
}

// natType says what the node is behind: no NAT when an interface has a
// public address (IPv4, or global IPv6: a home with IPv6 is then reachable
// without a NAT, firewall permitting), else a mapped port, else what hole
// punching showed.
func (h *Host) natType(lh host.Host, pm PortMapping) string {
	if lh != nil && slices.ContainsFunc(boundAddrs(lh), manet.IsPublicAddr) {
		return natNone
	}
	if len(pm.Mapped) > 0 {
		return natMapped
	}
	return h.addrs.punches.verdict()
}
