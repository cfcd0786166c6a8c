package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/parley-p2p/parley/errs"
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
	if err := n.rollBack(r); err != nil {
		return rooms.ProtoEvent{}, err
	}
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
// waits until it is durable, and then publishes it: no member hears of
// an event this node does not hold, and a failed write leaves nothing
// behind (the room's memory is rolled back before its next change).
func (n *Node) sendLocal(ctx context.Context, r *room, sender, evType string, stateKey *string, content json.RawMessage, txnID, device string) (*rooms.Event, error) {
	if len(txnID) > maxTxnIDLen {
		return nil, errs.Invalidf("transaction ID is %d bytes, at most %d allowed", len(txnID), maxTxnIDLen)
	}
	r.mu.Lock()
	for txnID != "" {
		id, wait := n.txnEvent(sender, device, txnID)
		if id != "" {
			r.mu.Unlock()
			i, err := n.eventInfo(id)
			if err != nil {
				return nil, err
			}
			return i.ev, nil
		}
		if wait == nil {
			break
		}
		// The same transaction is being written: its result decides.
		r.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		r.mu.Lock()
	}
	ev, out, err := n.buildLocked(r, sender, evType, stateKey, content, txnID, device)
	r.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if err := <-out.committed; err != nil {
		return nil, fmt.Errorf("store event: %w", err)
	}
	n.publish(r, ev)
	return ev, nil
}

// buildLocked builds, signs and checks an event from a local user on top
// of the room's head, and queues its write. The caller holds r.mu.
func (n *Node) buildLocked(r *room, sender, evType string, stateKey *string, content json.RawMessage, txnID, device string) (*rooms.Event, *outcome, error) {
	if err := n.rollBack(r); err != nil {
		return nil, nil, err
	}
	p, err := n.protoLocked(r, sender, evType, stateKey, content)
	if err != nil {
		return nil, nil, err
	}
	ev, err := rooms.Build(p, r.version, n.serverName, n.key)
	if err != nil {
		if len(content) > rooms.MaxEventSize/2 {
			return nil, nil, &webui.Error{Status: http.StatusRequestEntityTooLarge, Code: "M_TOO_LARGE", Message: fmt.Sprintf("event too large: %v", err)}
		}
		return nil, nil, errs.Invalidf("%v", err)
	}
	out, err := n.process(r, ev, processOpts{local: true, txnID: txnID, txnDevice: device})
	var rj *rejection
	if errors.As(err, &rj) {
		return nil, nil, errs.Forbiddenf("%s", strings.TrimPrefix(rj.reason, "against the state before it: "))
	}
	if err != nil {
		return nil, nil, err
	}
	return ev, out, nil
}

// txnEvent finds the event a client transaction created, or a channel to
// wait on while that event's write is in flight.
func (n *Node) txnEvent(user, device, txnID string) (string, <-chan struct{}) {
	key := txnKey(user, device, txnID)
	if id, wait := n.txns.lookup(key); id != "" || wait != nil {
		return id, wait
	}
	var id string
	n.store.View(func(t *store.Txn) error {
		var err error
		id, err = t.TxnEvent(user, device, txnID)
		return err
	})
	if id != "" {
		n.txns.add(key, id)
	}
	return id, nil
}

// CreateRoom implements webui.Backend: the events of the spec's
// createRoom, in order, each checked and stored like any other.
func (n *Node) CreateRoom(ctx context.Context, s *webui.Session, req *webui.CreateRoomRequest) (string, error) {
	if len(req.InitialState) > maxInitialState {
		return "", errs.Invalidf("initial_state has %d entries; at most %d are allowed", len(req.InitialState), maxInitialState)
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
	var localInvites, remoteInvites []string
	for _, u := range req.Invite {
		if u == s.UserID || slices.Contains(localInvites, u) || slices.Contains(remoteInvites, u) {
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
		return "", errs.Invalidf("creation_content: %v", err)
	}
	for _, u := range localInvites {
		local, _ := n.localUser(u)
		if _, err := n.account(local); err != nil {
			return "", errs.NotFoundf("user %s does not exist", u)
		}
	}
	createEv, err := n.buildCreate(version, s.UserID, createContent)
	if err != nil {
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
	for _, u := range localInvites {
		steps = append(steps, step{"m.room.member", u, map[string]string{"membership": "invite"}})
	}

	// Every event is built and checked first, with the room's writes
	// gathered; they are then committed in one transaction, so the room
	// appears whole or not at all.
	r := n.newRoom(createEv.RoomID(), version)
	var writes []batchedWrite
	var built []string
	r.batch = &writes // no one else sees r before activateRoom
	err = func() error {
		r.mu.Lock()
		defer r.mu.Unlock()
		if _, err := n.process(r, createEv, processOpts{local: true}); err != nil {
			return fmt.Errorf("create event: %w", err)
		}
		built = append(built, createEv.ID())
		for _, st := range steps {
			c, err := rooms.MarshalCanonical(st.content)
			if err != nil {
				return errs.Invalidf("%s content: %v", st.typ, err)
			}
			key := st.key
			ev, _, err := n.buildLocked(r, s.UserID, st.typ, &key, c, "", "")
			if err != nil {
				return err
			}
			built = append(built, ev.ID())
		}
		return nil
	}()
	if err == nil {
		err = n.store.Update(func(t *store.Txn) error {
			for _, w := range writes {
				if err := w.write(t); err != nil {
					return err
				}
			}
			return nil
		})
		for _, w := range writes {
			w.finish(err)
		}
		if err != nil {
			err = fmt.Errorf("create room: %w", err)
		}
	}
	r.batch = nil
	if err != nil {
		for _, id := range built {
			n.events.del(id)
		}
		return "", err
	}
	if err := n.activateRoom(r); err != nil {
		return "", err
	}
	for _, u := range remoteInvites {
		if err := n.Invite(ctx, s, r.id, u, ""); err != nil {
			n.log.Warn("createRoom invite failed", "room", r.id, "user", u, "err", err)
			return r.id, nil
		}
	}
	return r.id, nil
}

// buildCreate builds a room's create event. Its timestamp is unique on
// this node, so two rooms created by one user in the same millisecond
// still differ (a v12 room's ID is its create event's hash), and a clock
// that went back cannot recreate a room this node already holds.
func (n *Node) buildCreate(version, sender string, content json.RawMessage) (*rooms.Event, error) {
	empty := ""
	for range 100 {
		ev, err := rooms.Build(rooms.ProtoEvent{
			Sender: sender, Type: "m.room.create", StateKey: &empty, Content: content,
			Depth: 1, OriginServerTS: n.uniqueMS(), PrevEvents: []string{}, AuthEvents: []string{},
			RoomID: roomIDForCreate(version, sender, n.serverName),
		}, version, n.serverName, n.key)
		if err != nil {
			return nil, errs.Invalidf("create event: %v", err)
		}
		if !n.known(ev.ID()) && n.getRoom(ev.RoomID()) == nil {
			return ev, nil
		}
	}
	return nil, errors.New("create event: no unused room ID found")
}

// uniqueMS is the time in milliseconds, but never the same value twice.
func (n *Node) uniqueMS() int64 {
	for {
		last := n.lastCreateMS.Load()
		now := max(nowMS(), last+1)
		if n.lastCreateMS.CompareAndSwap(last, now) {
			return now
		}
	}
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
