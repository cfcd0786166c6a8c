package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"

	"github.com/parley-p2p/parley/errs"
	"github.com/parley-p2p/parley/node/dag"
	"github.com/parley-p2p/parley/node/peers"
	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/rooms"
	"github.com/parley-p2p/parley/webui"
)

// Room upgrades (client-server spec, "Room Upgrades", server behaviour):
// a new room of the requested version whose create event names the old
// one as predecessor, the old room's transferable state and bans copied
// into it, this node's aliases moved to it, and a tombstone in the old
// room, whose power levels then stop ordinary members from talking or
// inviting. Joined members are invited to the new room (the spec leaves
// that to clients; parley's issue asks for it).
const (
	// MaxUpgradeBans bounds the bans copied: each is an event of the new
	// room, all written in the one transaction that creates it.
	MaxUpgradeBans = 500
	// MaxUpgradeInvites bounds the members invited; each invite of a
	// user of another node is a request to that node.
	MaxUpgradeInvites = 500
)

// upgradeTransferred is the state copied into the new room: the spec's
// recommended list but power levels (rebuilt, see upgradePowerLevels),
// and the canonical alias, whose local aliases move with it.
var upgradeTransferred = []string{
	"m.room.server_acl", "m.room.encryption", "m.room.name", "m.room.avatar", "m.room.topic",
	"m.room.guest_access", "m.room.history_visibility", "m.room.join_rules", "m.room.canonical_alias",
}

// UpgradeRoom implements webui.Upgrader.
func (api *API) UpgradeRoom(ctx context.Context, s *webui.Session, roomID, newVersion string, additional []string) (string, error) {
	if !rooms.KnownVersion(newVersion) {
		return "", webui.Errorf(http.StatusBadRequest, "M_UNSUPPORTED_ROOM_VERSION", "room version %q is not supported", newVersion)
	}
	r := api.peers.Room(roomID)
	if r == nil {
		return "", errs.NotFoundf("room %s is unknown here", roomID)
	}
	if api.peers.Membership(r, s.UserID) != "join" {
		return "", errs.Forbiddenf("you are not joined to room %s", roomID)
	}
	api.upgradeMu.Lock()
	defer api.upgradeMu.Unlock()
	state := dag.WithCreate(r.Room, r.State())
	pl, err := rooms.PowerLevelsFrom(api.dag.StateFunc(state))
	if err != nil {
		return "", err
	}
	if have, need := pl.UserLevel(s.UserID), pl.EventLevel("m.room.tombstone", true); have < need {
		return "", errs.Forbiddenf("upgrading needs the power to send m.room.tombstone (%d); you have %d", need, have)
	}
	// Upgraded already (a client's retry, or a second request racing the
	// first): the answer is the room that replaced it, not another one.
	if c, err := api.plainState(state, "m.room.tombstone"); err == nil && c != nil {
		var tomb struct {
			Replacement string `json:"replacement_room"`
		}
		if json.Unmarshal(c, &tomb) == nil && tomb.Replacement != "" {
			return tomb.Replacement, nil
		}
	}
	if newVersion == rooms.V12 {
		additional = slices.DeleteFunc(slices.Compact(slices.Sorted(slices.Values(additional))), func(u string) bool { return u == s.UserID })
	} else {
		additional = nil // only version 12 has additional creators
	}

	plan, err := api.upgradePlan(r, state, pl, s.UserID, newVersion, additional)
	if err != nil {
		return "", err
	}
	dr, err := api.dag.CreateRoom(newVersion, s.UserID, plan.create, plan.steps)
	if err != nil {
		return "", fmt.Errorf("upgrade %s: create the new room: %w", roomID, err)
	}
	nr, err := api.peers.Activate(dr)
	if err != nil {
		return "", fmt.Errorf("upgrade %s: %w", roomID, err)
	}
	newID := nr.ID
	if err := api.moveAliases(roomID, newID); err != nil {
		api.log.Warn("upgrade: moving the aliases failed", "room", roomID, "to", newID, "err", err)
	}
	empty := ""
	tomb, _ := rooms.MarshalCanonical(map[string]string{"body": "This room has been replaced", "replacement_room": newID})
	if _, err := api.Send(ctx, s, roomID, "m.room.tombstone", &empty, tomb, ""); err != nil {
		return "", fmt.Errorf("upgrade %s: tombstone: %w", roomID, err)
	}
	if plan.oldAlias {
		// The alias moved: the old room no longer names it.
		if _, err := api.Send(ctx, s, roomID, "m.room.canonical_alias", &empty, json.RawMessage(`{}`), ""); err != nil {
			api.log.Info("upgrade: the old room's canonical alias stays", "room", roomID, "err", err)
		}
	}
	if plan.silence != nil {
		if _, err := api.Send(ctx, s, roomID, "m.room.power_levels", &empty, plan.silence, ""); err != nil {
			api.log.Info("upgrade: the old room's power levels stay as they were", "room", roomID, "err", err)
		}
	}
	for _, u := range plan.invite {
		if err := api.peers.Invite(ctx, s.UserID, newID, u, ""); err != nil {
			api.log.Warn("upgrade: invite failed", "room", newID, "user", u, "err", err)
		}
	}
	if plan.restore != nil {
		if _, err := api.Send(ctx, s, newID, "m.room.power_levels", &empty, plan.restore, ""); err != nil {
			api.log.Warn("upgrade: restoring the power levels failed", "room", newID, "err", err)
		}
	}
	return newID, nil
}

// upgrade is what an upgrade does, worked out before anything is written.
type upgrade struct {
	create json.RawMessage // the new room's create content
	steps  []dag.Step      // the new room's events after the create event
	// restore is the new room's final power levels, if the steps raised
	// the upgrading user above them; nil otherwise.
	restore json.RawMessage
	// silence is the old room's power levels with events_default and
	// invite raised; nil if nothing changes.
	silence json.RawMessage
	// oldAlias: the old room has a canonical alias to clear.
	oldAlias bool
	invite   []string // joined members to invite, the upgrader aside
}

func (api *API) upgradePlan(r *peers.Room, state store.StateMap, pl *rooms.PowerLevels, user, version string, additional []string) (*upgrade, error) {
	up := &upgrade{}
	createEv, err := api.dag.Event(state[rooms.StateKey{Type: "m.room.create"}])
	if err != nil {
		return nil, fmt.Errorf("upgrade %s: create event: %w", r.ID, err)
	}
	var old struct {
		Type     any   `json:"type"`
		Federate *bool `json:"m.federate"`
	}
	json.Unmarshal(createEv.Event.Content(), &old) // checked on admission: an object
	predecessor := map[string]string{"room_id": r.ID}
	if version != rooms.V12 {
		// Optional from version 12 on (spec v1.16); before it, the last
		// event this node knows in the old room.
		if ext := r.Head().Ext; len(ext) > 0 {
			predecessor["event_id"] = ext[0]
		}
	}
	create := map[string]any{"room_version": version, "predecessor": predecessor}
	if t, ok := old.Type.(string); ok {
		create["type"] = t
	}
	if old.Federate != nil && !*old.Federate {
		create["m.federate"] = false
	}
	if version == rooms.V10 {
		create["creator"] = user
	}
	if len(additional) > 0 {
		create["additional_creators"] = additional
	}
	if up.create, err = rooms.MarshalCanonical(create); err != nil {
		return nil, err
	}

	plContent, err := api.plainState(state, "m.room.power_levels")
	if err != nil {
		return nil, err
	}
	first, final, err := upgradePowerLevels(plContent, pl.UserLevel(user), user, version, additional)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(first, final) {
		up.restore = final
	}
	up.steps = []dag.Step{
		api.step("m.room.member", user, api.memberContent(user, "join")),
		{Type: "m.room.power_levels", Content: first},
	}
	for _, typ := range upgradeTransferred {
		c, err := api.plainState(state, typ)
		if err != nil || c == nil {
			continue // absent, or not readable here: not copied
		}
		if typ == "m.room.canonical_alias" {
			up.oldAlias = string(c) != "{}"
		}
		up.steps = append(up.steps, dag.Step{Type: typ, Content: c})
	}

	// Bans carry over; members are invited. A ban the upgrader could not
	// make (a user at or above their level in the new room) is left out.
	firstLevels := levelsOf(first)
	own := firstLevels.user(user)
	bans := 0
	for k, id := range state {
		if k.Type != "m.room.member" || k.StateKey == user {
			continue
		}
		i, err := api.dag.Event(id)
		if err != nil {
			continue
		}
		switch i.Event.Membership() {
		case "ban":
			if bans == MaxUpgradeBans || slices.Contains(additional, k.StateKey) ||
				version != rooms.V12 && firstLevels.user(k.StateKey) >= own {
				continue
			}
			bans++
			up.steps = append(up.steps, dag.Step{Type: "m.room.member", StateKey: k.StateKey, Content: json.RawMessage(`{"membership":"ban"}`)})
		case "join":
			if len(up.invite) < MaxUpgradeInvites {
				up.invite = append(up.invite, k.StateKey)
			}
		}
	}
	slices.Sort(up.invite)

	// The old room: events_default and invite at the greater of 50 and
	// users_default + 1, so that only moderators speak or invite there.
	if plContent != nil {
		quiet := max(50, pl.UsersDefault()+1)
		silenced, changed, err := withLevels(plContent, quiet, "events_default", "invite")
		if err != nil {
			return nil, err
		}
		if changed {
			up.silence = silenced
		}
	}
	return up, nil
}

// step is a dag.Step whose content is encoded.
func (api *API) step(typ, key string, content any) dag.Step {
	c, _ := rooms.MarshalCanonical(content) // maps of strings and numbers
	return dag.Step{Type: typ, StateKey: key, Content: c}
}

// plainState is the content of the room's (typ, "") state as clients see
// it (decrypted; redacted if it was), or nil if there is none or it
// cannot be read here.
func (api *API) plainState(state store.StateMap, typ string) (json.RawMessage, error) {
	e, ok, err := api.shownState(state, typ, "")
	if err != nil || !ok || e.status != "" {
		return nil, err
	}
	ce := api.render(e, nil, false)
	if ce.Type != typ {
		return nil, nil
	}
	return rooms.CanonicalJSON(ce.Content)
}

// upgradePowerLevels makes the new room's power levels from the old
// room's content (nil: none), and the level the upgrading user has in
// the old room. first is what the new room starts with, final what it
// ends with. In version 12 the upgrader and the additional creators are
// creators, of infinite power, and must not be listed: first and final
// are the old levels without them. Before 12, first lifts the upgrader
// to the highest level the content names (at least 100), so that they
// can send everything the upgrade copies; final gives them back their
// old level, or keeps the lifted one if they were a creator of a
// version 12 room, whose infinite power has no number.
func upgradePowerLevels(content json.RawMessage, oldLevel int64, user, version string, additional []string) (first, final json.RawMessage, err error) {
	m := map[string]any{}
	if content != nil {
		d := json.NewDecoder(bytes.NewReader(content))
		d.UseNumber()
		if err := d.Decode(&m); err != nil {
			return nil, nil, fmt.Errorf("upgrade: power levels: %w", err)
		}
	}
	users, _ := m["users"].(map[string]any)
	if users == nil {
		users = map[string]any{}
	}
	m["users"] = users
	if version == rooms.V12 {
		delete(users, user)
		for _, u := range additional {
			delete(users, u)
		}
		first, err = rooms.MarshalCanonical(m)
		return first, first, err
	}
	top := int64(100)
	for _, v := range m {
		top = max(top, highest(v))
	}
	users[user] = top
	if first, err = rooms.MarshalCanonical(m); err != nil {
		return nil, nil, err
	}
	if oldLevel != rooms.CreatorLevel {
		users[user] = oldLevel
	}
	final, err = rooms.MarshalCanonical(m)
	return first, final, err
}

// highest is the greatest integer in v (a number, or an object of
// numbers such as events or users), or 0.
func highest(v any) int64 {
	switch x := v.(type) {
	case json.Number:
		n, _ := x.Int64()
		return n
	case map[string]any:
		var top int64
		for _, y := range x {
			if n, ok := y.(json.Number); ok {
				v, _ := n.Int64()
				top = max(top, v)
			}
		}
		return top
	}
	return 0
}

// levels reads the users and users_default of power levels content.
type levels struct {
	users        map[string]int64
	usersDefault int64
}

func levelsOf(content json.RawMessage) levels {
	var l struct {
		Users        map[string]int64 `json:"users"`
		UsersDefault int64            `json:"users_default"`
	}
	json.Unmarshal(content, &l) // canonical JSON of integers (upgradePowerLevels)
	return levels{users: l.Users, usersDefault: l.UsersDefault}
}

func (l levels) user(u string) int64 {
	if n, ok := l.users[u]; ok {
		return n
	}
	return l.usersDefault
}

// withLevels sets the keys to at least level in power levels content;
// changed is false if every one was there already.
func withLevels(content json.RawMessage, level int64, keys ...string) (json.RawMessage, bool, error) {
	m := map[string]any{}
	d := json.NewDecoder(bytes.NewReader(content))
	d.UseNumber()
	if err := d.Decode(&m); err != nil {
		return nil, false, fmt.Errorf("upgrade: power levels: %w", err)
	}
	changed := false
	for _, k := range keys {
		n, ok := m[k].(json.Number)
		have, _ := n.Int64()
		if !ok {
			have = map[string]int64{"events_default": 0, "invite": 0}[k] // the spec's defaults
		}
		if have < level {
			m[k] = level
			changed = true
		}
	}
	out, err := rooms.MarshalCanonical(m)
	return out, changed, err
}

// moveAliases points this node's aliases of one room at another.
func (api *API) moveAliases(from, to string) error {
	api.aliasMu.Lock()
	defer api.aliasMu.Unlock()
	return api.store.Update(func(t *store.Txn) error {
		list, err := t.RoomAliases(from)
		if err != nil {
			return err
		}
		for _, alias := range list {
			rec, err := t.Alias(alias)
			if err != nil {
				return err
			}
			if err := t.DeleteAlias(alias); err != nil {
				return err
			}
			if err := t.PutAlias(alias, to, rec.Creator, MaxAliasesPerUser); err != nil {
				return err
			}
		}
		return nil
	})
}

var _ webui.Upgrader = (*API)(nil)
