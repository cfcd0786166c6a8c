package p2p

import (
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// NetStatus is how the node reaches and is reached, for status and the app.
type NetStatus struct {
	// Reachability is "public", "private" or "unknown" (AutoNAT).
	Reachability string `json:"reachability"`
	// NATType is "none" (a public address on an interface), "mapped" (a
	// port mapped on the router), "cone" (a hole punch succeeded),
	// "symmetric" (hole punches fail), or "unknown".
	NATType      string        `json:"nat_type"`
	PortMapping  PortMapping   `json:"port_mapping"`
	Reservations []Reservation `json:"reservations"`
	MemberRelay  MemberRelay   `json:"member_relay"`
	// PublicNetwork is whether the node uses the public libp2p network.
	PublicNetwork bool `json:"public_network"`
	// Paths counts how traffic moved between relayed and direct paths.
	Paths PathStats `json:"paths"`
}

// PortMapping is what the home router granted.
type PortMapping struct {
	Enabled bool     `json:"enabled"`
	Found   bool     `json:"found"`  // a UPnP or NAT-PMP router answered
	Mapped  []string `json:"mapped"` // external addresses mapped to our ports
}

// Reservation is a relay reservation this node holds.
type Reservation struct {
	Relay   peer.ID   `json:"relay"`
	Addrs   []string  `json:"addrs"` // circuit addresses through it
	Expires time.Time `json:"expires"`
}

// MemberRelay is this node's relay service for room members.
type MemberRelay struct {
	Enabled      bool   `json:"enabled"` // not turned off
	Running      bool   `json:"running"` // publicly reachable, so serving
	Reservations int    `json:"reservations"`
	Refused      uint64 `json:"refused"` // reservations or circuits refused to non-members
}

// PeerPath is how this node reaches one peer.
type PeerPath struct {
	Peer peer.ID `json:"peer"`
	// Path is "direct", "relayed" or "offline".
	Path string `json:"path"`
	// Via is the relay of a relayed path.
	Via peer.ID `json:"via,omitempty"`
	// RTT is the last measured round trip; zero if unknown.
	RTT time.Duration `json:"rtt"`
}

// NetStatus reports how the node reaches and is reached. Before Start the
// NAT type is "unknown" and nothing is mapped.
func (h *Host) NetStatus() NetStatus {
	lh, _, _ := h.running()
	pm := h.portMapping(lh)
	return NetStatus{
		Reachability:  h.Reachability(),
		NATType:       h.natType(lh, pm),
		PortMapping:   pm,
		Reservations:  h.reservations(),
		MemberRelay:   h.memberRelayStatus(),
		PublicNetwork: h.pub.enabled,
		Paths:         h.PathStats(),
	}
}

// PeerPaths reports how each of ids is reached now: "direct" over a
// connection without a relay, "relayed" (Via names the relay) over a circuit
// only, or "offline".
func (h *Host) PeerPaths(ids []peer.ID) []PeerPath {
	lh, _, err := h.running()
	out := make([]PeerPath, 0, len(ids))
	for _, p := range ids {
		pp := PeerPath{Peer: p, Path: "offline"}
		if err == nil {
			for _, c := range lh.Network().ConnsToPeer(p) {
				if relay, ok := circuitRelay(c.RemoteMultiaddr()); ok {
					if pp.Path == "offline" {
						pp.Path, pp.Via = "relayed", relay
					}
					continue
				}
				pp.Path, pp.Via = "direct", ""
				break
			}
			if pp.Path != "offline" {
				pp.RTT = lh.Peerstore().LatencyEWMA(p)
			}
		}
		out = append(out, pp)
	}
	return out
}

// circuitRelay returns the relay of a circuit address (…/p2p/<relay>/p2p-circuit…).
func circuitRelay(a ma.Multiaddr) (peer.ID, bool) {
	var relay peer.ID
	found := false
	ma.ForEach(a, func(c ma.Component) bool {
		switch c.Protocol().Code {
		case ma.P_P2P:
			if !found {
				if id, err := peer.Decode(c.Value()); err == nil {
					relay = id
				}
			}
		case ma.P_CIRCUIT:
			found = true
			return false
		}
		return true
	})
	return relay, found && relay != ""
}
