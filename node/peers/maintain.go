package peers

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
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

// redialRamp is when, after the node starts and after a room peer's
// connection is lost, room peers are redialled before the interval takes
// over: a restarted node's first redial may race its bootstrap or relay
// connection, or come before its circuit addresses exist, and a lost
// direct connection may be replaced through a relay within the second.
var redialRamp = []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second}

// minRedialGap spaces the redials that events ask for (a peer connected,
// this node's addresses changed), which may come in bursts.
const minRedialGap = 500 * time.Millisecond

// maintainPeers keeps a connection to every server in every room, and
// compares each room's extremities with a connected member's now and
// then. After a freeze or a sleep it catches every room up at once.
// Room peers are redialled on the ramp after the start and after a room
// peer is lost, at once (minRedialGap apart) when a peer connects or this
// node's addresses change, and every interval.
func (ps *Peers) maintainPeers(ctx context.Context) {
	interval := ps.cfg.ReconnectInterval
	if interval <= 0 {
		interval = defaultReconnectInterval
	}
	t := time.NewTicker(min(tick, interval))
	defer t.Stop()
	start := time.Now()
	last, lastTopics := start, start
	nextCheck := start.Add(interval) // the next redial with anti-entropy
	rampFrom, rampStep := start, 0
	var kickAt, lastRedial time.Time // kickAt: a redial an event asked for
	due := func() time.Time {
		d := nextCheck
		if rampStep < len(redialRamp) {
			d = earliest(d, rampFrom.Add(redialRamp[rampStep]))
		}
		return earliest(d, kickAt)
	}
	timer := time.NewTimer(time.Until(due()))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case d := <-ps.dials.kick:
			at := time.Now().Add(d)
			if !lastRedial.IsZero() && at.Before(lastRedial.Add(minRedialGap)) {
				at = lastRedial.Add(minRedialGap)
			}
			kickAt = earliest(kickAt, at)
			timer.Reset(time.Until(due()))
		case <-ps.dials.lost:
			rampFrom, rampStep = time.Now(), 0
			timer.Reset(time.Until(due()))
		case now := <-timer.C:
			// Lookups (rendezvous) go with the ramp and the interval
			// only: events may come every minRedialGap.
			lookups := false
			for rampStep < len(redialRamp) && !now.Before(rampFrom.Add(redialRamp[rampStep])) {
				rampStep++
				lookups = true
			}
			if !kickAt.IsZero() && !now.Before(kickAt) {
				kickAt = time.Time{}
			}
			check := !now.Before(nextCheck)
			if check {
				nextCheck = now.Add(interval)
			}
			lastRedial = now
			ps.redialRooms(lookups || check)
			if check {
				ps.antiEntropy(false)
				ps.dials.prune(ps.IsRoomPeer)
				ps.noteRoomPeerAddrs()
			}
			timer.Reset(time.Until(due()))
		case now := <-t.C:
			gap := now.Sub(last)
			woke := gap > 3*tick
			last = now
			if woke {
				ps.log.Info("clock jumped: the node was frozen or asleep; catching up", "gap", gap.Round(time.Millisecond))
			}
			ps.checkRotations()
			ps.refreshRoomPeers()
			ps.flushPeerAddrs(false)
			if woke || now.Sub(lastTopics) >= time.Minute {
				// Topics change with the period (secret.go).
				lastTopics = now
				for _, r := range ps.followedRooms() {
					ps.refreshTopics(r, time.Now())
				}
			}
			if woke {
				nextCheck, lastRedial = now.Add(interval), now
				ps.redialRooms(true)
				ps.antiEntropy(true)
				timer.Reset(time.Until(due()))
			}
		}
	}
}

// earliest is the earlier of two times, a zero time counting as never.
func earliest(a, b time.Time) time.Time {
	switch {
	case a.IsZero():
		return b
	case b.IsZero() || a.Before(b):
		return a
	}
	return b
}

// redialRooms dials room members that are not connected and, if lookups,
// looks a room's members up in the DHT (rendezvous) when none is
// connected or when a member's known addresses failed twice in a row, so
// a node that restarted on new addresses, or whose known members are
// gone, finds the room again.
func (ps *Peers) redialRooms(lookups bool) {
	connected := ps.host.ConnectedPeers()
	for _, r := range ps.followedRooms() {
		if ps.CheckFollowing(r); !r.Followed() {
			// A kick or ban that arrived through catch-up rather than
			// the room's worker.
			continue
		}
		servers := ps.RoomServers(r)
		lookup := false
		for _, s := range servers {
			p, err := peerOf(s)
			if err != nil || slices.Contains(connected, p) {
				continue
			}
			lookup = lookup || ps.dials.failures(p) >= lookupAfterFailures
			if ps.dials.begin(p, time.Now()) {
				ps.goBackground(func(ctx context.Context) { ps.dial(ctx, p) })
			}
			connected = append(connected, p)
		}
		if lookups && len(servers) > 0 && (lookup || len(ps.connectedMembers(r)) == 0) {
			ps.goBackground(func(ctx context.Context) { ps.rendezvous(ctx, r) })
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

// redial dials a peer, unless a dial to it is under way or it failed a
// moment ago (dials).
func (ps *Peers) redial(ctx context.Context, p peer.ID) {
	if ps.dials.begin(p, time.Now()) {
		ps.dial(ctx, p)
	}
}

// dial dials a peer for which dials.begin said yes, and records the
// outcome.
func (ps *Peers) dial(ctx context.Context, p peer.ID) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err := ps.host.Connect(ctx, p)
	ps.dials.end(p, err, time.Now())
	if err != nil {
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

// lookupAfterFailures is how many dials in a row to a room peer's known
// addresses fail before its rooms are looked up in the DHT (rendezvous),
// which finds members at the addresses they advertise now.
const lookupAfterFailures = 2

// maxDialBackoff bounds the wait after a room peer's failed dials.
const maxDialBackoff = 30 * time.Second

// dials keeps redials of room peers bounded: one dial in flight per peer,
// and after failures a backoff (250 ms, doubling, at most maxDialBackoff
// or the reconnect interval if shorter).
// It holds entries for room peers only (prune drops the others).
type dials struct {
	kick chan time.Duration // a redial asked for, after the delay
	lost chan struct{}      // a room peer was lost: the ramp starts again

	maxBackoff time.Duration

	mu sync.Mutex
	m  map[peer.ID]*dialState
}

type dialState struct {
	busy  bool
	fails int       // dials in a row that failed
	retry time.Time // no new dial before
}

// newDials makes the dial state of a node that redials every interval.
func newDials(interval time.Duration) dials {
	if interval <= 0 {
		interval = defaultReconnectInterval
	}
	return dials{kick: make(chan time.Duration, 1), lost: make(chan struct{}, 1), m: make(map[peer.ID]*dialState),
		maxBackoff: min(maxDialBackoff, interval)}
}

// begin reports whether a dial to p may start now, and marks it busy.
func (d *dials) begin(p peer.ID, now time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := d.m[p]
	if st == nil {
		st = &dialState{}
		d.m[p] = st
	}
	if st.busy || now.Before(st.retry) {
		return false
	}
	st.busy = true
	return true
}

// end records a dial's outcome.
func (d *dials) end(p peer.ID, err error, now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := d.m[p]
	if st == nil {
		return
	}
	if err == nil {
		delete(d.m, p)
		return
	}
	st.busy = false
	st.fails++
	st.retry = now.Add(min(250*time.Millisecond<<min(st.fails-1, 16), d.maxBackoff))
}

// failures is how many dials to p in a row failed.
func (d *dials) failures(p peer.ID) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if st := d.m[p]; st != nil {
		return st.fails
	}
	return 0
}

// DialFailures is how many redials in a row of room peer p failed (0
// once one worked).
func (ps *Peers) DialFailures(p peer.ID) int { return ps.dials.failures(p) }

// prune forgets the peers keep says no to, unless a dial is under way.
func (d *dials) prune(keep func(peer.ID) bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for p, st := range d.m {
		if !st.busy && !keep(p) {
			delete(d.m, p)
		}
	}
}

// askRedial asks maintainPeers for a redial of room peers after delay;
// a request already waiting stands for this one too.
func (ps *Peers) askRedial(delay time.Duration) {
	select {
	case ps.dials.kick <- delay:
	default:
	}
}

// onPeerUp redials room peers when another peer connects (a bootstrap
// node, a relay: a way to the room peers may just have opened) while some
// room peer is not connected, and notes the addresses a room peer was
// reached at.
func (ps *Peers) onPeerUp(p peer.ID) {
	if ps.IsRoomPeer(p) {
		ps.notePeerAddrs(p)
		return
	}
	connected := ps.host.ConnectedPeers()
	for _, q := range ps.RoomPeers() {
		if !slices.Contains(connected, q) {
			ps.askRedial(0)
			return
		}
	}
}

// onPeerDown starts the redial ramp again when a room peer is lost: its
// first redial, half a second on, may find it through a relay.
func (ps *Peers) onPeerDown(p peer.ID) {
	if !ps.IsRoomPeer(p) {
		return
	}
	select {
	case ps.dials.lost <- struct{}{}:
	default:
	}
}

// onAddrsChanged redials room peers when this node's addresses changed
// (a relay reservation made or lost): peers that could not reach us may
// now, and we may reach them through the same relay.
func (ps *Peers) onAddrsChanged() { ps.askRedial(0) }
