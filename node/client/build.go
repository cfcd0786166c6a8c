package client

import (
	"context"
	"encoding/json"
	"slices"

	"github.com/parley-p2p/parley/errs"
	"github.com/parley-p2p/parley/node/dag"
	"github.com/parley-p2p/parley/node/links"
	"github.com/parley-p2p/parley/node/peers"
	"github.com/parley-p2p/parley/rooms"
	"github.com/parley-p2p/parley/webui"
)

// MaxInitialState bounds createRoom's initial_state. Clients send a
// handful of entries (encryption, guest access, a space's parent); a
// room that needs more can have them sent as state events afterwards.
const MaxInitialState = 100

// CreateRoom implements webui.Backend: the events of the spec's
// createRoom, in order, each checked and stored like any other.
func (api *API) CreateRoom(ctx context.Context, s *webui.Session, req *webui.CreateRoomRequest) (string, error) {
	if len(req.InitialState) > MaxInitialState {
		return "", errs.Invalidf("initial_state has %d entries; at most %d are allowed", len(req.InitialState), MaxInitialState)
	}
	alias, unlockAliases, err := api.reserveRoomAlias(s.UserID, req.RoomAliasName)
	if err != nil {
		return "", err
	}
	defer func() { unlockAliases() }()
	for _, st := range req.InitialState {
		if st.Type == "m.room.canonical_alias" && st.StateKey == "" {
			if err := api.checkCanonicalAlias("", st.Content, alias); err != nil {
				return "", err
			}
		}
	}
	version := req.RoomVersion
	if version == "" {
		version = rooms.DefaultVersion
	}
	preset := req.Preset
	if preset == "" {
		preset = "private_chat"
		if req.Visibility == "public" {
			preset = "public_chat"
		}
	}
	create := map[string]any{}
	if len(req.CreationContent) > 0 {
		if err := json.Unmarshal(req.CreationContent, &create); err != nil {
			return "", errs.Invalidf("creation_content: %v", err)
		}
	}
	create["room_version"] = version
	delete(create, "creator")
	if version == rooms.V10 {
		create["creator"] = s.UserID // v10's auth rules read it
	}
	var localInvites, remoteInvites []string
	for _, u := range req.Invite {
		if u == s.UserID || slices.Contains(localInvites, u) || slices.Contains(remoteInvites, u) {
			continue
		}
		if _, local := api.peers.LocalUser(u); local {
			localInvites = append(localInvites, u)
		} else {
			remoteInvites = append(remoteInvites, u)
		}
	}
	if preset == "trusted_private_chat" && version == rooms.V12 && len(req.Invite) > 0 {
		create["additional_creators"] = slices.DeleteFunc(slices.Clone(req.Invite), func(u string) bool { return u == s.UserID })
	}
	createContent, err := rooms.MarshalCanonical(create)
	if err != nil {
		return "", errs.Invalidf("creation_content: %v", err)
	}
	for _, u := range localInvites {
		local, _ := api.peers.LocalUser(u)
		if _, err := api.account(local); err != nil {
			return "", errs.NotFoundf("user %s does not exist", u)
		}
	}

	type step struct {
		typ, key string
		content  any
	}
	steps := []step{
		{"m.room.member", s.UserID, api.memberContent(s.UserID, "join")},
		{"m.room.power_levels", "", api.powerLevels(version, s.UserID, preset, req)},
	}
	if alias != "" {
		steps = append(steps, step{"m.room.canonical_alias", "", map[string]string{"alias": alias}})
	}
	joinRule, history := "invite", "shared"
	if preset == "public_chat" {
		joinRule = "public"
	}
	steps = append(steps,
		step{"m.room.join_rules", "", map[string]string{"join_rule": joinRule}},
		step{"m.room.history_visibility", "", map[string]string{"history_visibility": history}},
	)
	for _, st := range req.InitialState {
		steps = append(steps, step{st.Type, st.StateKey, st.Content})
	}
	if req.Name != "" {
		steps = append(steps, step{"m.room.name", "", map[string]string{"name": req.Name}})
	}
	if req.Topic != "" {
		// With the rich topic block of spec v1.15 (MSC3765) beside the
		// plain one, so both kinds of client read it.
		steps = append(steps, step{"m.room.topic", "", map[string]any{
			"topic":   req.Topic,
			"m.topic": map[string]any{"m.text": []map[string]string{{"mimetype": "text/plain", "body": req.Topic}}},
		}})
	}
	for _, u := range localInvites {
		invite := map[string]any{"membership": "invite"}
		if req.IsDirect {
			invite["is_direct"] = true
		}
		steps = append(steps, step{"m.room.member", u, invite})
	}
	var built []dag.Step
	for _, st := range steps {
		c, err := rooms.MarshalCanonical(st.content)
		if err != nil {
			return "", errs.Invalidf("%s content: %v", st.typ, err)
		}
		built = append(built, dag.Step{Type: st.typ, StateKey: st.key, Content: c})
	}
	dr, err := api.dag.CreateRoom(version, s.UserID, createContent, built)
	if err != nil {
		return "", err
	}
	r, err := api.peers.Activate(dr)
	if err != nil {
		return "", err
	}
	if alias != "" {
		if err := api.putAlias(alias, r.ID, s.UserID); err != nil {
			return "", err
		}
		unlockAliases()
		unlockAliases = func() {}
	}
	if req.Visibility == "public" {
		api.publishCreated(r)
	}
	for _, u := range remoteInvites {
		if err := api.peers.InviteDirect(ctx, s.UserID, r.ID, u, "", req.IsDirect); err != nil {
			api.log.Warn("createRoom invite failed", "room", r.ID, "user", u, "err", err)
			return r.ID, nil
		}
	}
	return r.ID, nil
}

func (api *API) powerLevels(version, creator, preset string, req *webui.CreateRoomRequest) map[string]any {
	users := map[string]any{}
	if version != rooms.V12 { // v12 creators need no entry (and may have none)
		users[creator] = 100
		if preset == "trusted_private_chat" {
			for _, u := range req.Invite {
				users[u] = 100
			}
		}
	}
	pl := map[string]any{
		"users":          users,
		"users_default":  0,
		"events_default": 0,
		"state_default":  50,
		"ban":            50,
		"kick":           50,
		"redact":         50,
		"invite":         0,
		"events": map[string]any{
			"m.room.name":               50,
			"m.room.power_levels":       100,
			"m.room.history_visibility": 100,
			"m.room.canonical_alias":    50,
			"m.room.avatar":             50,
			"m.room.tombstone":          100,
			"m.room.server_acl":         100,
			"m.room.encryption":         100,
			// Links are invites: whoever may invite may make, use up and
			// revoke them.
			links.EventType: 0,
		},
	}
	if preset == "public_chat" {
		pl["invite"] = 50
		pl["events"].(map[string]any)[links.EventType] = 50
	}
	if len(req.PowerLevelContentOverride) > 0 {
		var over map[string]any
		if json.Unmarshal(req.PowerLevelContentOverride, &over) == nil {
			for k, v := range over {
				pl[k] = v
			}
		}
	}
	return pl
}

// memberContent is a member event's content with the user's profile.
func (api *API) memberContent(user, membership string) map[string]any {
	c := map[string]any{"membership": membership}
	if _, local := api.peers.LocalUser(user); local && membership == "join" {
		if p, err := api.Profile(user); err == nil {
			for k, v := range p {
				c[k] = v
			}
		}
	}
	return c
}

// profileContent is the join content that carries a change of the
// user's profile field into room r: their profile, but for the other
// field, which keeps what their join in r has, so that a display name
// (or avatar) set for that room alone survives a change of the other.
func (api *API) profileContent(r *peers.Room, user, field string) map[string]any {
	c := api.memberContent(user, "join")
	other := "avatar_url"
	if field == "avatar_url" {
		other = "displayname"
	}
	id, ok := r.State()[rooms.StateKey{Type: "m.room.member", StateKey: user}]
	if !ok {
		return c
	}
	i, err := api.dag.Event(id)
	if err != nil {
		return c
	}
	e := api.shownInfo(i)
	var cur map[string]json.RawMessage
	if e.status != "" || json.Unmarshal(e.Content, &cur) != nil {
		return c // not readable here: the profile as it is
	}
	delete(c, other)
	if v, ok := cur[other]; ok {
		c[other] = v
	}
	return c
}
