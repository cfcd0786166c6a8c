package peers

import (
	"context"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/parley-p2p/parley/p2p"

	"github.com/parley-p2p/parley/node/dag"

	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/rooms"
)

// A node follows a room while one of its users is joined or invited (or
// knocking): it is subscribed to the room's topic, runs the room's worker,
// keeps connections to the room's servers and advertises the room in the
// DHT. Once every local user has left, been kicked or banned, it stops all
// of that; the room stays in ps.rooms so its history up to the leave stays
// readable. Joining again follows it again.

// following is what a followed room runs; cancel stops it.
type following struct {
	cancel context.CancelFunc
	// topics are the gossip topics the room is on ("" while the node
	// does not hold the room's secret); see refreshTopics.
	topics string
	v      p2p.Validator
	recv   p2p.Receiver
}

// Followed reports whether the node follows the room.
func (r *Room) Followed() bool {
	r.followMu.Lock()
	defer r.followMu.Unlock()
	return r.follow != nil
}

// startFollowing subscribes to the room's topic and starts its worker, its
// DHT advertisement and connections to its servers. Following a followed
// room does nothing.
func (ps *Peers) startFollowing(r *Room) error {
	r.followMu.Lock()
	defer r.followMu.Unlock()
	if r.follow != nil {
		return nil
	}
	if err := ps.ctx.Err(); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ps.ctx)
	r.follow = &following{cancel: cancel}
	ps.roomWorkers.Add(1)
	ps.goBackground(func(context.Context) {
		defer ps.roomWorkers.Add(-1)
		ps.roomWorker(ctx, r)
	})
	r.follow.v, r.follow.recv = ps.ValidateGossip(r), ps.receiveGossip(r)
	r.gate.mu.Lock()
	r.gate.grew = func() { ps.host.RoomMembersChanged(r.ID) }
	r.gate.mu.Unlock()
	ps.host.SetRoomMembers(r.ID, ps.memberFilter(r))
	ps.watchRotation(r)
	if err := ps.refreshTopicsLocked(r, time.Now()); err != nil {
		cancel()
		r.follow = nil
		return fmt.Errorf("join topic of %s: %w", r.ID, err)
	}
	ps.goBackground(func(context.Context) { ps.connectRoomPeers(ctx, r) })
	ps.goBackground(func(context.Context) { ps.advertise(ctx, r) })
	return nil
}

// refreshTopics moves a followed room to the topics of the room's secret
// now (a new period, a grace hour begun or ended, a secret just learnt).
func (ps *Peers) refreshTopics(r *Room, now time.Time) {
	r.followMu.Lock()
	defer r.followMu.Unlock()
	if r.follow == nil {
		return
	}
	if err := ps.refreshTopicsLocked(r, now); err != nil {
		ps.log.Warn("moving to the room's topics", "room", r.ID, "err", err)
	}
}

// refreshTopicsLocked is refreshTopics with r.followMu held and r
// followed. Without the room's secret the room stays off gossip: its
// worker, catch-up and requests carry on.
func (ps *Peers) refreshTopicsLocked(r *Room, now time.Time) error {
	keys, ok := ps.roomKeysAt(r.ID, now)
	if !ok {
		if r.follow.topics == "" {
			ps.log.Warn("following a room without its secret: no gossip until it comes", "room", r.ID)
		}
		return nil
	}
	sig := keys.Publish.Topic
	for _, t := range keys.Listen {
		sig += " " + t.Topic
	}
	if sig == r.follow.topics {
		return nil
	}
	if err := ps.host.JoinRoom(r.ID, keys, r.follow.v, r.follow.recv); err != nil {
		return err
	}
	r.follow.topics = sig
	return nil
}

// memberFilter is the room's members filter for p2p: the peers whose
// server may speak in the room (gate.go).
func (ps *Peers) memberFilter(r *Room) func(peer.ID) bool {
	return func(p peer.ID) bool {
		server, err := p2p.ServerNameFromPeerID(p)
		return err == nil && r.gate.allowsServer(ps, r, server, time.Now())
	}
}

// stopFollowing leaves the room's topic and stops its worker, its DHT
// advertisement (the provider record others hold then expires) and
// connecting to its servers.
func (ps *Peers) stopFollowing(r *Room) {
	r.followMu.Lock()
	defer r.followMu.Unlock()
	ps.stopFollowingLocked(r)
}

func (ps *Peers) stopFollowingLocked(r *Room) {
	if r.follow == nil {
		return
	}
	r.follow.cancel()
	r.follow = nil
	ps.host.SetRoomMembers(r.ID, nil)
	if err := ps.host.LeaveRoom(r.ID); err != nil {
		ps.log.Warn("leave room topic", "room", r.ID, "err", err)
	}
	ps.log.Info("no local member left in the room; stopped following it", "room", r.ID)
}

// CheckFollowing stops following the room when no local user is in it any
// more. It is called after a local user's membership changed. The check
// and the stop hold followMu, as startFollowing does after a
// local join commits: a join racing a leave either sees the room still
// followed after the stop's check, or follows it again after the stop.
func (ps *Peers) CheckFollowing(r *Room) {
	r.followMu.Lock()
	defer r.followMu.Unlock()
	if r.follow != nil && ps.leftByAll(r) {
		ps.stopFollowingLocked(r)
	}
}

// leftByAll reports whether every local user has left the room: none is
// joined, invited or knocking in its current state, one has been there,
// and no invite of a local user is still on its way into the room's DAG
// (the invite request, which this node co-signs, comes before the
// inviter's gossip of the event).
func (ps *Peers) leftByAll(r *Room) bool {
	in, seen := ps.localMembership(r)
	return !in && seen && !ps.inviteOnItsWay(r)
}

// inviteOnItsWay reports whether a local user holds an open invite to the
// room whose event the node has not yet placed.
func (ps *Peers) inviteOnItsWay(r *Room) bool {
	found := false
	err := ps.store.View(func(t *store.Txn) error {
		return t.AllInvites(func(_ string, inv *store.Invite) error {
			if found || inv.Left || inv.RoomID != r.ID {
				return nil
			}
			ev, err := rooms.ParseEvent(inv.Event, inv.Version)
			found = err == nil && !ps.dag.Known(ev.ID())
			return nil
		})
	})
	return found || err != nil // unreadable: keep following rather than drop a room by mistake
}

// hasLocalMember reports whether a user of this node is joined, invited or
// knocking in the room's current state.
func (ps *Peers) hasLocalMember(r *Room) bool {
	in, _ := ps.localMembership(r)
	return in
}

// localMembership reports whether a user of this node is joined, invited
// or knocking in the room's current state (in), and whether any user of
// this node has a membership there at all (seen: false in a room still
// being created).
func (ps *Peers) localMembership(r *Room) (in, seen bool) {
	for s, id := range dag.MemberEvents(r.State()) {
		if s != ps.serverName {
			continue
		}
		seen = true
		// Unreadable: keep following rather than drop a room by mistake.
		if m, ok := ps.dag.MembershipOf(id); !ok || dag.Speaks(m) {
			return true, true
		}
	}
	return false, seen
}

// followedRooms lists the rooms the node follows.
func (ps *Peers) followedRooms() []*Room {
	var out []*Room
	for _, r := range ps.Rooms() {
		if r.Followed() {
			out = append(out, r)
		}
	}
	return out
}

// Rooms lists the rooms this node holds, followed or not.
func (ps *Peers) Rooms() []*Room {
	drs := ps.dag.Rooms()
	out := make([]*Room, 0, len(drs))
	for _, dr := range drs {
		out = append(out, ps.wrapRoom(dr))
	}
	return out
}
