package peers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/parley-p2p/parley/node/dag"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/p2p"
	"github.com/parley-p2p/parley/rooms"
)

func remoteErr(code, format string, args ...any) *p2p.RemoteError {
	return &p2p.RemoteError{Code: code, Message: fmt.Sprintf(format, args...)}
}

// handleRequest serves the node-to-node protocol. Every peer is untrusted:
// bodies are decoded strictly, IDs checked, and a peer may only read rooms
// its server is in. Room methods come sealed (envelope.go), but for
// make_join and send_join, which may come plain from a server joining a
// public room by its ID.
func (ps *Peers) handleRequest(ctx context.Context, from peer.ID, method string, body []byte) ([]byte, error) {
	if method == MethodRoom {
		return ps.handleSealed(ctx, from, body)
	}
	if sealedMethods[method] && method != MethodMakeJoin && method != MethodSendJoin {
		return nil, remoteErr("M_FORBIDDEN", "room requests must be sealed")
	}
	return ps.inner(ctx, from, method, body)
}

// handleSealed opens a sealed room request, serves it and seals the
// answer. What it says when it refuses never names the room.
func (ps *Peers) handleSealed(ctx context.Context, from peer.ID, body []byte) ([]byte, error) {
	rs, method, inner, err := openRequest(ps.secretByKid, from, ps.host.ID(), body)
	if err != nil {
		return nil, remoteErr("M_FORBIDDEN", "%v", err)
	}
	var probe struct {
		RoomID string `json:"room_id"`
	}
	if json.Unmarshal(inner, &probe) != nil || probe.RoomID != rs.roomID {
		return nil, remoteErr("M_FORBIDDEN", "sealed request for another room")
	}
	out, err := ps.inner(ctx, from, method, inner)
	if err != nil {
		var re *p2p.RemoteError
		if errors.As(err, &re) {
			return nil, &p2p.RemoteError{Code: re.Code, Message: strings.ReplaceAll(re.Message, rs.roomID, "the room")}
		}
		return nil, remoteErr("M_UNKNOWN", "request failed")
	}
	return sealAnswer(rs, from, ps.host.ID(), body, out), nil
}

// serve answers one opened request (the inner handler, which tests may
// wrap: Config.WrapHandler).
func (ps *Peers) serve(ctx context.Context, from peer.ID, method string, body []byte) ([]byte, error) {
	server, err := p2p.ServerNameFromPeerID(from)
	if err != nil {
		return nil, remoteErr("M_FORBIDDEN", "peer has no ed25519 identity")
	}
	var resp any
	switch method {
	case MethodKeys:
		resp, err = ps.onKeys()
	case MethodInvite:
		resp, err = ps.onInvite(server, body)
	case MethodMakeJoin:
		resp, err = ps.onMakeJoin(server, body)
	case MethodSendJoin:
		resp, err = ps.onSendJoin(ctx, from, server, body)
	case MethodMakeKnock:
		resp, err = ps.onMakeKnock(server, body)
	case MethodSendKnock:
		resp, err = ps.onSendKnock(ctx, from, server, body)
	case MethodMakeLeave:
		resp, err = ps.onMakeLeave(server, body)
	case MethodSendLeave:
		resp, err = ps.onSendLeave(ctx, from, server, body)
	case MethodKnockDenied:
		resp, err = ps.onKnockDenied(ctx, server, body)
	case MethodGetEvent:
		resp, err = ps.onGetEvents(server, body)
	case MethodAuthChain:
		resp, err = ps.onAuthChain(server, body)
	case MethodMissingEvents:
		resp, err = ps.onMissingEvents(server, body)
	case MethodStateAfter:
		resp, err = ps.onStateAfter(server, body)
	case MethodExtremities:
		resp, err = ps.onExtremities(server, body)
	case MethodBackfill:
		resp, err = ps.onBackfill(server, body)
	case MethodLinkInvite:
		resp, err = ps.onLinkInvite(ctx, server, body)
	case MethodRoomSecret:
		resp, err = ps.onRoomSecret(ctx, server, body)
	case MethodUserKeys:
		resp, err = ps.onUserKeys(server, body)
	case MethodClaimKeys:
		resp, err = ps.onClaimKeys(server, body)
	case MethodToDevice:
		resp, err = ps.onToDevice(server, body)
	case MethodDeviceList:
		resp, err = ps.onDeviceList(server, body)
	case MethodEphemeral:
		resp, err = ps.onEphemeral(server, body)
	case MethodPublicRooms:
		resp, err = ps.onPublicRooms(body)
	case MethodResolveAlias:
		resp, err = ps.onResolveAlias(server, body)
	case MethodMediaMeta:
		resp, err = ps.onMediaMeta(from, server, body)
	case MethodMediaChunk:
		resp, err = ps.onMediaChunk(from, server, body)
	default:
		return nil, remoteErr("M_UNRECOGNIZED", "unknown method %q", method)
	}
	if err != nil {
		var re *p2p.RemoteError
		if !errors.As(err, &re) {
			ps.log.Warn("request failed", "method", method, "peer", server[:8], "err", err)
		}
		return nil, err
	}
	if raw, ok := resp.(rawAnswer); ok {
		return raw, nil
	}
	return json.Marshal(resp)
}

func decode(body []byte, v any) error {
	if err := json.Unmarshal(body, v); err != nil {
		return remoteErr("M_BAD_JSON", "%v", err)
	}
	return nil
}

// roomFor returns the room if the requesting server has, or had, users in
// it. What it may read of the room is then decided event by event
// (visibleTo).
func (ps *Peers) roomFor(server, roomID string) (*Room, error) {
	r := ps.Room(roomID)
	if r == nil {
		return nil, remoteErr("M_NOT_FOUND", "room %s is not on this node", roomID)
	}
	state := r.State()
	for k := range state {
		if k.Type == "m.room.member" {
			if s, err := rooms.ServerOf(k.StateKey); err == nil && s == server {
				return r, nil
			}
		}
	}
	return nil, remoteErr("M_FORBIDDEN", "server is not in room %s", roomID)
}

// serverInRoom reports whether any user of server is joined or invited.
func (ps *Peers) serverInRoom(state store.StateMap, server string) bool {
	return ps.serverHas(state, server, dag.Speaks)
}

// serverHas reports whether one of a server's users has a membership in
// a state that ok accepts.
func (ps *Peers) serverHas(state store.StateMap, server string, ok func(membership string) bool) bool {
	for s, id := range dag.MemberEvents(state) {
		if s != server {
			continue
		}
		if m, found := ps.dag.MembershipOf(id); found && ok(m) {
			return true
		}
	}
	return false
}

// visibleTo reports whether a server may read an event: a membership
// event about one of its users (a banned server still learns of its ban);
// an event at which one of its users was joined, or invited unless the
// room's history visibility then was "joined"; or, when the
// room's history visibility then was "shared" (the default) or
// "world_readable", any event while the server has a user joined now.
// Events without known state (auth chains, backfilled history) go to
// servers with a user joined now.
func (ps *Peers) visibleTo(i *dag.Info, server string, joinedNow bool) bool {
	if i.Event.Type() == "m.room.member" && i.Event.StateKey() != nil {
		if s, err := rooms.ServerOf(*i.Event.StateKey()); err == nil && s == server {
			return true
		}
	}
	snap := i.Rec.StateBefore
	if snap == "" {
		snap = i.Rec.StateAfter
	}
	if snap == "" {
		return joinedNow
	}
	key := fmt.Sprintf("%s\x00%s\x00%v", snap, server, joinedNow)
	if v, ok := ps.visible.Get(key); ok {
		return v
	}
	v := false
	if state, err := ps.dag.Snapshot(snap); err == nil {
		hv := ps.historyVisibility(state)
		switch {
		case hv == "joined":
			// An invited server reads nothing until it joins.
			v = ps.serverHas(state, server, func(m string) bool { return m == "join" })
		case ps.serverHas(state, server, func(m string) bool { return m == "join" || m == "invite" }):
			// Joined or invited; a knock alone shows nothing (it cannot
			// reach here today: room requests are sealed with the room's
			// secret, which a knocking server lacks).
			v = true
		case hv == "world_readable":
			v = true
		case hv == "shared":
			v = joinedNow
		}
	}
	ps.visible.Put(key, v)
	return v
}

// historyVisibility reads m.room.history_visibility from a state; the
// spec's default is "shared".
func (ps *Peers) historyVisibility(state store.StateMap) string {
	return ps.stateString(state, "m.room.history_visibility", "history_visibility", "shared")
}

// stateString reads one string field of the content of a state event with
// an empty state key, or def where the event, the field or the string is
// missing.
func (ps *Peers) stateString(state store.StateMap, evType, field, def string) string {
	id, ok := state[rooms.StateKey{Type: evType}]
	if !ok {
		return def
	}
	i, err := ps.dag.Event(id)
	if err != nil {
		return def
	}
	var c map[string]json.RawMessage
	var v string
	if json.Unmarshal(i.Event.Content(), &c) != nil || json.Unmarshal(c[field], &v) != nil || v == "" {
		return def
	}
	return v
}

// serverJoined reports whether the server has a user joined in the
// room's current state.
func (ps *Peers) serverJoined(r *Room, server string) bool {
	for s, id := range dag.MemberEvents(r.State()) {
		if s != server {
			continue
		}
		if m, ok := ps.dag.MembershipOf(id); ok && m == "join" {
			return true
		}
	}
	return false
}

// MembershipsOf lists the current membership events of the server's
// users in the room.
func (ps *Peers) MembershipsOf(r *Room, server string) []string {
	var out []string
	for s, id := range dag.MemberEvents(r.State()) {
		if s == server {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

func (ps *Peers) PDU(id string) (json.RawMessage, error) {
	var raw json.RawMessage
	err := ps.store.View(func(t *store.Txn) error {
		rec, err := t.Event(id)
		if err != nil {
			return err
		}
		raw = rec.PDU
		return nil
	})
	return raw, err
}

// sentMemberEvent reads a member event a peer sent outside the room's
// DAG (an invite, a knock's refusal): bounded, of a room version this
// node runs, well formed and signed by its sender's server.
func sentMemberEvent(what string, raw json.RawMessage, version string) (*rooms.Event, error) {
	if len(raw) > MaxInviteEventBytes {
		return nil, remoteErr("M_TOO_LARGE", "%s over %d bytes", what, MaxInviteEventBytes)
	}
	if !rooms.KnownVersion(version) {
		return nil, remoteErr("M_INCOMPATIBLE_ROOM_VERSION", "room version %q", version)
	}
	ev, err := rooms.ParseEvent(raw, version)
	if err != nil {
		return nil, remoteErr("M_BAD_JSON", "%s: %v", what, err)
	}
	if err := rooms.Verify(ev); err != nil {
		return nil, remoteErr("M_FORBIDDEN", "%s: %v", what, err)
	}
	return ev, nil
}

func (ps *Peers) onInvite(server string, body []byte) (any, error) {
	payload, err := ps.openInvite(server, body)
	if err != nil {
		return nil, err
	}
	req := payload.InviteReq
	ev, err := sentMemberEvent("invite event", req.Event, req.RoomVersion)
	if err != nil {
		return nil, err
	}
	if s, _ := rooms.ServerOf(ev.Sender()); s != server {
		return nil, remoteErr("M_FORBIDDEN", "invite sent by a server that does not own its sender")
	}
	target := ev.StateKey()
	if ev.Type() != "m.room.member" || ev.Membership() != "invite" || target == nil {
		return nil, remoteErr("M_BAD_JSON", "not an invite")
	}
	local, ok := ps.LocalUser(*target)
	if !ok {
		return nil, remoteErr("M_NOT_FOUND", "user %s is not on this node", *target)
	}
	if !ps.userExists(local) {
		return nil, remoteErr("M_NOT_FOUND", "user %s does not exist", *target)
	}
	if ps.serverBlocked(server) {
		return nil, remoteErr("M_FORBIDDEN", "this node does not take invites from your server")
	}
	state, err := keepInviteState(req.InviteState, ev.Sender())
	if err != nil {
		return nil, err
	}
	// Refuse in a read first, so a flood of refused invites never reaches
	// the writer; the write checks again, as invites may race.
	if err := ps.store.View(func(t *store.Txn) error { return admitInvite(t, *target, server, ev.RoomID()) }); err != nil {
		ps.log.Debug("invite refused", "room", ev.RoomID(), "user", *target, "from", ev.Sender(), "err", err)
		return nil, err
	}
	signed, err := rooms.Sign(ev, ps.serverName, ps.key)
	if err != nil {
		return nil, err
	}
	err = ps.store.Update(func(t *store.Txn) error {
		if err := admitInvite(t, *target, server, ev.RoomID()); err != nil {
			return err
		}
		return t.PutInvite(*target, &store.Invite{
			RoomID: ev.RoomID(), Version: req.RoomVersion, Pos: t.NextPos(),
			Event: signed.JSON(), State: state, Via: server,
		})
	})
	if err != nil {
		ps.log.Debug("invite refused", "room", ev.RoomID(), "user", *target, "from", ev.Sender(), "err", err)
		return nil, err
	}
	// Kept so the node can take part in the room's gossip once joined.
	// One kept already stays: an invite only proposes a secret, and
	// anyone can send one for a room whose ID they know.
	if sec, err := payload.Secret.parse(ev.RoomID()); err != nil {
		ps.log.Debug("invite without a usable room secret", "room", ev.RoomID(), "err", err)
	} else if err := ps.keepSecret(sec); err != nil && !errors.Is(err, store.ErrSecretConflict) {
		ps.log.Warn("keeping the room secret of an invite", "room", ev.RoomID(), "err", err)
	}
	ps.log.Info("invite received", "room", ev.RoomID(), "user", *target, "from", ev.Sender())
	if ps.cfg.OnInvite != nil {
		ps.cfg.OnInvite(*target)
	}
	return EventResp{Event: signed.JSON()}, nil
}

// onMakeJoin answers make_join: a template tells its reader the room's
// version, depth and latest events, so only a user who could join gets
// one (joinable).
func (ps *Peers) onMakeJoin(server string, body []byte) (any, error) {
	return ps.onMakeMember(server, body, "join", ps.mayJoin)
}

func (ps *Peers) onSendJoin(ctx context.Context, from peer.ID, server string, body []byte) (any, error) {
	var req SendJoinReq
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	r, err := ps.joinable(req.RoomID, senderOf(req.Event), ps.mayJoin)
	if err != nil {
		return nil, err
	}
	ev, err := rooms.ParseEvent(req.Event, r.Version)
	if err != nil {
		return nil, remoteErr("M_BAD_JSON", "join event: %v", err)
	}
	if ev.RoomID() != r.ID || ev.Type() != "m.room.member" || ev.Membership() != "join" || ev.StateKey() == nil || *ev.StateKey() != ev.Sender() {
		return nil, remoteErr("M_BAD_JSON", "not a join event for this room")
	}
	if s, _ := rooms.ServerOf(ev.Sender()); s != server {
		return nil, remoteErr("M_FORBIDDEN", "a server may only join its own users")
	}
	if err := rooms.Verify(ev); err != nil {
		return nil, remoteErr("M_FORBIDDEN", "join event: %v", err)
	}
	out, err := ps.ingestRemote(ctx, r, ev, from, false)
	if err != nil {
		return nil, err
	}
	if out.Rejected != nil {
		return nil, remoteErr("M_FORBIDDEN", "join %s", out.Rejected.Error())
	}
	if err := <-out.Committed; err != nil {
		return nil, err
	}
	ps.publish(r.Room, ev)
	// The state before the join, so the joiner can start from it.
	stateID := out.Info.Rec.StateBefore
	if stateID == "" {
		stateID = out.Info.Rec.StateAfter
	}
	before, err := ps.dag.Snapshot(stateID)
	if err != nil {
		return nil, err
	}
	resp, err := ps.stateResponse(r, before)
	if err != nil {
		return nil, err
	}
	for _, p := range ev.PrevEvents() {
		if raw, err := ps.PDU(p); err == nil {
			resp.Events = append(resp.Events, raw)
		}
	}
	ps.goBackground(func(ctx context.Context) { ps.connectRoomPeers(ctx, r) })
	return JoinedResp{StateResp: *resp, Secret: ps.sealForJoiner(r, ev)}, nil
}

// stateResponse packs a state map with the auth chains of its events.
func (ps *Peers) stateResponse(r *Room, state store.StateMap) (*StateResp, error) {
	resp := &StateResp{}
	ids := make([]string, 0, len(state))
	for _, id := range state {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		raw, err := ps.PDU(id)
		if err != nil {
			return nil, fmt.Errorf("state event %s: %w", id, err)
		}
		resp.State = append(resp.State, raw)
	}
	chain, err := ps.authChain(r, ids)
	if err != nil {
		return nil, err
	}
	for _, id := range chain {
		if _, inState := slicesIndex(ids, id); inState {
			continue
		}
		raw, err := ps.PDU(id)
		if err != nil {
			return nil, fmt.Errorf("auth event %s: %w", id, err)
		}
		resp.AuthChain = append(resp.AuthChain, raw)
	}
	return resp, nil
}

func slicesIndex(s []string, v string) (int, bool) {
	i := slices.Index(s, v)
	return i, i >= 0
}

// authChain lists the auth ancestors of the events (not the events
// themselves unless they are ancestors of each other).
func (ps *Peers) authChain(r *Room, ids []string) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	stack := slices.Clone(ids)
	for _, id := range ids {
		seen[id] = true
	}
	if cid := dag.CreateEventID(r.Room); cid != "" && !seen[cid] {
		seen[cid] = true
		out = append(out, cid)
	}
	for len(stack) > 0 {
		id := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		i, err := ps.dag.Event(id)
		if err != nil {
			return nil, fmt.Errorf("auth chain: %s: %w", id, err)
		}
		for _, a := range i.Event.AuthEvents() {
			if !seen[a] {
				seen[a] = true
				out = append(out, a)
				stack = append(stack, a)
			}
		}
	}
	return out, nil
}

// idsRequest decodes a request naming a room and some of its events, and
// checks that the requesting server may ask about the room.
func (ps *Peers) idsRequest(server string, body []byte) (*IDsReq, *Room, error) {
	var req IDsReq
	if err := decode(body, &req); err != nil {
		return nil, nil, err
	}
	if len(req.EventIDs) > MaxIDsPerReq {
		return nil, nil, remoteErr("M_LIMIT_EXCEEDED", "at most %d events per request", MaxIDsPerReq)
	}
	r, err := ps.roomFor(server, req.RoomID)
	if err != nil {
		return nil, nil, err
	}
	return &req, r, nil
}

func (ps *Peers) onGetEvents(server string, body []byte) (any, error) {
	req, r, err := ps.idsRequest(server, body)
	if err != nil {
		return nil, err
	}
	resp := PDUsResp{}
	joined := ps.serverJoined(r, server)
	for _, id := range req.EventIDs {
		i, err := ps.dag.Event(id)
		if err != nil || i.Event.RoomID() != r.ID || !ps.visibleTo(i, server, joined) {
			continue
		}
		if raw, err := ps.PDU(id); err == nil {
			resp.PDUs = append(resp.PDUs, raw)
		}
	}
	return resp, nil
}

func (ps *Peers) onAuthChain(server string, body []byte) (any, error) {
	req, r, err := ps.idsRequest(server, body)
	if err != nil {
		return nil, err
	}
	var have []string
	joined := ps.serverJoined(r, server)
	for _, id := range req.EventIDs {
		if i, err := ps.dag.Event(id); err == nil && i.Event.RoomID() == r.ID && ps.visibleTo(i, server, joined) {
			have = append(have, id)
		}
	}
	chain, err := ps.authChain(r, have)
	if err != nil {
		return nil, err
	}
	resp := PDUsResp{}
	for _, id := range append(chain, have...) {
		if raw, err := ps.PDU(id); err == nil {
			resp.PDUs = append(resp.PDUs, raw)
		}
	}
	return resp, nil
}

// onMissingEvents walks back from latest along prev_events, not past
// earliest, and returns up to limit events (latest included), oldest
// first.
func (ps *Peers) onMissingEvents(server string, body []byte) (any, error) {
	var req MissingReq
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	if len(req.Earliest) > MaxIDsPerReq || len(req.Latest) > MaxIDsPerReq {
		return nil, remoteErr("M_LIMIT_EXCEEDED", "at most %d IDs per list", MaxIDsPerReq)
	}
	limit := min(max(req.Limit, 1), MaxMissingLimit)
	r, err := ps.roomFor(server, req.RoomID)
	if err != nil {
		return nil, err
	}
	stop := map[string]bool{}
	for _, id := range req.Earliest {
		stop[id] = true
	}
	var found []*rooms.Event
	joined := ps.serverJoined(r, server)
	queue := slices.Clone(req.Latest)
	for len(queue) > 0 && len(found) < limit {
		id := queue[0]
		queue = queue[1:]
		if stop[id] {
			continue
		}
		stop[id] = true
		i, err := ps.dag.Event(id)
		if err != nil || i.Event.RoomID() != r.ID || !i.Usable() || i.Rec.Outlier {
			continue
		}
		queue = append(queue, i.Event.PrevEvents()...)
		if ps.visibleTo(i, server, joined) {
			found = append(found, i.Event)
		}
	}
	sort.SliceStable(found, func(a, b int) bool { return found[a].Depth() < found[b].Depth() })
	resp := PDUsResp{}
	for _, ev := range found {
		resp.PDUs = append(resp.PDUs, ev.JSON())
	}
	return resp, nil
}

func (ps *Peers) onStateAfter(server string, body []byte) (any, error) {
	req, r, err := ps.idsRequest(server, body)
	if err != nil {
		return nil, err
	}
	if len(req.EventIDs) != 1 {
		return nil, remoteErr("M_INVALID_PARAM", "state_after takes one event")
	}
	i, err := ps.dag.Event(req.EventIDs[0])
	if err != nil || i.Event.RoomID() != r.ID || !i.HasState() || !ps.visibleTo(i, server, ps.serverJoined(r, server)) {
		return nil, remoteErr("M_NOT_FOUND", "no state known after %s", req.EventIDs[0])
	}
	state, err := ps.dag.Snapshot(i.Rec.StateAfter)
	if err != nil {
		return nil, err
	}
	resp, err := ps.stateResponse(r, state)
	if err != nil {
		return nil, err
	}
	resp.Events = []json.RawMessage{i.Event.JSON()}
	return resp, nil
}

// onExtremities tells the room's current head to servers with a user
// joined now. A server that left or was banned learns only the latest
// membership events of its own users (how it learns of a ban it missed),
// not the room's head.
func (ps *Peers) onExtremities(server string, body []byte) (any, error) {
	_, r, err := ps.idsRequest(server, body)
	if err != nil {
		return nil, err
	}
	if !ps.serverJoined(r, server) {
		ids := ps.MembershipsOf(r, server)
		if len(ids) == 0 {
			return nil, remoteErr("M_FORBIDDEN", "server has no user in %s", r.ID)
		}
		return IDsReq{RoomID: r.ID, EventIDs: ids}, nil // no epoch: the server is no member
	}
	ext := slices.Clone(r.Head().Ext)
	resp := ExtremitiesResp{IDsReq: IDsReq{RoomID: r.ID, EventIDs: ext}}
	if rs, ok := ps.currentSecret(r.ID); ok {
		resp.Epoch = rs.epoch
	}
	return resp, nil
}

// request sends one request to a server's node and decodes the answer. A
// room method goes sealed under the room's secret when this node holds it
// (make_join and send_join go plain when it does not).
func (ps *Peers) request(ctx context.Context, p peer.ID, method string, req, resp any) error {
	if sealedMethods[method] {
		if rr, ok := req.(roomRequest); ok {
			var err error
			for _, rs := range ps.secretsToTry(rr.room()) {
				err = ps.requestSealed(ctx, p, rs, method, req, resp)
				var re *p2p.RemoteError
				if !errors.As(err, &re) || re.Message != errSealedRequest.Error() {
					return err
				}
				// The responder does not hold this epoch yet (it missed a
				// rotation): try the one before.
			}
			if method != MethodMakeJoin && method != MethodSendJoin {
				if err == nil {
					err = fmt.Errorf("%s to %s: this node does not hold the room's secret", method, shortPeer(p))
				}
				return err
			}
			// The secret an invite brought is not the room's (anyone can
			// send an invite): join plain, and the send_join answer brings
			// the room's.
		}
	}
	body, ok := req.(rawBody)
	if !ok {
		var err error
		if body, err = json.Marshal(req); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, ps.cfg.RequestTimeout)
	defer cancel()
	out, err := ps.host.Request(ctx, p, method, body)
	if err != nil {
		return fmt.Errorf("%s to %s: %w", method, shortPeer(p), err)
	}
	if err := json.Unmarshal(out, resp); err != nil {
		return fmt.Errorf("%s to %s: bad response: %w", method, shortPeer(p), err)
	}
	return nil
}

// rawBody is a request body sent as it is, not as JSON.
type rawBody []byte

// requestSealed sends a room request sealed under a room secret.
func (ps *Peers) requestSealed(ctx context.Context, p peer.ID, rs *roomSecret, method string, req, resp any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	sealed, err := sealRequest(rs, ps.host.ID(), p, method, body)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, ps.cfg.RequestTimeout)
	defer cancel()
	out, err := ps.host.Request(ctx, p, MethodRoom, sealed)
	if err != nil {
		return fmt.Errorf("%s to %s: %w", method, shortPeer(p), err)
	}
	plain, err := openAnswer(rs, ps.host.ID(), p, sealed, out)
	if err != nil {
		return fmt.Errorf("%s to %s: %w", method, shortPeer(p), err)
	}
	if err := json.Unmarshal(plain, resp); err != nil {
		return fmt.Errorf("%s to %s: bad response: %w", method, shortPeer(p), err)
	}
	return nil
}

// Request sends one request to a node as this node's own requests go:
// room methods sealed under the room's secret. For tests and tools.
func (ps *Peers) Request(ctx context.Context, p peer.ID, method string, req, resp any) error {
	return ps.request(ctx, p, method, req, resp)
}

func shortPeer(p peer.ID) string {
	s := p.String()
	if len(s) > 12 {
		return s[len(s)-8:]
	}
	return s
}

func peerOf(server string) (peer.ID, error) {
	p, err := p2p.PeerIDFromServerName(server)
	if err != nil {
		return "", fmt.Errorf("server name %q: %w", server, err)
	}
	return p, nil
}

// ValidServerName reports whether s names a parley server: the hex of an
// ed25519 public key, which is also its node's peer ID.
func ValidServerName(s string) bool {
	_, err := peerOf(s)
	return err == nil
}
