package node

import (
	"context"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// defaultReconnectInterval is how often a node redials room members it has
// lost: the pace at which a healed partition or a returning device is
// noticed when no event comes by to announce it.
const defaultReconnectInterval = 15 * time.Second

// maintainPeers keeps a connection to every server in every room. A peer
// that comes back triggers catch-up through onPeerConnected.
func (n *Node) maintainPeers(ctx context.Context) {
	interval := n.cfg.ReconnectInterval
	if interval <= 0 {
		interval = defaultReconnectInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		connected := n.host.ConnectedPeers()
		for _, r := range n.allRooms() {
			for _, s := range n.roomServers(r) {
				p, err := peerOf(s)
				if err != nil || slices.Contains(connected, p) {
					continue
				}
				n.goBackground(func(ctx context.Context) { n.redial(ctx, p) })
				connected = append(connected, p)
			}
		}
	}
}

func (n *Node) redial(ctx context.Context, p peer.ID) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := n.host.Connect(ctx, p); err != nil {
		n.log.Debug("redial room peer", "peer", shortPeer(p), "err", err)
	}
}
