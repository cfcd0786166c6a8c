package node

import (
	"context"
	"fmt"
	"github.com/parley-p2p/parley/node/dag"

	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/rooms"
)

// A node follows a room while one of its users is joined or invited (or
// knocking): it is subscribed to the room's topic, runs the room's worker,
// keeps connections to the room's servers and advertises the room in the
// DHT. Once every local user has left, been kicked or banned, it stops all
// of that; the room stays in n.rooms so its history up to the leave stays
// readable. Joining again follows it again.

// following is what a followed room runs; cancel stops it.
type following struct {
	cancel context.CancelFunc
}

// followed reports whether the node follows the room.
func (r *room) followed() bool {
	r.followMu.Lock()
	defer r.followMu.Unlock()
	return r.follow != nil
}

// startFollowing subscribes to the room's topic and starts its worker, its
// DHT advertisement and connections to its servers. Following a followed
// room does nothing.
func (n *Node) startFollowing(r *room) error {
	r.followMu.Lock()
	defer r.followMu.Unlock()
	if r.follow != nil {
		return nil
	}
	if err := n.ctx.Err(); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(n.ctx)
	r.follow = &following{cancel: cancel}
	n.roomWorkers.Add(1)
	n.goBackground(func(context.Context) {
		defer n.roomWorkers.Add(-1)
		n.roomWorker(ctx, r)
	})
	if err := n.host.JoinRoom(r.ID, n.validateGossip(r), n.receiveGossip(r)); err != nil {
		cancel()
		r.follow = nil
		return fmt.Errorf("join topic of %s: %w", r.ID, err)
	}
	n.goBackground(func(context.Context) { n.connectRoomPeers(ctx, r) })
	n.goBackground(func(context.Context) { n.advertise(ctx, r) })
	return nil
}

// stopFollowing leaves the room's topic and stops its worker, its DHT
// advertisement (the provider record others hold then expires) and
// connecting to its servers.
func (n *Node) stopFollowing(r *room) {
	r.followMu.Lock()
	defer r.followMu.Unlock()
	n.stopFollowingLocked(r)
}

func (n *Node) stopFollowingLocked(r *room) {
	if r.follow == nil {
		return
	}
	r.follow.cancel()
	r.follow = nil
	if err := n.host.LeaveRoom(r.ID); err != nil {
		n.log.Warn("leave room topic", "room", r.ID, "err", err)
	}
	n.log.Info("no local member left in the room; stopped following it", "room", r.ID)
}

// checkFollowing stops following the room when no local user is in it any
// more. It is called after a local user's membership changed. The check
// and the stop hold followMu, as startFollowing does after a
// local join commits: a join racing a leave either sees the room still
// followed after the stop's check, or follows it again after the stop.
func (n *Node) checkFollowing(r *room) {
	r.followMu.Lock()
	defer r.followMu.Unlock()
	if r.follow != nil && n.leftByAll(r) {
		n.stopFollowingLocked(r)
	}
}

// leftByAll reports whether every local user has left the room: none is
// joined, invited or knocking in its current state, one has been there,
// and no invite of a local user is still on its way into the room's DAG
// (the invite request, which this node co-signs, comes before the
// inviter's gossip of the event).
func (n *Node) leftByAll(r *room) bool {
	in, seen := n.localMembership(r)
	return !in && seen && !n.inviteOnItsWay(r)
}

// inviteOnItsWay reports whether a local user holds an open invite to the
// room whose event the node has not yet placed.
func (n *Node) inviteOnItsWay(r *room) bool {
	found := false
	err := n.store.View(func(t *store.Txn) error {
		return t.AllInvites(func(_ string, inv *store.Invite) error {
			if found || inv.Left || inv.RoomID != r.ID {
				return nil
			}
			ev, err := rooms.ParseEvent(inv.Event, inv.Version)
			found = err == nil && !n.dag.Known(ev.ID())
			return nil
		})
	})
	return found || err != nil // unreadable: keep following rather than drop a room by mistake
}

// hasLocalMember reports whether a user of this node is joined, invited or
// knocking in the room's current state.
func (n *Node) hasLocalMember(r *room) bool {
	in, _ := n.localMembership(r)
	return in
}

// localMembership reports whether a user of this node is joined, invited
// or knocking in the room's current state (in), and whether any user of
// this node has a membership there at all (seen: false in a room still
// being created).
func (n *Node) localMembership(r *room) (in, seen bool) {
	for s, id := range dag.MemberEvents(r.State()) {
		if s != n.serverName {
			continue
		}
		seen = true
		// Unreadable: keep following rather than drop a room by mistake.
		if m, ok := n.dag.MembershipOf(id); !ok || dag.Speaks(m) {
			return true, true
		}
	}
	return false, seen
}

// followedRooms lists the rooms the node follows.
func (n *Node) followedRooms() []*room {
	var out []*room
	for _, r := range n.allRooms() {
		if r.followed() {
			out = append(out, r)
		}
	}
	return out
}
