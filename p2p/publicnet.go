package p2p

import (
	"fmt"
	"slices"
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/proto"
)

// The public libp2p network (Config.PublicNetwork, off by default).
//
// parley's own DHT uses the /parley prefix, so it never meets the public
// network's nodes. With PublicNetwork the host also runs a client of the
// public IPFS DHT (prefix /ipfs, its default bootstrap peers), to find relays
// when neither a configured relay, a bootstrap peer nor a room member can
// relay: the peers in that DHT's routing table that offer the relay service
// become relay candidates, after all others. Client mode: the node answers no
// DHT query and is not added to other nodes' routing tables.
//
// Public relays keep libp2p's default limits (2 minutes and 128 KiB per
// relayed connection): they serve hole punching only. A conversation through
// one lasts only if DCUtR replaces the relayed connection with a direct one;
// behind NATs that defeat hole punching it needs a member relay or a relay of
// one's own.
//
// What it reveals: the node's IP addresses and peer ID to the bootstrap
// peers, to every DHT node it queries and to the relays it reserves with; a
// relay also sees who connects to the node, when, and how much (not what:
// connections are encrypted, and so are rooms); identify tells every public
// peer connected that the node runs parley (agent "parley", the /parley
// protocols). Rooms and their members are never sent to the public DHT.

// Bounds of the public network's use.
const (
	// maxPublicRelays bounds the public relays tried per look: the
	// routing table holds hundreds of peers.
	maxPublicRelays = 8
	// publicRelayLook is how often the relay loop looks at the routing
	// table again while it holds fewer than maxRelays reservations.
	publicRelayLook = 10 * time.Second
)

// publicBootstrapPeers returns the public DHT's bootstrap peers. Tests
// replace it so that no test can dial the real ones.
var publicBootstrapPeers = dht.GetDefaultBootstrapPeerAddrInfos

// publicNet is the host's client of the public DHT.
type publicNet struct {
	enabled   bool            // Config.PublicNetwork
	bootstrap []peer.AddrInfo // default: publicBootstrapPeers()
	kad       *dht.IpfsDHT    // set by Start, before the relay loop starts; nil if disabled
}

// startPublicNet starts the public DHT client, if enabled. Start calls it
// after listening, before starting the relay loop.
func (h *Host) startPublicNet(lh host.Host) error {
	if !h.pub.enabled {
		return nil
	}
	kad, err := dht.New(lh,
		dht.Mode(dht.ModeClient),
		dht.BootstrapPeers(h.pub.bootstrap...),
	)
	if err != nil {
		return fmt.Errorf("p2p: start public DHT: %w", err)
	}
	h.pub.kad = kad
	h.log.Info("using the public libp2p network to find relays", "bootstrap", len(h.pub.bootstrap))
	return nil
}

// closePublicNet stops the public DHT client, if running. Close calls it
// (the relay loop may still read h.pub.kad until Close has waited for it).
func (h *Host) closePublicNet() error {
	if h.pub.kad == nil {
		return nil
	}
	return h.pub.kad.Close()
}

// abortPublicNet stops the public DHT client when Start fails, before the
// relay loop has started, and forgets it, so Start may be retried.
func (h *Host) abortPublicNet() {
	if h.pub.kad != nil {
		h.pub.kad.Close()
		h.pub.kad = nil
	}
}

// publicRelays lists up to maxPublicRelays public network peers, connected
// now, that offer the relay service: first those in the public DHT's routing
// table, then other peers that serve the public DHT (the DHT adds a peer to
// its table some time after identify, without telling). Peers not connected
// are left out: dialling each would hold up the relay loop.
func (h *Host) publicRelays(lh host.Host) []peer.ID {
	if h.pub.kad == nil {
		return nil
	}
	var out []peer.ID
	add := func(ps []peer.ID, check func(peer.ID) bool) {
		for _, p := range ps {
			if len(out) == maxPublicRelays {
				return
			}
			if p != h.id && !slices.Contains(out, p) && lh.Network().Connectedness(p) == network.Connected && check(p) && offersRelay(lh, p) {
				out = append(out, p)
			}
		}
	}
	add(h.pub.kad.RoutingTable().ListPeers(), func(peer.ID) bool { return true })
	add(lh.Network().Peers(), func(p peer.ID) bool { return servesPublicDHT(lh, p) })
	return out
}

// servesPublicDHT reports whether identify listed the public DHT's protocol
// among p's.
func servesPublicDHT(lh host.Host, p peer.ID) bool {
	protos, err := lh.Peerstore().SupportsProtocols(p, dht.ProtocolDHT)
	return err == nil && len(protos) > 0
}

// publicRelayEvent reports whether identify's news e shows a public network
// peer offering the relay service, which the relay loop should look at.
func (h *Host) publicRelayEvent(e any) bool {
	if !h.pub.enabled {
		return false
	}
	switch ev := e.(type) {
	case event.EvtPeerIdentificationCompleted:
		return slices.Contains(ev.Protocols, proto.ProtoIDv2Hop) && slices.Contains(ev.Protocols, dht.ProtocolDHT)
	case event.EvtPeerProtocolsUpdated:
		return slices.Contains(ev.Added, proto.ProtoIDv2Hop)
	}
	return false
}
