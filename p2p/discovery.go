package p2p

import (
	"context"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/discovery"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	drouting "github.com/libp2p/go-libp2p/p2p/discovery/routing"
)

// RoomAdvertiseInterval is how often a member should call
// AdvertiseRendezvous again for its record to stay findable in the DHT.
const RoomAdvertiseInterval = 3 * time.Hour

// AdvertiseRendezvous records in the DHT that this node is at a rendezvous
// key, so that others who know the key can find it (FindRendezvous) without
// knowing its address. The key is opaque: a room's is derived from what
// only its members know, never from its ID, and libp2p hashes it (SHA-256)
// into the provider record's key. It returns once the record is stored
// with the closest DHT peers (a lookup bounded to a minute); repeat it
// every RoomAdvertiseInterval.
func (h *Host) AdvertiseRendezvous(ctx context.Context, key string) error {
	_, kad, err := h.running()
	if err != nil {
		return err
	}
	if _, err := drouting.NewRoutingDiscovery(kad).Advertise(ctx, key); err != nil {
		return fmt.Errorf("p2p: advertise rendezvous: %w", err)
	}
	return nil
}

// FindRendezvous looks up up to limit nodes that advertised the key, other
// than this one. Their addresses go to the peerstore, so Connect and Request
// can reach them next.
func (h *Host) FindRendezvous(ctx context.Context, key string, limit int) ([]peer.ID, error) {
	lh, kad, err := h.running()
	if err != nil {
		return nil, err
	}
	found, err := drouting.NewRoutingDiscovery(kad).FindPeers(ctx, key, discovery.Limit(limit+1))
	if err != nil {
		return nil, fmt.Errorf("p2p: find rendezvous: %w", err)
	}
	var peers []peer.ID
	for ai := range found {
		if ai.ID == h.id || len(peers) == limit {
			continue // keep draining so the lookup can finish
		}
		lh.Peerstore().AddAddrs(ai.ID, ai.Addrs, peerstore.AddressTTL)
		peers = append(peers, ai.ID)
	}
	return peers, nil
}
