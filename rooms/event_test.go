package rooms

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
)

// validPDU returns a well-formed v11 message PDU as a map for tests to break.
func validPDU() map[string]any {
	id := "$" + strings.Repeat("A", 43)
	return map[string]any{
		"room_id": "!room:example.org", "sender": "@alice:example.org", "type": "m.room.message",
		"content": map[string]any{"body": "hi"}, "prev_events": []any{id}, "auth_events": []any{id},
		"depth": 5, "origin_server_ts": 1000, "hashes": map[string]any{"sha256": "abc"},
		"signatures": map[string]any{"example.org": map[string]any{KeyID: "sig"}},
	}
}

func TestParseEventChecksTheFormat(t *testing.T) {
	ids := func(n int) []any {
		out := make([]any, n)
		for i := range out {
			out[i] = "$" + strings.Repeat(string(rune('A'+i)), 43)
		}
		return out
	}
	tests := []struct {
		name    string
		version string
		edit    func(m map[string]any)
		ok      bool
	}{
		{"a well-formed message is accepted", V11, func(map[string]any) {}, true},
		{"a state event with an empty state key is accepted", V11, func(m map[string]any) { m["state_key"] = "" }, true},
		{"unknown top-level fields are kept", V11, func(m map[string]any) { m["origin"] = "x" }, true},
		{"twenty prev events are accepted", V11, func(m map[string]any) { m["prev_events"] = ids(20) }, true},
		{"an unknown room version is refused", "9", func(map[string]any) {}, false},
		{"a missing type is refused", V11, func(m map[string]any) { delete(m, "type") }, false},
		{"a type longer than 255 bytes is refused", V11, func(m map[string]any) { m["type"] = strings.Repeat("t", 256) }, false},
		{"a numeric type is refused", V11, func(m map[string]any) { m["type"] = 5 }, false},
		{"a missing sender is refused", V11, func(m map[string]any) { delete(m, "sender") }, false},
		{"a sender that is not a user ID is refused", V11, func(m map[string]any) { m["sender"] = "alice" }, false},
		{"a state key longer than 255 bytes is refused", V11, func(m map[string]any) { m["state_key"] = strings.Repeat("s", 256) }, false},
		{"a numeric state key is refused", V11, func(m map[string]any) { m["state_key"] = 1 }, false},
		{"content that is not an object is refused", V11, func(m map[string]any) { m["content"] = "x" }, false},
		{"missing content is refused", V11, func(m map[string]any) { delete(m, "content") }, false},
		{"a missing room ID is refused", V11, func(m map[string]any) { delete(m, "room_id") }, false},
		{"a room ID without '!' is refused", V11, func(m map[string]any) { m["room_id"] = "room:example.org" }, false},
		{"a v11-style room ID is refused in v12", V12, func(m map[string]any) {}, false},
		{"a hash room ID is accepted in v12", V12, func(m map[string]any) { m["room_id"] = "!" + strings.Repeat("r", 43) }, true},
		{"a v12 room ID of the wrong length is refused", V12, func(m map[string]any) { m["room_id"] = "!" + strings.Repeat("r", 42) }, false},
		{"a v12 create event with a room ID is refused", V12, func(m map[string]any) {
			m["type"], m["state_key"], m["room_id"] = "m.room.create", "", "!"+strings.Repeat("r", 43)
		}, false},
		{"a v12 create event without a room ID is accepted", V12, func(m map[string]any) {
			m["type"], m["state_key"] = "m.room.create", ""
			delete(m, "room_id")
		}, true},
		{"twenty-one prev events are refused", V11, func(m map[string]any) { m["prev_events"] = ids(21) }, false},
		{"eleven auth events are refused", V11, func(m map[string]any) { m["auth_events"] = ids(11) }, false},
		{"prev events that are not a list are refused", V11, func(m map[string]any) { m["prev_events"] = "x" }, false},
		{"a prev event that is not an event ID is refused", V11, func(m map[string]any) { m["prev_events"] = []any{"$short"} }, false},
		{"an auth event that is not a string is refused", V11, func(m map[string]any) { m["auth_events"] = []any{1} }, false},
		{"a missing depth is refused", V11, func(m map[string]any) { delete(m, "depth") }, false},
		{"a negative depth is refused", V11, func(m map[string]any) { m["depth"] = -1 }, false},
		{"a string depth is refused", V11, func(m map[string]any) { m["depth"] = "5" }, false},
		{"a fractional depth is refused", V11, func(m map[string]any) { m["depth"] = 1.5 }, false},
		{"a missing timestamp is refused", V11, func(m map[string]any) { delete(m, "origin_server_ts") }, false},
		{"a depth beyond 2^53-1 is refused", V11, func(m map[string]any) { m["depth"] = json.Number("9007199254740992") }, false},
		{"missing hashes are refused", V11, func(m map[string]any) { delete(m, "hashes") }, false},
		{"hashes without sha256 are refused", V11, func(m map[string]any) { m["hashes"] = map[string]any{} }, false},
		{"missing signatures are refused", V11, func(m map[string]any) { delete(m, "signatures") }, false},
		{"signatures that are not objects of strings are refused", V11, func(m map[string]any) {
			m["signatures"] = map[string]any{"x": map[string]any{KeyID: 1}}
		}, false},
		{"an event_id field is refused", V11, func(m map[string]any) { m["event_id"] = "$x" }, false},
		{"an event above 65536 bytes is refused", V11, func(m map[string]any) {
			m["content"] = map[string]any{"body": strings.Repeat("x", MaxEventSize)}
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := validPDU()
			tt.edit(m)
			raw, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			_, err = ParseEvent(raw, tt.version)
			if (err == nil) != tt.ok {
				t.Fatalf("ParseEvent: %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrBadFormat) {
				t.Errorf("error %v does not wrap ErrBadFormat", err)
			}
		})
	}
	t.Run("JSON that is not an object is refused", func(t *testing.T) {
		for _, raw := range []string{`[]`, `"x"`, `{"type":"a","type":"b"}`, `{`} {
			if _, err := ParseEvent([]byte(raw), V11); err == nil {
				t.Errorf("ParseEvent(%s) accepted", raw)
			}
		}
	})
}

func TestEventAccessors(t *testing.T) {
	r := newTestRoom(t, V11)
	member := r.member(alice, bob, "invite", `,"displayname":"Bob"`)
	red := r.build(alice, "m.room.redaction", "-", `{"redacts":"`+member.ID()+`"}`)

	t.Run("a member event exposes its fields", func(t *testing.T) {
		if member.Type() != "m.room.member" || member.Sender() != alice || member.RoomID() != r.create.RoomID() ||
			*member.StateKey() != bob || !member.IsState() || member.Key() != memberKey(bob) ||
			member.Membership() != "invite" || member.Version() != V11 || member.Redacts() != "" {
			t.Errorf("unexpected fields: %v", member)
		}
		if string(member.Content()) != `{"displayname":"Bob","membership":"invite"}` {
			t.Errorf("content %s", member.Content())
		}
		if got := member.AuthEvents(); len(got) != 4 {
			t.Errorf("auth events %v", got)
		}
	})
	t.Run("a redaction exposes content.redacts and is not state", func(t *testing.T) {
		if red.Redacts() != member.ID() || red.IsState() || red.StateKey() != nil || red.Membership() != "" {
			t.Errorf("unexpected: %v", red)
		}
	})
	t.Run("returned slices are copies", func(t *testing.T) {
		member.PrevEvents()[0] = "$changed"
		member.Content()[0] = 'X'
		member.JSON()[0] = 'X'
		if member.PrevEvents()[0] == "$changed" || member.Content()[0] != '{' || member.JSON()[0] != '{' {
			t.Error("an accessor exposed internal state")
		}
	})
}

func TestRedaction(t *testing.T) {
	tests := []struct {
		name, typ, content, want string
	}{
		{"a message loses all content", "m.room.message", `{"body":"secret","msgtype":"m.text"}`, `{}`},
		{"a member event keeps membership, the authoriser and the signed 3pid block",
			"m.room.member", `{"membership":"join","displayname":"x","join_authorised_via_users_server":"@a:b",
			"third_party_invite":{"display_name":"d","signed":{"mxid":"@a:b","token":"t"}}}`,
			`{"join_authorised_via_users_server":"@a:b","membership":"join","third_party_invite":{"signed":{"mxid":"@a:b","token":"t"}}}`},
		{"a member event without signed drops third_party_invite", "m.room.member",
			`{"membership":"invite","third_party_invite":{"display_name":"d"}}`, `{"membership":"invite"}`},
		{"a create event keeps all content", "m.room.create", `{"room_version":"11","m.federate":false,"extra":1}`,
			`{"extra":1,"m.federate":false,"room_version":"11"}`},
		{"join rules keep join_rule and allow", "m.room.join_rules", `{"join_rule":"restricted","allow":[],"other":1}`,
			`{"allow":[],"join_rule":"restricted"}`},
		{"power levels keep the nine level keys, invite included", "m.room.power_levels",
			`{"ban":1,"events":{},"events_default":2,"invite":3,"kick":4,"redact":5,"state_default":6,"users":{},"users_default":7,"notifications":{"room":1},"x":1}`,
			`{"ban":1,"events":{},"events_default":2,"invite":3,"kick":4,"redact":5,"state_default":6,"users":{},"users_default":7}`},
		{"history visibility keeps history_visibility", "m.room.history_visibility", `{"history_visibility":"shared","x":1}`,
			`{"history_visibility":"shared"}`},
		{"a redaction keeps redacts", "m.room.redaction", `{"redacts":"$x","reason":"spam"}`, `{"redacts":"$x"}`},
		{"a topic loses its content", "m.room.topic", `{"topic":"t"}`, `{}`},
	}
	wantTop := []string{"auth_events", "content", "depth", "hashes", "origin_server_ts", "prev_events", "room_id", "sender", "signatures", "state_key", "type"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := validPDU()
			m["type"], m["state_key"] = tt.typ, ""
			m["origin"], m["membership"], m["prev_state"], m["redacts"], m["unsigned"] = "x", "join", []any{}, "$y", map[string]any{"a": 1}
			if err := json.Unmarshal([]byte(tt.content), new(map[string]any)); err != nil {
				t.Fatal(err)
			}
			m["content"] = json.RawMessage(tt.content)
			raw, _ := json.Marshal(m)
			e := mustParse(t, string(raw), V11)
			red, err := e.Redacted()
			if err != nil {
				t.Fatal(err)
			}
			if string(red.Content()) != tt.want {
				t.Errorf("content %s, want %s", red.Content(), tt.want)
			}
			var top map[string]json.RawMessage
			if err := json.Unmarshal(red.JSON(), &top); err != nil {
				t.Fatal(err)
			}
			var keys []string
			for k := range top {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			if !slices.Equal(keys, wantTop) {
				t.Errorf("top-level keys %v, want %v", keys, wantTop)
			}
			if red.ID() != e.ID() {
				t.Errorf("redaction changed the ID")
			}
			again, err := red.Redacted()
			if err != nil || string(again.JSON()) != string(red.JSON()) {
				t.Errorf("redaction is not idempotent")
			}
		})
	}
}

func TestVersion12RoomIDBinding(t *testing.T) {
	r := newTestRoom(t, V12)
	t.Run("the room ID is the create event ID with a '!' sigil", func(t *testing.T) {
		if r.create.RoomID() != "!"+r.create.ID()[1:] || !validHashID(r.create.RoomID(), '!') {
			t.Errorf("room ID %s for create %s", r.create.RoomID(), r.create.ID())
		}
		if strings.Contains(string(r.create.JSON()), "room_id") {
			t.Error("a v12 create event carries a room_id")
		}
		if err := Verify(r.create); err != nil {
			t.Errorf("Verify: %v", err)
		}
	})
	t.Run("Build refuses a room ID for a v12 create event", func(t *testing.T) {
		p := ProtoEvent{RoomID: r.create.RoomID(), Sender: alice, Type: "m.room.create", StateKey: NewStateKey(""), Content: json.RawMessage(`{}`)}
		if _, err := Build(p, V12, serverA.name, serverA.key); err == nil {
			t.Error("no error")
		}
	})
	t.Run("events of the room carry its room ID and cite no create event", func(t *testing.T) {
		e := r.build(alice, "m.room.message", "-", `{}`)
		if e.RoomID() != r.create.RoomID() || slices.Contains(e.AuthEvents(), r.create.ID()) {
			t.Errorf("room %s, auth events %v", e.RoomID(), e.AuthEvents())
		}
	})
	t.Run("an event naming another create event's room is not allowed", func(t *testing.T) {
		other := newBareRoom(t, V12, `{"room_version":"12","x":1}`)
		p := r.proto(alice, "m.room.message", "-", `{}`)
		p.RoomID = other.create.RoomID()
		var na *NotAllowed
		if err := Allowed(r.buildProto(p), r.lookup); !errors.As(err, &na) {
			t.Errorf("Allowed = %v, want NotAllowed", err)
		}
	})
}

func TestParseEventWithID(t *testing.T) {
	// Shaped like the ruma state-resolution fixtures (MIT): literal IDs, no
	// depth, hashes or signatures, and an event_id field.
	create := `{"event_id":"$00-m-room-create","sender":"@alice:example.com","type":"m.room.create",
		"content":{"room_version":"12"},"state_key":"","origin_server_ts":0,"prev_events":[],"auth_events":[]}`
	join := `{"event_id":"$00-m-room-member-join-alice","room_id":"!00-m-room-create","sender":"@alice:example.com",
		"type":"m.room.member","content":{"membership":"join"},"state_key":"@alice:example.com",
		"origin_server_ts":1,"prev_events":["$00-m-room-create"],"auth_events":[]}`
	t.Run("a fixture create event gets its room ID from the literal ID", func(t *testing.T) {
		e, err := ParseEventWithID([]byte(create), V12, "$00-m-room-create")
		if err != nil {
			t.Fatal(err)
		}
		if e.ID() != "$00-m-room-create" || e.RoomID() != "!00-m-room-create" || strings.Contains(string(e.JSON()), "event_id") {
			t.Errorf("id %s room %s json %s", e.ID(), e.RoomID(), e.JSON())
		}
	})
	t.Run("fixture events pass the auth rules like real ones", func(t *testing.T) {
		c, err := ParseEventWithID([]byte(create), V12, "$00-m-room-create")
		if err != nil {
			t.Fatal(err)
		}
		j, err := ParseEventWithID([]byte(join), V12, "$00-m-room-member-join-alice")
		if err != nil {
			t.Fatal(err)
		}
		state := func(k StateKey) *Event {
			if k == createKey {
				return c
			}
			return nil
		}
		if err := Allowed(j, state); err != nil {
			t.Errorf("Allowed: %v", err)
		}
		red, err := j.Redacted()
		if err != nil || red.ID() != j.ID() {
			t.Errorf("redacting a fixture: %v, %v", red, err)
		}
	})
	t.Run("an ID without '$' is refused", func(t *testing.T) {
		if _, err := ParseEventWithID([]byte(create), V12, "00-m-room-create"); err == nil {
			t.Error("no error")
		}
	})
}
