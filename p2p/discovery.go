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

// RoomAdvertiseInterval is how often a member should call AdvertiseRoom again
// for its record to stay findable in the DHT.
const RoomAdvertiseInterval = 3 * time.Hour

// roomRendezvous is the DHT rendezvous key of a room; libp2p hashes it
// (SHA-256) into the provider record's key.
func roomRendezvous(roomID string) string { return "/parley/rendezvous/" + roomID }

// AdvertiseRoom records in the DHT that this node is a member of the room, so
// that other members who know the room ID can find it (FindRoomPeers) without
// knowing its address. Anyone who knows the room ID can read the record. It
// returns once the record is stored with the closest DHT peers (a lookup
// bounded to a minute); repeat it every RoomAdvertiseInterval.
func (h *Host) AdvertiseRoom(ctx context.Context, roomID string) error {
	_, kad, err := h.running()
	if err != nil {
		return err
	}
	if _, err := drouting.NewRoutingDiscovery(kad).Advertise(ctx, roomRendezvous(roomID)); err != nil {
		return fmt.Errorf("p2p: advertise room %s: %w", roomID, err)
	}
	return nil
}

// FindRoomPeers looks up up to limit nodes that advertised the room, other
// than this one. Their addresses go to the peerstore, so Connect and Request
// can reach them next.
func (h *Host) FindRoomPeers(ctx context.Context, roomID string, limit int) ([]peer.ID, error) {
	lh, kad, err := h.running()
	if err != nil {
		return nil, err
	}
	found, err := drouting.NewRoutingDiscovery(kad).FindPeers(ctx, roomRendezvous(roomID), discovery.Limit(limit+1))
	if err != nil {
		return nil, fmt.Errorf("p2p: find peers of room %s: %w", roomID, err)
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
