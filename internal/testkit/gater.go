package testkit

import (
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// Gater is a libp2p connection gater that refuses connections to and from
// the peers it blocks, for as long as it blocks them: hand one to each test
// host (libp2p.ConnectionGater) to build a chain, cut a network in two
// (Split) or heal it. The zero value blocks nobody and is ready to use.
type Gater struct {
	mu      sync.Mutex
	blocked map[peer.ID]bool
}

var _ connmgr.ConnectionGater = (*Gater)(nil)

// Block refuses new connections to and from ps. Connections already open
// stay open: close them to cut the peers off (Split does both).
func (g *Gater) Block(ps ...peer.ID) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.blocked == nil {
		g.blocked = make(map[peer.ID]bool)
	}
	for _, p := range ps {
		g.blocked[p] = true
	}
}

// Unblock lets ps connect again.
func (g *Gater) Unblock(ps ...peer.ID) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, p := range ps {
		delete(g.blocked, p)
	}
}

// Heal unblocks every peer.
func (g *Gater) Heal() {
	g.mu.Lock()
	defer g.mu.Unlock()
	clear(g.blocked)
}

// Blocks reports whether g refuses connections with p.
func (g *Gater) Blocks(p peer.ID) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.blocked[p]
}

// InterceptPeerDial refuses to dial a blocked peer.
func (g *Gater) InterceptPeerDial(p peer.ID) bool { return !g.Blocks(p) }

// InterceptAddrDial refuses to dial any address of a blocked peer.
func (g *Gater) InterceptAddrDial(p peer.ID, _ ma.Multiaddr) bool { return !g.Blocks(p) }

// InterceptAccept accepts every inbound connection: the peer is not known
// until the security handshake, where InterceptSecured decides.
func (g *Gater) InterceptAccept(network.ConnMultiaddrs) bool { return true }

// InterceptSecured refuses a connection, in either direction, once the
// handshake shows it is with a blocked peer.
func (g *Gater) InterceptSecured(_ network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	return !g.Blocks(p)
}

// InterceptUpgraded accepts every connection that got this far.
func (g *Gater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) {
	return true, 0
}

// Gated is one node of a network that a test may split: its libp2p host and
// the Gater that host was built with.
type Gated struct {
	Host  host.Host
	Gater *Gater
}

// Split cuts every connection between the two halves and keeps them cut:
// each node's gater blocks the other half, the open connections are closed,
// and Split returns once no node of one half is connected to a node of the
// other (failing the test if that takes more than 10 seconds). Nodes within
// a half stay connected. Heal each gater (Gater.Heal) to end the split; the
// nodes then find each other again on their own or by a test's dial.
func Split(t testing.TB, left, right []Gated) {
	t.Helper()
	for _, side := range [][2][]Gated{{left, right}, {right, left}} {
		for _, n := range side[0] {
			for _, o := range side[1] {
				n.Gater.Block(o.Host.ID())
			}
		}
	}
	for _, l := range left {
		for _, r := range right {
			l.Host.Network().ClosePeer(r.Host.ID())
			r.Host.Network().ClosePeer(l.Host.ID())
		}
	}
	WaitFor(t, 10*time.Second, "the halves to be disconnected", func() bool {
		for _, l := range left {
			for _, r := range right {
				if l.Host.Network().Connectedness(r.Host.ID()) == network.Connected ||
					r.Host.Network().Connectedness(l.Host.ID()) == network.Connected {
					return false
				}
			}
		}
		return true
	})
}
