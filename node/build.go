package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/rooms"
	"github.com/parley-p2p/parley/webui"
)

// maxPrevEvents is the spec's bound on prev_events.
const maxPrevEvents = 20

// maxInitialState bounds createRoom's initial_state. Clients send a
// handful of entries (encryption, guest access, a space's parent); a
// room that needs more can have them sent as state events afterwards.
const maxInitialState = 100

// proto prepares an event on top of the room's current head: prev events
// are the extremities, auth events the selection from current state.
func (n *Node) proto(r *room, sender, evType string, stateKey *string, content json.RawMessage) (rooms.ProtoEvent, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return n.protoLocked(r, sender, evType, stateKey, content)
}

func (n *Node) protoLocked(r *room, sender, evType string, stateKey *string, content json.RawMessage) (rooms.ProtoEvent, error) {
	p := rooms.ProtoEvent{
		RoomID: r.id, Sender: sender, Type: evType, StateKey: stateKey, Content: content,
		Depth: r.depth + 1, OriginServerTS: nowMS(),
	}
	ext := r.ext
	if len(ext) > maxPrevEvents {
		ext = ext[:maxPrevEvents]
	}
	p.PrevEvents = slices.Clone(ext)
	for _, k := range rooms.AuthEventKeys(p, r.version) {
		if id, ok := r.state[k]; ok {
			p.AuthEvents = append(p.AuthEvents, id)
		}
	}
	if p.Depth > 1<<53-1 {
		p.Depth = 1<<53 - 1
	}
	return p, nil
}

// sendLocal builds, signs, checks and stores an event from a local user,
// waits until it is durable, and publishes it.
func (n *Node) sendLocal(ctx context.Context, r *room, sender, evType string, stateKey *string, content json.RawMessage, txnID, device string) (*rooms.Event, error) {
	r.mu.Lock()
	if txnID != "" {
		if id := n.txnEvent(sender, device, txnID); id != "" {
			r.mu.Unlock()
			i, err := n.eventInfo(id)
			if err != nil {
				return nil, err
			}
			return i.ev, nil
		}
	}
	p, err := n.protoLocked(r, sender, evType, stateKey, content)
	if err != nil {
		r.mu.Unlock()
		return nil, err
	}
	ev, err := rooms.Build(p, r.version, n.serverName, n.key)
	if err != nil {
		r.mu.Unlock()
		if len(content) > rooms.MaxEventSize/2 {
			return nil, &webui.Error{Status: http.StatusRequestEntityTooLarge, Code: "M_TOO_LARGE", Message: fmt.Sprintf("event too large: %v", err)}
		}
		return nil, webui.BadRequest("%v", err)
	}
	out, err := n.process(r, ev, processOpts{local: true, txnID: txnID, txnDevice: device})
	r.mu.Unlock()
	var rj *rejection
	if errors.As(err, &rj) {
		return nil, webui.Forbidden("%s", strings.TrimPrefix(rj.reason, "against the state before it: "))
	}
	if err != nil {
		return nil, err
	}
	// Publish while the write is in flight: the other members' own fsyncs
	// then overlap ours. The client still hears of the event only once it
	// is durable here; if this node dies in between, the event lives on
	// at the members and comes back with catch-up.
	n.publish(r, ev)
	if err := <-out.committed; err != nil {
		return nil, fmt.Errorf("store event: %w", err)
	}
	return ev, nil
}

// txnEvent finds the event a client transaction already created.
func (n *Node) txnEvent(user, device, txnID string) string {
	if v, ok := n.txns.Load(txnKey(user, device, txnID)); ok {
		return v.(string)
	}
	var id string
	n.store.View(func(t *store.Txn) error {
		var err error
		id, err = t.TxnEvent(user, device, txnID)
		return err
	})
	return id
}

// CreateRoom implements webui.Backend: the events of the spec's
// createRoom, in order, each checked and stored like any other.
func (n *Node) CreateRoom(ctx context.Context, s *webui.Session, req *webui.CreateRoomRequest) (string, error) {
	if len(req.InitialState) > maxInitialState {
		return "", webui.BadRequest("initial_state has %d entries; at most %d are allowed", len(req.InitialState), maxInitialState)
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
			return "", webui.BadRequest("creation_content: %v", err)
		}
	}
	create["room_version"] = version
	delete(create, "creator")
	var localInvites, remoteInvites []string
	for _, u := range req.Invite {
		if u == s.UserID {
			continue
		}
		if _, local := n.localUser(u); local {
			localInvites = append(localInvites, u)
		} else {
			remoteInvites = append(remoteInvites, u)
		}
	}
	if preset == "trusted_private_chat" && version != rooms.V11 && len(req.Invite) > 0 {
		create["additional_creators"] = slices.DeleteFunc(slices.Clone(req.Invite), func(u string) bool { return u == s.UserID })
	}
	createContent, err := rooms.MarshalCanonical(create)
	if err != nil {
		return "", webui.BadRequest("creation_content: %v", err)
	}
	empty := ""
	createEv, err := rooms.Build(rooms.ProtoEvent{
		Sender: s.UserID, Type: "m.room.create", StateKey: &empty, Content: createContent,
		Depth: 1, OriginServerTS: nowMS(), PrevEvents: []string{}, AuthEvents: []string{},
		RoomID: roomIDForCreate(version, s.UserID, n.serverName),
	}, version, n.serverName, n.key)
	if err != nil {
		return "", webui.BadRequest("create event: %v", err)
	}
	r := n.newRoom(createEv.RoomID(), version)
	r.mu.Lock()
	out, err := n.process(r, createEv, processOpts{local: true})
	r.mu.Unlock()
	if err != nil {
		return "", fmt.Errorf("create event: %w", err)
	}
	if err := <-out.committed; err != nil {
		return "", err
	}
	if err := n.activateRoom(r); err != nil {
		return "", err
	}

	type step struct {
		typ, key string
		content  any
	}
	steps := []step{
		{"m.room.member", s.UserID, n.memberContent(s.UserID, "join")},
		{"m.room.power_levels", "", n.powerLevels(version, s.UserID, preset, req)},
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
		steps = append(steps, step{"m.room.topic", "", map[string]string{"topic": req.Topic}})
	}
	for _, st := range steps {
		c, err := rooms.MarshalCanonical(st.content)
		if err != nil {
			return "", webui.BadRequest("%s content: %v", st.typ, err)
		}
		key := st.key
		if _, err := n.sendLocal(ctx, r, s.UserID, st.typ, &key, c, "", ""); err != nil {
			return "", err
		}
	}
	for _, u := range localInvites {
		if err := n.Invite(ctx, s, r.id, u, ""); err != nil {
			return "", err
		}
	}
	for _, u := range remoteInvites {
		if err := n.Invite(ctx, s, r.id, u, ""); err != nil {
			n.log.Warn("createRoom invite failed", "room", r.id, "user", u, "err", err)
			return r.id, nil
		}
	}
	return r.id, nil
}

// roomIDForCreate is the create event's room_id: none for v12 (the room
// ID is the create event's hash), a random one on this server for v11.
func roomIDForCreate(version, _ string, server string) string {
	if version != rooms.V11 {
		return ""
	}
	return "!" + randomString(18) + ":" + server
}

func (n *Node) powerLevels(version, creator, preset string, req *webui.CreateRoomRequest) map[string]any {
	users := map[string]any{}
	if version == rooms.V11 {
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
			linkEventType: 0,
		},
	}
	if preset == "public_chat" {
		pl["invite"] = 50
		pl["events"].(map[string]any)[linkEventType] = 50
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
func (n *Node) memberContent(user, membership string) map[string]any {
	c := map[string]any{"membership": membership}
	if _, local := n.localUser(user); local && membership == "join" {
		if p, err := n.Profile(user); err == nil {
			for k, v := range p {
				c[k] = v
			}
		}
	}
	return c
}

// localUser returns the localpart if the user lives on this node.
func (n *Node) localUser(user string) (string, bool) {
	s, err := rooms.ServerOf(user)
	if err != nil || s != n.serverName {
		return "", false
	}
	return strings.TrimPrefix(strings.SplitN(user, ":", 2)[0], "@"), true
}
