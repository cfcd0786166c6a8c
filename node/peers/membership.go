package peers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/parley-p2p/parley/errs"
	"github.com/parley-p2p/parley/node/dag"
	"github.com/parley-p2p/parley/node/e2ee"
	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/p2p"

	"github.com/parley-p2p/parley/rooms"
)

// inviteState is the stripped state sent with an invite.
func (ps *Peers) inviteState(r *Room, invite *rooms.Event) []json.RawMessage {
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
		if i, err := ps.dag.Event(id); err == nil {
			st := strippedOf(i.Event)
			// The invitee is shown the room as its members read it:
			// the invite travels sealed to the invitee's node.
			st.Content = i.ReadContent()
			b, _ := json.Marshal(st)
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

// membership is a user's membership in the room's current state.
func (ps *Peers) Membership(r *Room, user string) string {
	return ps.membershipIn(r.Room, user)
}

// membershipIn is Membership for a room of the engine's.
func (ps *Peers) membershipIn(r *dag.Room, user string) string {
	id, ok := r.State()[rooms.StateKey{Type: "m.room.member", StateKey: user}]
	if !ok {
		return ""
	}
	m, _ := ps.dag.MembershipOf(id)
	return m
}

// errCannotJoin is the one answer a resident gives to a make_join,
// send_join, make_knock or send_knock it refuses: the same whether the
// room is unknown here, no user of this node is in it, or the user may
// not join (or knock), so that a server not allowed in a room learns
// nothing of it, not even that it exists. The client API shows it as
// 403 M_FORBIDDEN.
func errCannotJoin() error {
	return remoteErr("M_FORBIDDEN", "the room cannot be joined through this server")
}

// joinable finds a room that user may enter through this node, as allowed
// says (mayJoin, mayKnock): the room is here, a user of this node is in
// it, and the rules would let the user in. Anything else is
// errCannotJoin.
func (ps *Peers) joinable(roomID, user string, allowed func(store.StateMap, string) bool) (*Room, error) {
	r := ps.Room(roomID)
	if r == nil {
		return nil, errCannotJoin()
	}
	state := r.State()
	resident := ps.serverHas(state, ps.serverName, func(m string) bool { return m == "join" || m == "invite" })
	if !resident || !allowed(state, user) {
		return nil, errCannotJoin()
	}
	return r, nil
}

// senderOf reads an event's sender before the event is parsed (which
// needs the room's version, not to be told a server not allowed in).
func senderOf(raw json.RawMessage) string {
	var ev struct {
		Sender string `json:"sender"`
	}
	if json.Unmarshal(raw, &ev) != nil {
		return ""
	}
	return ev.Sender
}

// remoteRefusal turns a resident's refusal (M_FORBIDDEN) into the
// client API's 403; other failures stay as they are (unreachable,
// timed out, a bad answer).
func remoteRefusal(err error, what, server string) error {
	var re *p2p.RemoteError
	if errors.As(err, &re) && re.Code == "M_FORBIDDEN" {
		return errs.Forbiddenf("%s refused through %s: %s", what, shortServer(server), re.Message)
	}
	return err
}

// joinRemote joins a room through a resident server.
func (ps *Peers) JoinRemote(ctx context.Context, user, roomID, server string, content json.RawMessage) error {
	p, err := peerOf(server)
	if err != nil {
		return err
	}
	given := content
	if content, err = ps.joinContent(content); err != nil {
		return err
	}
	var mj MakeJoinResp
	if err := ps.request(ctx, p, MethodMakeJoin, MakeJoinReq{RoomID: roomID, UserID: user}, &mj); err != nil {
		return remoteRefusal(err, "the join", server)
	}
	if !rooms.KnownVersion(mj.RoomVersion) {
		return fmt.Errorf("room version %q is not supported", mj.RoomVersion)
	}
	t := mj.Event
	if t.RoomID != roomID || t.Sender != user || t.Type != "m.room.member" || t.StateKey == nil || *t.StateKey != user {
		return fmt.Errorf("make_join returned a template for something else")
	}
	ev, err := rooms.Build(rooms.ProtoEvent{
		RoomID: roomID, Sender: user, Type: "m.room.member", StateKey: &user, Content: content,
		PrevEvents: t.PrevEvents, AuthEvents: t.AuthEvents, Depth: t.Depth, OriginServerTS: nowMS(),
	}, mj.RoomVersion, ps.serverName, ps.key)
	if err != nil {
		return fmt.Errorf("build join: %w", err)
	}
	var sj JoinedResp
	if err := ps.request(ctx, p, MethodSendJoin, SendJoinReq{RoomID: roomID, Event: ev.JSON()}, &sj); err != nil {
		return remoteRefusal(err, "the join", server)
	}
	if len(sj.Secret) > 0 {
		if err := ps.keepJoinSecret(roomID, ev, sj.Secret); err != nil {
			ps.log.Warn("the room secret of a send_join answer", "room", roomID, "err", err)
		}
	}
	if r := ps.Room(roomID); r != nil && len(r.Head().Ext) > 0 {
		// A room this node held before: what was sent while it was away
		// joins its timeline ahead of the join, rather than the join's
		// prev event alone, as an outlier outside it (completeJoin).
		if err := ps.fillGap(ctx, r, p, ev.PrevEvents()); err != nil {
			ps.log.Info("events sent while the node was away", "room", roomID, "err", err)
		}
	}
	if err := ps.completeJoin(ctx, roomID, mj.RoomVersion, ev, sj.StateResp); err != nil {
		return err
	}
	ps.sendProfile(ctx, roomID, user, given)
	return nil
}

// sendProfile follows a join made through another node with the user's
// profile (display name, avatar), which the join itself leaves out: sent
// as a room event, it is what the room's codec encrypts.
func (ps *Peers) sendProfile(ctx context.Context, roomID, user string, given json.RawMessage) {
	var in map[string]json.RawMessage
	if json.Unmarshal(given, &in) != nil || (in["displayname"] == nil && in["avatar_url"] == nil) {
		return
	}
	r := ps.Room(roomID)
	if r == nil {
		return
	}
	c := map[string]any{"membership": "join", e2ee.KEMField: ps.kem.Doc()}
	for _, k := range []string{"displayname", "avatar_url"} {
		if v, ok := in[k]; ok {
			c[k] = v
		}
	}
	raw, err := rooms.MarshalCanonical(c)
	if err != nil {
		return
	}
	if _, err := ps.dag.Send(ctx, r.Room, user, "m.room.member", &user, raw, "", ""); err != nil {
		ps.log.Warn("sending the profile after a join", "room", roomID, "err", err)
	}
}

// completeJoin stores the state a resident server sent with send_join and
// the join event on top of it, then starts following the room.
func (ps *Peers) completeJoin(ctx context.Context, roomID, version string, join *rooms.Event, sj StateResp) error {
	r := ps.Room(roomID)
	fresh := r == nil
	if fresh {
		r = newRoom(dag.NewRoom(roomID, version))
	}
	state, err := ps.storeState(r, sj)
	if err != nil {
		return fmt.Errorf("room state from send_join: %w", err)
	}
	create, ok := state[rooms.StateKey{Type: "m.room.create"}]
	if !rooms.RoomIDHasServer(version) {
		if ok && create != dag.CreateEventID(r.Room) {
			return fmt.Errorf("state names a create event that does not match the room ID")
		}
		if !ps.dag.Known(dag.CreateEventID(r.Room)) {
			return fmt.Errorf("send_join did not include the create event")
		}
	} else if !ok {
		return fmt.Errorf("state has no create event")
	}
	// The state after the join's prev events is the state before the join
	// when it has exactly one prev event: record it so later events built
	// on that prev can be checked without another round trip.
	if prevs := join.PrevEvents(); len(prevs) == 1 && len(sj.Events) > 0 {
		if evs, err := ps.parseVerified(r, sj.Events); err == nil {
			for _, pe := range evs {
				if pe.ID() == prevs[0] {
					out, err := ps.dag.StoreOutlier(r.Room, pe, state)
					if err == nil {
						<-out.Committed
					}
				}
			}
		}
	}
	out, err := ps.dag.Admit(r.Room, join, dag.Opts{Local: true, StateBefore: state})
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
		if r, err = ps.activate(r); err != nil {
			return err
		}
	} else if err := ps.startFollowing(r); err != nil {
		return err
	}
	// Events sent while the join was under way, or before this node's
	// subscription reached the others, went past it: catch up now, and
	// again once the subscription has surely spread.
	ps.goBackground(func(ctx context.Context) {
		for _, delay := range []time.Duration{0, time.Second, 5 * time.Second} {
			select {
			case <-ctx.Done():
				return
			case <-time.After(delay):
			}
			for _, p := range ps.connectedMembers(r) {
				ps.CatchUp(ctx, r, p)
			}
		}
	})
	return nil
}

// Invite has the local user inviter invite target. A user on another
// node is invited through that node, which co-signs the invite before it
// enters the room.
func (ps *Peers) Invite(ctx context.Context, inviter, roomID, target, reason string) error {
	return ps.InviteDirect(ctx, inviter, roomID, target, reason, false)
}

// InviteDirect is Invite, marking the invite as one to a direct chat
// (is_direct) when direct is set.
func (ps *Peers) InviteDirect(ctx context.Context, inviter, roomID, target, reason string, direct bool) error {
	r := ps.Room(roomID)
	if r == nil {
		return errs.Forbiddenf("you are not in room %s", roomID)
	}
	if m := ps.Membership(r, target); m == "join" || m == "invite" {
		if m == "join" {
			return errs.Forbiddenf("%s is already in the room", target)
		}
		return nil
	}
	content := map[string]any{"membership": "invite"}
	if reason != "" {
		content["reason"] = reason
	}
	if direct {
		content["is_direct"] = true
	}
	c, err := rooms.MarshalCanonical(content)
	if err != nil {
		return err
	}
	server, err := rooms.ServerOf(target)
	if err != nil {
		return errs.Invalidf("invalid user ID %q", target)
	}
	if server == ps.serverName {
		if local, _ := ps.LocalUser(target); !ps.userExists(local) {
			return errs.NotFoundf("user %s does not exist", target)
		}
		_, err := ps.dag.Send(ctx, r.Room, inviter, "m.room.member", &target, c, "", "")
		return err
	}

	// Build and check the invite before bothering the other node.
	p, err := ps.dag.Proto(r.Room, inviter, "m.room.member", &target, c)
	if err != nil {
		return err
	}
	ev, err := rooms.Build(p, r.Version, ps.serverName, ps.key)
	if err != nil {
		return err
	}
	state := r.State()
	if err := rooms.Allowed(ev, ps.dag.StateFunc(dag.WithCreate(r.Room, state))); err != nil {
		return errs.Forbiddenf("%v", err)
	}
	peerID, err := peerOf(server)
	if err != nil {
		return errs.Invalidf("%v", err)
	}
	sealed, err := ps.sealInvite(ctx, server, InviteReq{RoomVersion: r.Version, Event: ev.JSON(), InviteState: ps.inviteState(r, ev)})
	if err != nil {
		return errs.Unavailablef("could not seal the invite to %s's node: %v", target, err)
	}
	var resp EventResp
	if err := ps.request(ctx, peerID, MethodInvite, sealed, &resp); err != nil {
		return errs.Unavailablef("could not deliver the invite to %s's node: %v", target, err)
	}
	signed, err := rooms.ParseEvent(resp.Event, r.Version)
	if err != nil || signed.ID() != ev.ID() {
		return errs.Unavailablef("invitee's node returned a different event")
	}
	if err := rooms.VerifySignature(signed, server); err != nil {
		return errs.Unavailablef("invitee's node did not sign the invite: %v", err)
	}
	if err := rooms.VerifySignature(signed, ps.serverName); err != nil {
		return errs.Unavailablef("invite came back altered: %v", err)
	}
	return ps.dag.AdmitLocal(r.Room, signed, nil)
}

// strippedEvent is an event as invite state carries it.
type strippedEvent struct {
	Content  json.RawMessage `json:"content"`
	Sender   string          `json:"sender"`
	StateKey string          `json:"state_key"`
	Type     string          `json:"type"`
}

func strippedOf(ev *rooms.Event) strippedEvent {
	sk := ""
	if ev.StateKey() != nil {
		sk = *ev.StateKey()
	}
	return strippedEvent{Content: ev.Content(), Sender: ev.Sender(), StateKey: sk, Type: ev.Type()}
}

// PlaceInvite places the event of an invite record in the room's DAG,
// as if its gossip had come. It reports whether the event is placed.
func (ps *Peers) PlaceInvite(ctx context.Context, r *Room, inv *store.Invite) bool {
	ev, err := rooms.ParseEvent(inv.Event, inv.Version)
	if err != nil || rooms.Verify(ev) != nil || ev.RoomID() != r.ID {
		return false
	}
	if ps.dag.Known(ev.ID()) {
		return true
	}
	out, err := ps.ingestRemote(ctx, r, ev, "", false)
	if err != nil || out.Rejected != nil {
		return false
	}
	return <-out.Committed == nil
}
