package peers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-p2p/parley/errs"
	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/p2p"
	"github.com/parley-p2p/parley/rooms"
)

// Knocking (room versions 7 and up): a user asks to be let into a room
// whose join rule is "knock" or "knock_restricted". A server not in the
// room knocks through a resident, as a join goes: make_knock returns a
// template, send_knock admits the signed knock into the room (members see
// it in their timeline and state) and answers with the room's stripped
// state. Both travel plain: the knocker's node holds no secret of the
// room and is given none, so it reads nothing of the room but that
// stripped state until a member invites its user (the invite flow).
//
// The knocker's node does not follow the room, so what ends a knock
// reaches it by request: the knocker withdraws through a resident
// (make_leave, send_leave, allowed only to a knocking user), and a member
// who refuses a knock (a kick or ban of the knocker) sends the event to
// the knocker's node (knock_denied).

// mayKnock reports whether user may knock on a room in state: its join
// rule allows knocking, and the user is not banned, joined or invited.
func (ps *Peers) mayKnock(state store.StateMap, user string) bool {
	switch ps.membershipAt(state, user) {
	case "ban", "join", "invite":
		return false
	}
	jr := ps.joinRule(state)
	return jr == "knock" || jr == "knock_restricted"
}

// knocking reports whether user is knocking in state: who may withdraw
// through make_leave and send_leave.
func (ps *Peers) knocking(state store.StateMap, user string) bool {
	return ps.membershipAt(state, user) == "knock"
}

// membershipAt is a user's membership in a state.
func (ps *Peers) membershipAt(state store.StateMap, user string) string {
	id, ok := state[rooms.StateKey{Type: "m.room.member", StateKey: user}]
	if !ok {
		return ""
	}
	m, _ := ps.dag.MembershipOf(id)
	return m
}

// onMakeMember answers make_join, make_knock and make_leave: a template
// of the user's membership event, for a user allowed to send it.
func (ps *Peers) onMakeMember(server string, body []byte, membership string, allowed func(store.StateMap, string) bool) (any, error) {
	var req MakeJoinReq
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	if s, err := rooms.ServerOf(req.UserID); err != nil || s != server {
		return nil, remoteErr("M_FORBIDDEN", "a server may only speak for its own users")
	}
	r, err := ps.joinable(req.RoomID, req.UserID, allowed)
	if err != nil {
		return nil, err
	}
	content, _ := rooms.MarshalCanonical(map[string]string{"membership": membership})
	p, err := ps.dag.Proto(r.Room, req.UserID, "m.room.member", &req.UserID, content)
	if err != nil {
		return nil, err
	}
	return MakeJoinResp{RoomVersion: r.Version, Event: ProtoJSON{
		RoomID: p.RoomID, Sender: p.Sender, Type: p.Type, StateKey: p.StateKey, Content: p.Content,
		PrevEvents: p.PrevEvents, AuthEvents: p.AuthEvents, Depth: p.Depth,
	}}, nil
}

// onSendMember admits the membership event a server sent for one of its
// users (send_knock, send_leave), and publishes it to the room.
func (ps *Peers) onSendMember(ctx context.Context, from peer.ID, server string, body []byte, membership string, allowed func(store.StateMap, string) bool) (*Room, *rooms.Event, error) {
	var req SendJoinReq
	if err := decode(body, &req); err != nil {
		return nil, nil, err
	}
	r, err := ps.joinable(req.RoomID, senderOf(req.Event), allowed)
	if err != nil {
		return nil, nil, err
	}
	ev, err := rooms.ParseEvent(req.Event, r.Version)
	if err != nil {
		return nil, nil, remoteErr("M_BAD_JSON", "%s event: %v", membership, err)
	}
	if ev.RoomID() != r.ID || ev.Type() != "m.room.member" || ev.Membership() != membership || ev.StateKey() == nil || *ev.StateKey() != ev.Sender() {
		return nil, nil, remoteErr("M_BAD_JSON", "not a %s event for this room", membership)
	}
	if s, _ := rooms.ServerOf(ev.Sender()); s != server {
		return nil, nil, remoteErr("M_FORBIDDEN", "a server may only speak for its own users")
	}
	if err := rooms.Verify(ev); err != nil {
		return nil, nil, remoteErr("M_FORBIDDEN", "%s event: %v", membership, err)
	}
	out, err := ps.ingestRemote(ctx, r, ev, from, false)
	if err != nil {
		return nil, nil, err
	}
	if out.Rejected != nil {
		return nil, nil, remoteErr("M_FORBIDDEN", "%s %s", membership, out.Rejected.Error())
	}
	if err := <-out.Committed; err != nil {
		return nil, nil, err
	}
	ps.publish(r.Room, ev)
	return r, ev, nil
}

func (ps *Peers) onMakeKnock(server string, body []byte) (any, error) {
	return ps.onMakeMember(server, body, "knock", ps.mayKnock)
}

func (ps *Peers) onSendKnock(ctx context.Context, from peer.ID, server string, body []byte) (any, error) {
	r, ev, err := ps.onSendMember(ctx, from, server, body, "knock", ps.mayKnock)
	if err != nil {
		return nil, err
	}
	return KnockResp{KnockRoomState: ps.inviteState(r, ev)}, nil
}

func (ps *Peers) onMakeLeave(server string, body []byte) (any, error) {
	return ps.onMakeMember(server, body, "leave", ps.knocking)
}

func (ps *Peers) onSendLeave(ctx context.Context, from peer.ID, server string, body []byte) (any, error) {
	if _, _, err := ps.onSendMember(ctx, from, server, body, "leave", ps.knocking); err != nil {
		return nil, err
	}
	return AckResp{}, nil
}

// Knocked is what a knock through a resident leaves with the knocker's
// node: the room's version, the knock event, and the stripped state the
// resident answered with, as the node keeps it.
type Knocked struct {
	Version string
	Event   json.RawMessage
	State   []json.RawMessage
}

// KnockRemote knocks on a room through a resident server.
func (ps *Peers) KnockRemote(ctx context.Context, user, roomID, server, reason string) (*Knocked, error) {
	content := map[string]any{"membership": "knock"}
	if reason != "" {
		content["reason"] = reason
	}
	p, ev, version, err := ps.memberThrough(ctx, MethodMakeKnock, user, roomID, server, content)
	if err != nil {
		return nil, err
	}
	var resp KnockResp
	if err := ps.request(ctx, p, MethodSendKnock, SendJoinReq{RoomID: roomID, Event: ev.JSON()}, &resp); err != nil {
		return nil, remoteRefusal(err, "the knock", server)
	}
	state, err := keepInviteState(resp.KnockRoomState, user)
	if err != nil {
		state = nil // the knock stands; the room is shown by its ID alone
	}
	return &Knocked{Version: version, Event: ev.JSON(), State: state}, nil
}

// WithdrawKnock sends user's leave through a resident server, ending
// their knock. It returns the leave event.
func (ps *Peers) WithdrawKnock(ctx context.Context, user, roomID, server, reason string) (json.RawMessage, error) {
	content := map[string]any{"membership": "leave"}
	if reason != "" {
		content["reason"] = reason
	}
	p, ev, _, err := ps.memberThrough(ctx, MethodMakeLeave, user, roomID, server, content)
	if err != nil {
		return nil, err
	}
	if err := ps.request(ctx, p, MethodSendLeave, SendJoinReq{RoomID: roomID, Event: ev.JSON()}, &AckResp{}); err != nil {
		return nil, remoteRefusal(err, "the withdrawal", server)
	}
	return ev.JSON(), nil
}

// memberThrough asks a resident for a template of user's membership event
// (make_knock, make_leave) and builds and signs the event on it.
func (ps *Peers) memberThrough(ctx context.Context, method, user, roomID, server string, content map[string]any) (peer.ID, *rooms.Event, string, error) {
	p, err := peerOf(server)
	if err != nil {
		return "", nil, "", errs.Invalidf("%v", err)
	}
	var mk MakeJoinResp
	if err := ps.request(ctx, p, method, MakeJoinReq{RoomID: roomID, UserID: user}, &mk); err != nil {
		return "", nil, "", remoteRefusal(err, method, server)
	}
	if !rooms.KnownVersion(mk.RoomVersion) {
		return "", nil, "", errs.Unavailablef("room version %q is not supported", mk.RoomVersion)
	}
	t := mk.Event
	if t.RoomID != roomID || t.Sender != user || t.Type != "m.room.member" || t.StateKey == nil || *t.StateKey != user {
		return "", nil, "", errs.Unavailablef("%s returned a template for something else", method)
	}
	c, err := rooms.MarshalCanonical(content)
	if err != nil {
		return "", nil, "", err
	}
	ev, err := rooms.Build(rooms.ProtoEvent{
		RoomID: roomID, Sender: user, Type: "m.room.member", StateKey: &user, Content: c,
		PrevEvents: t.PrevEvents, AuthEvents: t.AuthEvents, Depth: t.Depth, OriginServerTS: nowMS(),
	}, mk.RoomVersion, ps.serverName, ps.key)
	if err != nil {
		return "", nil, "", fmt.Errorf("build %s: %w", method, err)
	}
	return p, ev, mk.RoomVersion, nil
}

// TellKnocker sends a member's refusal of a knock (a kick or ban of a
// knocking user on another server) to the knocker's node, which does not
// follow the room and would not hear of it otherwise. It runs in the
// background and gives up after one request: the knocker's node may be
// offline, and the refusal is in the room's state for when its user is
// let in or knocks again.
func (ps *Peers) TellKnocker(r *Room, ev *rooms.Event) {
	if ev.StateKey() == nil {
		return
	}
	server, err := rooms.ServerOf(*ev.StateKey())
	if err != nil || server == ps.serverName || ps.serverJoined(r, server) {
		return
	}
	p, err := peerOf(server)
	if err != nil {
		return
	}
	ps.goBackground(func(ctx context.Context) {
		var err error
		// Again a little later if refused: the knocker's node checks with
		// the resident it knocked through, which may not have the refusal
		// yet.
		for _, delay := range []time.Duration{0, 2 * time.Second, 10 * time.Second} {
			select {
			case <-ctx.Done():
				return
			case <-time.After(delay):
			}
			if err = ps.request(ctx, p, MethodKnockDenied, KnockDeniedReq{RoomVersion: r.Version, Event: ev.JSON()}, &AckResp{}); err == nil {
				return
			}
		}
		ps.log.Info("telling a knocker of the refusal", "room", r.ID, "server", shortServer(server), "err", err)
	})
}

// onKnockDenied takes a refusal of a local user's pending knock: a
// member's kick or ban of them, signed by its sender's server, which is
// the server that sends it. Any server can sign such an event, so the
// node checks with the resident the knock went through that the knock
// did end (knockEnded) before it closes the knock record; anything else
// (no such pending knock, an event about someone else, a knock the
// resident still shows) is refused, and changes nothing.
func (ps *Peers) onKnockDenied(ctx context.Context, server string, body []byte) (any, error) {
	var req KnockDeniedReq
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	ev, err := sentMemberEvent("refusal", req.Event, req.RoomVersion)
	if err != nil {
		return nil, err
	}
	target := ev.StateKey()
	if ev.Type() != "m.room.member" || target == nil || *target == ev.Sender() || (ev.Membership() != "leave" && ev.Membership() != "ban") {
		return nil, remoteErr("M_BAD_JSON", "not a kick or ban")
	}
	if s, _ := rooms.ServerOf(ev.Sender()); s != server {
		return nil, remoteErr("M_FORBIDDEN", "refusal sent by a server that does not own its sender")
	}
	if err := rooms.Verify(ev); err != nil {
		return nil, remoteErr("M_FORBIDDEN", "event: %v", err)
	}
	if _, ok := ps.LocalUser(*target); !ok {
		return nil, remoteErr("M_NOT_FOUND", "no pending knock")
	}
	pending := func(t *store.Txn) (*store.Knock, error) {
		k, err := t.Knock(*target, ev.RoomID())
		if err != nil || k.Left || k.Version != req.RoomVersion {
			return nil, remoteErr("M_NOT_FOUND", "no pending knock")
		}
		return k, nil
	}
	var via string
	err = ps.store.View(func(t *store.Txn) error {
		k, err := pending(t)
		if err == nil {
			via = k.Via
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if !ps.knockEnded(ctx, *target, ev.RoomID(), via) {
		return nil, remoteErr("M_FORBIDDEN", "the room's server still shows the knock")
	}
	err = ps.store.Update(func(t *store.Txn) error {
		k, err := pending(t)
		if err != nil {
			return err
		}
		k.Left, k.Event, k.State, k.Pos = true, ev.JSON(), nil, t.NextPos()
		return t.PutKnock(*target, k)
	})
	var re *p2p.RemoteError
	if errors.As(err, &re) {
		return nil, re
	}
	if err != nil {
		return nil, err
	}
	ps.log.Info("knock refused", "room", ev.RoomID(), "user", *target, "by", ev.Sender())
	if ps.cfg.OnInvite != nil {
		ps.cfg.OnInvite(*target) // wakes the user's /sync
	}
	return AckResp{}, nil
}

// knockEnded reports whether the resident a knock went through no longer
// shows user knocking: it refuses them a make_leave, which it grants only
// to a knocking user.
func (ps *Peers) knockEnded(ctx context.Context, user, roomID, via string) bool {
	p, err := peerOf(via)
	if err != nil {
		return false
	}
	err = ps.request(ctx, p, MethodMakeLeave, MakeJoinReq{RoomID: roomID, UserID: user}, &MakeJoinResp{})
	var re *p2p.RemoteError
	return errors.As(err, &re) && re.Code == "M_FORBIDDEN"
}
