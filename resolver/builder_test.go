package resolver

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/parley-p2p/parley/rooms"
)

// roomBuilder makes fixture-style events (literal IDs, no hashes or
// signatures) for one room, picking each event's auth events from a given
// state by the auth events selection rules.
type roomBuilder struct {
	tb      testing.TB
	version string
	prefix  string
	roomID  string
	create  *rooms.Event
	events  map[string]*rooms.Event
	n       int
}

func newRoomBuilder(tb testing.TB, version, prefix string) *roomBuilder {
	return &roomBuilder{tb: tb, version: version, prefix: prefix, events: make(map[string]*rooms.Event)}
}

func (b *roomBuilder) fetch(id string) (*rooms.Event, error) {
	if e, ok := b.events[id]; ok {
		return e, nil
	}
	return nil, fmt.Errorf("unknown event %s", id)
}

// createRoom makes the create event, sent by creator.
func (b *roomBuilder) createRoom(creator string) *rooms.Event {
	id := fmt.Sprintf("$%s-create", b.prefix)
	if b.version == rooms.V12 {
		b.roomID = "!" + id[1:]
	} else {
		b.roomID = fmt.Sprintf("!%s:example.org", b.prefix)
	}
	content := map[string]any{"room_version": b.version}
	empty := ""
	b.create = b.make(id, creator, typeCreate, &empty, content, nil, nil, 0)
	return b.create
}

// event makes a state event whose auth events are chosen from state.
func (b *roomBuilder) event(sender, typ, stateKey string, content map[string]any, prev []string, state StateMap, ts int64) *rooms.Event {
	b.n++
	id := fmt.Sprintf("$%s-%d", b.prefix, b.n)
	return b.named(id, sender, typ, &stateKey, content, prev, state, ts)
}

// named makes an event with the given ID, a message event if stateKey is
// nil, whose auth events are chosen from state.
func (b *roomBuilder) named(id, sender, typ string, stateKey *string, content map[string]any, prev []string, state StateMap, ts int64) *rooms.Event {
	key := ""
	if stateKey != nil {
		key = *stateKey
	}
	return b.make(id, sender, typ, stateKey, content, prev, b.selectAuth(sender, typ, key, content, state), ts)
}

// selectAuth is the auth events selection: the create event (not in v12),
// the power levels, the sender's membership and, for member events, the
// target's membership and, for joins, invites and knocks, the join rules.
func (b *roomBuilder) selectAuth(sender, typ, stateKey string, content map[string]any, state StateMap) []string {
	keys := []rooms.StateKey{powerLevelsKey, {Type: typeMember, StateKey: sender}}
	if b.version != rooms.V12 {
		keys = append(keys, createKey)
	}
	if typ == typeMember {
		keys = append(keys, rooms.StateKey{Type: typeMember, StateKey: stateKey})
		switch content["membership"] {
		case "join", "invite", "knock":
			keys = append(keys, rooms.StateKey{Type: typeJoinRules})
		}
	}
	var auth []string
	seen := make(map[string]bool)
	for _, k := range keys {
		if id, ok := state[k]; ok && !seen[id] {
			seen[id] = true
			auth = append(auth, id)
		}
	}
	return auth
}

func (b *roomBuilder) make(id, sender, typ string, stateKey *string, content map[string]any, prev, auth []string, ts int64) *rooms.Event {
	b.tb.Helper()
	pdu := map[string]any{
		"sender":           sender,
		"type":             typ,
		"content":          content,
		"origin_server_ts": ts,
		"prev_events":      nonNil(prev),
		"auth_events":      nonNil(auth),
		"depth":            0,
	}
	if stateKey != nil {
		pdu["state_key"] = *stateKey
	}
	if !(b.version == rooms.V12 && typ == typeCreate) {
		pdu["room_id"] = b.roomID
	}
	raw, err := json.Marshal(pdu)
	if err != nil {
		b.tb.Fatal(err)
	}
	e, err := rooms.ParseEventWithID(raw, b.version, id)
	if err != nil {
		b.tb.Fatalf("parse %s: %v", raw, err)
	}
	b.events[id] = e
	return e
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// apply returns state with e added if the auth rules allow e against it,
// and reports whether they did.
func apply(state StateMap, e *rooms.Event, fetch EventFunc, create *rooms.Event) (StateMap, bool) {
	lookup := func(k rooms.StateKey) *rooms.Event {
		if id, ok := state[k]; ok {
			ev, _ := fetch(id)
			return ev
		}
		if k == createKey {
			return create
		}
		return nil
	}
	if err := rooms.Allowed(e, lookup); err != nil {
		return state, false
	}
	next := make(StateMap, len(state)+1)
	for k, v := range state {
		next[k] = v
	}
	next[e.Key()] = e.ID()
	return next, true
}
