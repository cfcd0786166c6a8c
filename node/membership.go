package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/parley-p2p/parley/errs"
	"github.com/parley-p2p/parley/node/dag"
	"slices"
	"strings"
	"time"

	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/rooms"
	"github.com/parley-p2p/parley/webui"
)

// Invite implements webui.Backend. A user on another node is invited
// through that node, which co-signs the invite before it enters the room.
func (n *Node) Invite(ctx context.Context, s *webui.Session, roomID, target, reason string) error {
	r := n.getRoom(roomID)
	if r == nil {
		return errs.Forbiddenf("you are not in room %s", roomID)
	}
	if m := n.membership(r, target); m == "join" || m == "invite" {
		if m == "join" {
			return errs.Forbiddenf("%s is already in the room", target)
		}
		return nil
	}
	content := map[string]any{"membership": "invite"}
	if reason != "" {
		content["reason"] = reason
	}
	c, err := rooms.MarshalCanonical(content)
	if err != nil {
		return err
	}
	server, err := rooms.ServerOf(target)
	if err != nil {
		return errs.Invalidf("invalid user ID %q", target)
	}
	if server == n.serverName {
		if _, err := n.account(strings.TrimPrefix(strings.SplitN(target, ":", 2)[0], "@")); err != nil {
			return errs.NotFoundf("user %s does not exist", target)
		}
		_, err := n.dag.Send(ctx, r.Room, s.UserID, "m.room.member", &target, c, "", "")
		return err
	}

	// Build and check the invite before bothering the other node.
	p, err := n.dag.Proto(r.Room, s.UserID, "m.room.member", &target, c)
	if err != nil {
		return err
	}
	ev, err := rooms.Build(p, r.Version, n.serverName, n.key)
	if err != nil {
		return err
	}
	state := r.State()
	if err := rooms.Allowed(ev, n.dag.StateFunc(dag.WithCreate(r.Room, state))); err != nil {
		return errs.Forbiddenf("%v", err)
	}
	peerID, err := peerOf(server)
	if err != nil {
		return errs.Invalidf("%v", err)
	}
	var resp eventResp
	if err := n.request(ctx, peerID, mInvite, inviteReq{RoomVersion: r.Version, Event: ev.JSON(), InviteState: n.inviteState(r, ev)}, &resp); err != nil {
		return errs.Unavailablef("could not deliver the invite to %s's node: %v", target, err)
	}
	signed, err := rooms.ParseEvent(resp.Event, r.Version)
	if err != nil || signed.ID() != ev.ID() {
		return errs.Unavailablef("invitee's node returned a different event")
	}
	if err := rooms.VerifySignature(signed, server); err != nil {
		return errs.Unavailablef("invitee's node did not sign the invite: %v", err)
	}
	if err := rooms.VerifySignature(signed, n.serverName); err != nil {
		return errs.Unavailablef("invite came back altered: %v", err)
	}
	out, err := n.dag.Admit(r.Room, signed, dag.Opts{Local: true})
	var rj *dag.Rejection
	if errors.As(err, &rj) {
		return errs.Forbiddenf("%s", rj.Reason)
	}
	if err != nil {
		return err
	}
	if err := <-out.Committed; err != nil {
		return err
	}
	n.publish(r.Room, signed)
	return nil
}

// inviteState is the stripped state sent with an invite.
func (n *Node) inviteState(r *room, invite *rooms.Event) []json.RawMessage {
	state := r.State()
	var out []json.RawMessage
	for _, k := range []rooms.StateKey{
		{Type: "m.room.create"}, {Type: "m.room.join_rules"}, {Type: "m.room.name"},
		{Type: "m.room.avatar"}, {Type: "m.room.topic"}, {Type: "m.room.canonical_alias"},
		{Type: "m.room.encryption"}, {Type: "m.room.member", StateKey: invite.Sender()},
	} {
		id, ok := dag.WithCreate(r.Room, state)[k]
		if !ok {
			continue
		}
		if i, err := n.dag.Event(id); err == nil {
			b, _ := json.Marshal(stripped(i.Event))
			out = append(out, b)
		}
	}
	// Sent as the receiver keeps it, so an invite fits a request
	// (p2p.MaxRequestSize) whatever the room's topic.
	if kept, err := keepInviteState(out, invite.Sender()); err == nil {
		out = kept
	}
	return out
}

func stripped(ev *rooms.Event) webui.StrippedEvent {
	sk := ""
	if ev.StateKey() != nil {
		sk = *ev.StateKey()
	}
	return webui.StrippedEvent{Content: ev.Content(), Sender: ev.Sender(), StateKey: sk, Type: ev.Type()}
}

// membership is a user's membership in the room's current state.
func (n *Node) membership(r *room, user string) string {
	id, ok := r.State()[rooms.StateKey{Type: "m.room.member", StateKey: user}]
	if !ok {
		return ""
	}
	i, err := n.dag.Event(id)
	if err != nil {
		return ""
	}
	return i.Event.Membership()
}

// Join implements webui.Backend. A room already on this node is joined
// locally; otherwise the join goes through the node that invited the user
// (make_join, then send_join), and returns once the room's state is here.
func (n *Node) Join(ctx context.Context, s *webui.Session, target string) (string, error) {
	if !strings.HasPrefix(target, "!") {
		return "", errs.NotFoundf("room aliases are not supported; join by room ID or invite link")
	}
	if r := n.getRoom(target); r != nil && r.followed() {
		if n.membership(r, s.UserID) == "join" {
			return r.ID, nil
		}
		c, _ := rooms.MarshalCanonical(n.memberContent(s.UserID, "join"))
		user := s.UserID
		if _, err := n.dag.Send(ctx, r.Room, s.UserID, "m.room.member", &user, c, "", ""); err != nil {
			return "", err
		}
		n.markInvite(s.UserID, r.ID)
		n.goBackground(func(ctx context.Context) { n.connectRoomPeers(ctx, r) })
		return r.ID, nil
	}
	var via []string
	if inv := n.invite(s.UserID, target); inv != nil {
		via = append(via, inv.Via)
		if ev, err := rooms.ParseEvent(inv.Event, inv.Version); err == nil {
			if srv, err := rooms.ServerOf(ev.Sender()); err == nil && !slices.Contains(via, srv) {
				via = append(via, srv)
			}
		}
	}
	if r := n.getRoom(target); r != nil {
		// A room every local user left: join again through its servers.
		for _, srv := range n.roomServers(r) {
			if !slices.Contains(via, srv) {
				via = append(via, srv)
			}
		}
	}
	if len(via) == 0 {
		return "", errs.NotFoundf("room %s is unknown here; join it through an invite", target)
	}
	var lastErr error
	for _, server := range via {
		if err := n.joinRemote(ctx, s.UserID, target, server); err != nil {
			lastErr = err
			n.log.Info("join through server failed", "room", target, "server", server[:8], "err", err)
			continue
		}
		n.markInvite(s.UserID, target)
		return target, nil
	}
	var me *webui.Error
	if errors.As(lastErr, &me) {
		return "", me
	}
	return "", errs.Unavailablef("could not join %s: %v", target, lastErr)
}

// joinRemote joins a room through a resident server.
func (n *Node) joinRemote(ctx context.Context, user, roomID, server string) error {
	p, err := peerOf(server)
	if err != nil {
		return err
	}
	var mj makeJoinResp
	if err := n.request(ctx, p, mMakeJoin, makeJoinReq{RoomID: roomID, UserID: user}, &mj); err != nil {
		return err
	}
	if !rooms.KnownVersion(mj.RoomVersion) {
		return fmt.Errorf("room version %q is not supported", mj.RoomVersion)
	}
	t := mj.Event
	if t.RoomID != roomID || t.Sender != user || t.Type != "m.room.member" || t.StateKey == nil || *t.StateKey != user {
		return fmt.Errorf("make_join returned a template for something else")
	}
	content, _ := rooms.MarshalCanonical(n.memberContent(user, "join"))
	ev, err := rooms.Build(rooms.ProtoEvent{
		RoomID: roomID, Sender: user, Type: "m.room.member", StateKey: &user, Content: content,
		PrevEvents: t.PrevEvents, AuthEvents: t.AuthEvents, Depth: t.Depth, OriginServerTS: nowMS(),
	}, mj.RoomVersion, n.serverName, n.key)
	if err != nil {
		return fmt.Errorf("build join: %w", err)
	}
	var sj stateResp
	if err := n.request(ctx, p, mSendJoin, sendJoinReq{RoomID: roomID, Event: ev.JSON()}, &sj); err != nil {
		return err
	}
	return n.completeJoin(ctx, roomID, mj.RoomVersion, ev, sj)
}

// completeJoin stores the state a resident server sent with send_join and
// the join event on top of it, then starts following the room.
func (n *Node) completeJoin(ctx context.Context, roomID, version string, join *rooms.Event, sj stateResp) error {
	r := n.getRoom(roomID)
	fresh := r == nil
	if fresh {
		r = newRoom(dag.NewRoom(roomID, version))
	}
	state, err := n.storeState(r, sj)
	if err != nil {
		return fmt.Errorf("room state from send_join: %w", err)
	}
	create, ok := state[rooms.StateKey{Type: "m.room.create"}]
	if version != rooms.V11 {
		if ok && create != dag.CreateEventID(r.Room) {
			return fmt.Errorf("state names a create event that does not match the room ID")
		}
		if !n.dag.Known(dag.CreateEventID(r.Room)) {
			return fmt.Errorf("send_join did not include the create event")
		}
	} else if !ok {
		return fmt.Errorf("state has no create event")
	}
	// The state after the join's prev events is the state before the join
	// when it has exactly one prev event: record it so later events built
	// on that prev can be checked without another round trip.
	if prevs := join.PrevEvents(); len(prevs) == 1 && len(sj.Events) > 0 {
		if evs, err := n.parseVerified(r, sj.Events); err == nil {
			for _, pe := range evs {
				if pe.ID() == prevs[0] {
					out, err := n.dag.StoreOutlier(r.Room, pe, state)
					if err == nil {
						<-out.Committed
					}
				}
			}
		}
	}
	out, err := n.dag.Admit(r.Room, join, dag.Opts{Local: true, StateBefore: state})
	var rj *dag.Rejection
	if errors.As(err, &rj) {
		return errs.Forbiddenf("join %s", rj.Reason)
	}
	if err != nil {
		return err
	}
	if err := <-out.Committed; err != nil {
		return err
	}
	if fresh {
		if r, err = n.activateRoom(r); err != nil {
			return err
		}
	} else if err := n.startFollowing(r); err != nil {
		return err
	}
	// Events sent while the join was under way, or before this node's
	// subscription reached the others, went past it: catch up now, and
	// again once the subscription has surely spread.
	n.goBackground(func(ctx context.Context) {
		for _, delay := range []time.Duration{0, time.Second, 5 * time.Second} {
			select {
			case <-ctx.Done():
				return
			case <-time.After(delay):
			}
			for _, p := range n.connectedMembers(r) {
				n.catchUp(ctx, r, p)
			}
		}
	})
	return nil
}

// Leave implements webui.Backend; it also declines an invite.
func (n *Node) Leave(ctx context.Context, s *webui.Session, roomID, reason string) error {
	r := n.getRoom(roomID)
	if r != nil && n.membership(r, s.UserID) != "" && n.membership(r, s.UserID) != "leave" {
		content := map[string]any{"membership": "leave"}
		if reason != "" {
			content["reason"] = reason
		}
		c, _ := rooms.MarshalCanonical(content)
		user := s.UserID
		_, err := n.dag.Send(ctx, r.Room, s.UserID, "m.room.member", &user, c, "", "")
		n.markInvite(s.UserID, roomID)
		if err == nil {
			n.checkFollowing(r)
		}
		return err
	}
	if inv := n.invite(s.UserID, roomID); inv != nil && !inv.Left {
		if r != nil && r.followed() && n.placeInvite(ctx, r, inv) && n.membership(r, s.UserID) == "invite" {
			// The invite came before the inviter's gossip of it; placed
			// now, the decline is a leave event the whole room sees.
			return n.Leave(ctx, s, roomID, reason)
		}
		// Declining an invite to a room this node does not hold: forget it
		// locally. (The inviter is not told yet: that needs make_leave.)
		n.markInvite(s.UserID, roomID)
		return nil
	}
	if r == nil {
		return errs.NotFoundf("you are not in room %s", roomID)
	}
	return nil
}

// placeInvite places the event of an invite record in the room's DAG,
// as if its gossip had come. It reports whether the event is placed.
func (n *Node) placeInvite(ctx context.Context, r *room, inv *store.Invite) bool {
	ev, err := rooms.ParseEvent(inv.Event, inv.Version)
	if err != nil || rooms.Verify(ev) != nil || ev.RoomID() != r.ID {
		return false
	}
	if n.dag.Known(ev.ID()) {
		return true
	}
	out, err := n.ingestRemote(ctx, r, ev, "", false)
	if err != nil || out.Rejected != nil {
		return false
	}
	return <-out.Committed == nil
}

// invite loads a pending invite record.
func (n *Node) invite(user, roomID string) *store.Invite {
	var inv *store.Invite
	n.store.View(func(t *store.Txn) error {
		var err error
		inv, err = t.Invite(user, roomID)
		return err
	})
	return inv
}

// markInvite closes a pending invite record once the user joined or
// declined, so /sync moves the room out of rooms.invite, and drops the
// state the inviter sent with it.
func (n *Node) markInvite(user, roomID string) {
	err := n.store.Update(func(t *store.Txn) error {
		inv, err := t.Invite(user, roomID)
		if err != nil || inv.Left {
			return nil
		}
		closeInvite(t, inv)
		return t.PutInvite(user, inv)
	})
	if err != nil {
		n.log.Warn("update invite", "room", roomID, "err", err)
	}
}

// Moderate implements webui.Backend: kick, ban and unban.
func (n *Node) Moderate(ctx context.Context, s *webui.Session, roomID, target, membership, reason string) error {
	r := n.getRoom(roomID)
	if r == nil || n.membership(r, s.UserID) != "join" {
		return errs.Forbiddenf("you are not joined to room %s", roomID)
	}
	content := map[string]any{"membership": membership}
	if reason != "" {
		content["reason"] = reason
	}
	c, err := rooms.MarshalCanonical(content)
	if err != nil {
		return err
	}
	if _, err := n.dag.Send(ctx, r.Room, s.UserID, "m.room.member", &target, c, "", ""); err != nil {
		return err
	}
	n.checkFollowing(r)
	return nil
}
