package peers

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-p2p/parley/p2p"
)

// defaultReconnectInterval is how often a node redials room members it has
// lost and compares its rooms with a member's (anti-entropy): the pace at
// which a healed partition or a dropped gossip message is noticed when no
// later event comes by to announce it.
const defaultReconnectInterval = 15 * time.Second

// tick is the heartbeat that notices the process was frozen or the
// machine slept: a tick arriving much later than due.
const tick = time.Second

// maintainPeers keeps a connection to every server in every room, and
// compares each room's extremities with a connected member's now and
// then. After a freeze or a sleep it catches every room up at once.
func (ps *Peers) maintainPeers(ctx context.Context) {
	interval := ps.cfg.ReconnectInterval
	if interval <= 0 {
		interval = defaultReconnectInterval
	}
	t := time.NewTicker(min(tick, interval))
	defer t.Stop()
	last, lastCheck, lastTopics := time.Now(), time.Now(), time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			gap := now.Sub(last)
			woke := gap > 3*tick
			last = now
			if woke {
				ps.log.Info("clock jumped: the node was frozen or asleep; catching up", "gap", gap.Round(time.Millisecond))
			}
			ps.checkRotations()
			if woke || now.Sub(lastTopics) >= time.Minute {
				// Topics change with the period (secret.go).
				lastTopics = now
				for _, r := range ps.followedRooms() {
					ps.refreshTopics(r, time.Now())
				}
			}
			if !woke && now.Sub(lastCheck) < interval {
				continue
			}
			lastCheck = now
			ps.redialRooms()
			ps.antiEntropy(woke)
		}
	}
}

// redialRooms dials room members that are not connected, and looks a
// room's members up in the DHT (rendezvous) when none is connected, so a
// node that restarted on new addresses, or whose known members are gone,
// finds the room again.
func (ps *Peers) redialRooms() {
	connected := ps.host.ConnectedPeers()
	for _, r := range ps.followedRooms() {
		if ps.CheckFollowing(r); !r.Followed() {
			// A kick or ban that arrived through catch-up rather than
			// the room's worker.
			continue
		}
		if len(ps.connectedMembers(r)) == 0 && len(ps.RoomServers(r)) > 0 {
			ps.goBackground(func(ctx context.Context) { ps.rendezvous(ctx, r) })
		}
		for _, s := range ps.RoomServers(r) {
			p, err := peerOf(s)
			if err != nil || slices.Contains(connected, p) {
				continue
			}
			ps.goBackground(func(ctx context.Context) { ps.redial(ctx, p) })
			connected = append(connected, p)
		}
	}
}

// antiEntropy compares every room with connected members: all of them
// after a wake-up, one at random otherwise.
func (ps *Peers) antiEntropy(all bool) {
	connected := ps.host.ConnectedPeers()
	for _, r := range ps.followedRooms() {
		var peers []peer.ID
		for _, s := range ps.RoomServers(r) {
			if p, err := peerOf(s); err == nil && slices.Contains(connected, p) {
				peers = append(peers, p)
			}
		}
		if len(peers) == 0 {
			continue
		}
		if !all {
			peers = []peer.ID{peers[rand.IntN(len(peers))]}
		}
		for _, p := range peers {
			ps.goBackground(func(ctx context.Context) { ps.CatchUp(ctx, r, p) })
		}
	}
}

func (ps *Peers) redial(ctx context.Context, p peer.ID) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := ps.host.Connect(ctx, p); err != nil {
		ps.log.Debug("redial room peer", "peer", shortPeer(p), "err", err)
	}
}

// rendezvous finds members of a room through the DHT and connects to them.
func (ps *Peers) rendezvous(ctx context.Context, r *Room) {
	if !r.finding.CompareAndSwap(false, true) {
		return
	}
	defer r.finding.Store(false)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	rs, ok := ps.currentSecret(r.ID)
	if !ok {
		return
	}
	var peers []peer.ID
	for _, key := range rs.rendezvousAt(time.Now()) {
		found, err := ps.host.FindRendezvous(ctx, key, 10)
		if err != nil {
			ps.log.Debug("room rendezvous", "room", r.ID, "err", err)
			continue
		}
		for _, p := range found {
			if !slices.Contains(peers, p) {
				peers = append(peers, p)
			}
		}
	}
	for _, p := range peers {
		ps.redial(ctx, p)
	}
}

// advertise announces the room in the DHT: retried until it works, then
// renewed before the record expires.
func (ps *Peers) advertise(ctx context.Context, r *Room) {
	wait := time.Duration(0)
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.done:
			return
		case <-time.After(wait):
		case <-r.readvertise: // a new epoch: a new rendezvous key
		}
		rs, ok := ps.currentSecret(r.ID)
		if !ok {
			wait = time.Minute // until the room's secret comes
			continue
		}
		now := time.Now()
		var err error
		for _, key := range rs.rendezvousAt(now) {
			actx, cancel := context.WithTimeout(ctx, time.Minute)
			err = errors.Join(err, ps.host.AdvertiseRendezvous(actx, key))
			cancel()
		}
		if err != nil {
			ps.log.Debug("advertise room", "room", r.ID, "err", err)
			wait = 10 * time.Second
			continue
		}
		// Again before the record expires, and as the next period's
		// grace hour begins (its key is advertised then too).
		wait = min(p2p.RoomAdvertiseInterval, untilNextGrace(now))
	}
}

// untilNextGrace is how long until the grace hour at the end of the
// current period begins (or, inside it, a minute).
func untilNextGrace(now time.Time) time.Duration {
	p, grace := periodOf(now)
	if grace == 1 {
		return secretGrace + time.Minute
	}
	start := time.Unix((p+1)*int64(secretPeriod/time.Second), 0).Add(-secretGrace)
	return max(start.Sub(now)+time.Second, time.Minute)
}
