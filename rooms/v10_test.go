package rooms

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
)

// What room version 10 does differently from 11: the tests of the rest
// run under all three versions.

func TestAuthCreateV10NeedsACreator(t *testing.T) {
	tests := []struct {
		name, content string
		allowed       bool
	}{
		{"a create event naming its sender as creator is allowed", `{"room_version":"10","creator":"ALICE"}`, true},
		{"a creator other than the sender is allowed (the rules do not compare them)", `{"room_version":"10","creator":"BOB"}`, true},
		{"a create event without creator is not allowed", `{"room_version":"10"}`, false},
		{"a numeric creator is not allowed", `{"room_version":"10","creator":1}`, false},
		{"a creator that is not a user ID is not allowed", `{"room_version":"10","creator":"alice"}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := ProtoEvent{Sender: alice, Type: "m.room.create", StateKey: NewStateKey(""), RoomID: "!r:" + serverA.name,
				Content: json.RawMessage(expand(tt.content)), Depth: 1}
			e, err := Build(p, V10, serverA.name, serverA.key)
			if err != nil {
				t.Fatal(err)
			}
			err = Allowed(e, func(StateKey) *Event { return nil })
			if (err == nil) != tt.allowed {
				t.Errorf("Allowed = %v, want allowed=%v", err, tt.allowed)
			}
		})
	}
	t.Run("v11 needs no creator", func(t *testing.T) {
		p := ProtoEvent{Sender: alice, Type: "m.room.create", StateKey: NewStateKey(""), RoomID: "!r:" + serverA.name,
			Content: json.RawMessage(`{"room_version":"11"}`), Depth: 1}
		e, err := Build(p, V11, serverA.name, serverA.key)
		if err != nil {
			t.Fatal(err)
		}
		if err := Allowed(e, func(StateKey) *Event { return nil }); err != nil {
			t.Errorf("Allowed = %v", err)
		}
	})
}

// TestAuthV10CreatorIsContentCreator: where the rules speak of the creator
// (the first join, the level without a power_levels event), version 10
// reads content.creator and version 11 the create event's sender. A create
// event by alice naming bob tells them apart.
func TestAuthV10CreatorIsContentCreator(t *testing.T) {
	for _, tc := range []struct {
		version, creator, other string
	}{
		{V10, bob, alice},
		{V11, alice, bob},
	} {
		t.Run("v"+tc.version, func(t *testing.T) {
			r := newBareRoom(t, tc.version, `{"room_version":"`+tc.version+`","creator":"BOB"}`)
			if err := Allowed(r.build(tc.other, "m.room.member", tc.other, memberContent("join", "")), r.lookup); err == nil {
				t.Errorf("%s's first join after the create event is allowed; only the creator's is", tc.other)
			}
			join := r.build(tc.creator, "m.room.member", tc.creator, memberContent("join", ""))
			if err := Allowed(join, r.lookup); err != nil {
				t.Fatalf("the creator %s's first join: %v", tc.creator, err)
			}
			r.apply(join)
			pl, err := PowerLevelsFrom(r.lookup)
			if err != nil {
				t.Fatal(err)
			}
			if l := pl.UserLevel(tc.creator); l != 100 {
				t.Errorf("without power levels the creator %s has level %d, want 100", tc.creator, l)
			}
			if l := pl.UserLevel(tc.other); l != 0 {
				t.Errorf("without power levels %s has level %d, want 0", tc.other, l)
			}
		})
	}
}

// TestRedactionV10 applies the algorithm of version 10 and that of 11 to
// the same events: the spec's lists of kept keys for each.
func TestRedactionV10(t *testing.T) {
	tests := []struct {
		name, typ, content string
		v10, v11           string
	}{
		{"a message loses all content", "m.room.message", `{"body":"secret"}`, `{}`, `{}`},
		{"a create event keeps only creator in v10, all in v11", "m.room.create",
			`{"creator":"@a:b","room_version":"10","m.federate":false,"predecessor":{"room_id":"!old:b"}}`,
			`{"creator":"@a:b"}`, `{"creator":"@a:b","m.federate":false,"predecessor":{"room_id":"!old:b"},"room_version":"10"}`},
		{"a member event keeps the authoriser, and the signed 3pid block only in v11", "m.room.member",
			`{"membership":"join","displayname":"x","join_authorised_via_users_server":"@a:b","third_party_invite":{"display_name":"d","signed":{"token":"t"}}}`,
			`{"join_authorised_via_users_server":"@a:b","membership":"join"}`,
			`{"join_authorised_via_users_server":"@a:b","membership":"join","third_party_invite":{"signed":{"token":"t"}}}`},
		{"power levels keep invite only in v11", "m.room.power_levels",
			`{"ban":1,"events":{},"events_default":2,"invite":3,"kick":4,"redact":5,"state_default":6,"users":{},"users_default":7,"notifications":{}}`,
			`{"ban":1,"events":{},"events_default":2,"kick":4,"redact":5,"state_default":6,"users":{},"users_default":7}`,
			`{"ban":1,"events":{},"events_default":2,"invite":3,"kick":4,"redact":5,"state_default":6,"users":{},"users_default":7}`},
		{"join rules keep join_rule and allow in both", "m.room.join_rules", `{"join_rule":"knock_restricted","allow":[],"x":1}`,
			`{"allow":[],"join_rule":"knock_restricted"}`, `{"allow":[],"join_rule":"knock_restricted"}`},
		{"history visibility keeps history_visibility in both", "m.room.history_visibility", `{"history_visibility":"joined","x":1}`,
			`{"history_visibility":"joined"}`, `{"history_visibility":"joined"}`},
		{"a redaction keeps content.redacts only in v11", "m.room.redaction", `{"redacts":"$x","reason":"spam"}`, `{}`, `{"redacts":"$x"}`},
		{"aliases are not special in either", "m.room.aliases", `{"aliases":["#a:b"]}`, `{}`, `{}`},
	}
	baseTop := []string{"auth_events", "content", "depth", "hashes", "origin_server_ts", "prev_events", "room_id", "sender", "signatures", "state_key", "type"}
	wantTop := map[string][]string{
		V10: slices.Sorted(slices.Values(append(slices.Clone(baseTop), "membership", "origin", "prev_state"))),
		V11: baseTop,
	}
	for _, tt := range tests {
		for _, version := range []string{V10, V11} {
			t.Run("v"+version+": "+tt.name, func(t *testing.T) {
				m := validPDU()
				m["type"], m["state_key"] = tt.typ, ""
				m["origin"], m["membership"], m["prev_state"], m["redacts"] = "x", "join", []any{}, "$"+strings.Repeat("B", 43)
				m["content"] = json.RawMessage(tt.content)
				raw, _ := json.Marshal(m)
				e := mustParse(t, string(raw), version)
				red, err := e.Redacted()
				if err != nil {
					t.Fatal(err)
				}
				want := map[string]string{V10: tt.v10, V11: tt.v11}[version]
				if string(red.Content()) != want {
					t.Errorf("content %s, want %s", red.Content(), want)
				}
				var top map[string]json.RawMessage
				if err := json.Unmarshal(red.JSON(), &top); err != nil {
					t.Fatal(err)
				}
				keys := slices.Sorted(func(yield func(string) bool) {
					for k := range top {
						if !yield(k) {
							return
						}
					}
				})
				if !slices.Equal(keys, wantTop[version]) {
					t.Errorf("top-level keys %v, want %v", keys, wantTop[version])
				}
				if red.ID() != e.ID() {
					t.Errorf("redaction changed the ID")
				}
			})
		}
	}
}

// TestEventIDFollowsTheVersionsRedaction: the reference hash covers the
// redacted form, so a key that version 10 keeps and 11 drops (origin)
// changes a v10 event's ID and not a v11 one's; and the same bytes get
// different IDs under the two versions.
func TestEventIDFollowsTheVersionsRedaction(t *testing.T) {
	m := validPDU()
	m["origin"] = "one"
	one, _ := json.Marshal(m)
	m["origin"] = "two"
	two, _ := json.Marshal(m)
	if mustParse(t, string(one), V10).ID() == mustParse(t, string(two), V10).ID() {
		t.Errorf("v10: changing origin kept the event ID")
	}
	if mustParse(t, string(one), V11).ID() != mustParse(t, string(two), V11).ID() {
		t.Errorf("v11: changing origin changed the event ID")
	}
	if mustParse(t, string(one), V10).ID() == mustParse(t, string(one), V11).ID() {
		t.Errorf("the same PDU with origin has one ID under v10 and v11")
	}
}

// TestRedactionEventV10 checks where a v10 redaction names its target:
// Build puts content.redacts at the top level too; Redacts reads the top
// level in v10 and content in v11; the signature covers the event and
// survives a round trip; a redacted redaction names nothing.
func TestRedactionEventV10(t *testing.T) {
	r := newTestRoom(t, V10)
	msg := r.send(alice, "m.room.message", "-", `{"body":"hi"}`)
	red := r.send(alice, "m.room.redaction", "-", `{"redacts":"`+msg.ID()+`","reason":"oops"}`)
	var top struct {
		Redacts string `json:"redacts"`
	}
	if err := json.Unmarshal(red.JSON(), &top); err != nil || top.Redacts != msg.ID() {
		t.Fatalf("top-level redacts %q (%v), want %s", top.Redacts, err, msg.ID())
	}
	if red.Redacts() != msg.ID() {
		t.Errorf("Redacts = %q, want %s", red.Redacts(), msg.ID())
	}
	again := mustParse(t, string(red.JSON()), V10)
	if again.ID() != red.ID() || again.Redacts() != msg.ID() {
		t.Errorf("round trip: %s naming %q, want %s naming %s", again.ID(), again.Redacts(), red.ID(), msg.ID())
	}
	if err := Verify(again); err != nil {
		t.Errorf("Verify: %v", err)
	}
	pl, err := PowerLevelsFrom(r.lookup)
	if err != nil {
		t.Fatal(err)
	}
	if !CanApplyRedaction(red, msg, pl) {
		t.Errorf("the redaction does not apply to its target")
	}
	redacted, err := red.Redacted()
	if err != nil {
		t.Fatal(err)
	}
	if redacted.Redacts() != "" || strings.Contains(string(redacted.JSON()), "redacts") {
		t.Errorf("a redacted v10 redaction still names %q: %s", redacted.Redacts(), redacted.JSON())
	}

	t.Run("in v10 the top level wins over content", func(t *testing.T) {
		other := "$" + strings.Repeat("C", 43)
		raw := editJSON(t, red.JSON(), func(m map[string]any) { m["content"].(map[string]any)["redacts"] = other })
		if e := mustParse(t, string(raw), V10); e.Redacts() != msg.ID() {
			t.Errorf("Redacts = %q, want the top-level %s", e.Redacts(), msg.ID())
		}
	})
	t.Run("in v11 the top level means nothing", func(t *testing.T) {
		m := validPDU()
		m["type"], m["redacts"] = "m.room.redaction", msg.ID()
		raw, _ := json.Marshal(m)
		if e := mustParse(t, string(raw), V11); e.Redacts() != "" {
			t.Errorf("Redacts = %q, want none", e.Redacts())
		}
	})
	t.Run("a v10 redaction whose redacts is not an event ID is refused", func(t *testing.T) {
		for _, bad := range []any{1, "not-an-id", ""} {
			raw := editJSON(t, red.JSON(), func(m map[string]any) { m["redacts"] = bad })
			if _, err := ParseEvent(raw, V10); !errors.Is(err, ErrBadFormat) {
				t.Errorf("redacts %v: ParseEvent = %v, want ErrBadFormat", bad, err)
			}
		}
	})
	t.Run("v11 Build leaves the top level alone", func(t *testing.T) {
		r11 := newTestRoom(t, V11)
		e := r11.build(alice, "m.room.redaction", "-", `{"redacts":"`+msg.ID()+`"}`)
		var top map[string]json.RawMessage
		json.Unmarshal(e.JSON(), &top)
		if _, ok := top["redacts"]; ok {
			t.Errorf("a v11 redaction has a top-level redacts: %s", e.JSON())
		}
	})
}
