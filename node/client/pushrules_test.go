package client

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/parley-p2p/parley/webui"
)

func parseEvent(t *testing.T, s string) map[string]any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader([]byte(s)))
	dec.UseNumber()
	var ev map[string]any
	if err := dec.Decode(&ev); err != nil {
		t.Fatal(err)
	}
	return ev
}

func TestConditions(t *testing.T) {
	pat := func(s string) *string { return &s }
	env := &pushEnv{userID: "@alice:a", displayName: "Alice Liddell", memberCount: 3}
	ev := `{"type":"m.room.message","sender":"@bob:b","room_id":"!r:a","content":{"msgtype":"m.text","body":"Hello alice, and Alice Liddell!","n":42,"ok":true,"nothing":null,"m.mentions":{"user_ids":["@alice:a"]},"tags":["x","y"]}}`
	tests := []struct {
		name string
		cond webui.PushCondition
		want bool
	}{
		{"event_match matches a whole value", webui.PushCondition{Kind: "event_match", Key: "type", Pattern: pat("m.room.message")}, true},
		{"event_match globs with * and ?", webui.PushCondition{Kind: "event_match", Key: "type", Pattern: pat("m.room.?ess*")}, true},
		{"event_match is case-insensitive", webui.PushCondition{Kind: "event_match", Key: "content.msgtype", Pattern: pat("M.TEXT")}, true},
		{"event_match does not match part of a value", webui.PushCondition{Kind: "event_match", Key: "type", Pattern: pat("m.room")}, false},
		{"event_match on the body matches a word", webui.PushCondition{Kind: "event_match", Key: "content.body", Pattern: pat("alice")}, true},
		{"event_match on the body needs word boundaries", webui.PushCondition{Kind: "event_match", Key: "content.body", Pattern: pat("lice")}, false},
		{"event_match on a missing key fails", webui.PushCondition{Kind: "event_match", Key: "content.nope", Pattern: pat("*")}, false},
		{"event_match on a non-string fails", webui.PushCondition{Kind: "event_match", Key: "content.n", Pattern: pat("*")}, false},
		{"event_property_is matches an integer", webui.PushCondition{Kind: "event_property_is", Key: "content.n", Value: json.RawMessage(`42`)}, true},
		{"event_property_is matches a boolean", webui.PushCondition{Kind: "event_property_is", Key: "content.ok", Value: json.RawMessage(`true`)}, true},
		{"event_property_is matches null", webui.PushCondition{Kind: "event_property_is", Key: "content.nothing", Value: json.RawMessage(`null`)}, true},
		{"event_property_is does not match a missing key to null", webui.PushCondition{Kind: "event_property_is", Key: "content.absent", Value: json.RawMessage(`null`)}, false},
		{"event_property_is tells a string from a number", webui.PushCondition{Kind: "event_property_is", Key: "content.n", Value: json.RawMessage(`"42"`)}, false},
		{"a dot escaped in a key is part of the name", webui.PushCondition{Kind: "event_property_contains", Key: `content.m\.mentions.user_ids`, Value: json.RawMessage(`"@alice:a"`)}, true},
		{"event_property_contains fails for a value not in the array", webui.PushCondition{Kind: "event_property_contains", Key: "content.tags", Value: json.RawMessage(`"z"`)}, false},
		{"contains_display_name finds the name as words", webui.PushCondition{Kind: "contains_display_name"}, true},
		{"room_member_count equals", webui.PushCondition{Kind: "room_member_count", Is: "3"}, true},
		{"room_member_count below", webui.PushCondition{Kind: "room_member_count", Is: "<3"}, false},
		{"room_member_count at least", webui.PushCondition{Kind: "room_member_count", Is: ">=3"}, true},
		{"room_member_count with a bad operator fails", webui.PushCondition{Kind: "room_member_count", Is: "~3"}, false},
		{"sender_notification_permission fails without power levels", webui.PushCondition{Kind: "sender_notification_permission", Key: "room"}, false},
		{"an unknown kind never matches", webui.PushCondition{Kind: "org.example.future"}, false},
	}
	parsed := parseEvent(t, ev)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := condMatch(tt.cond, parsed, env); got != tt.want {
				t.Errorf("condMatch = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestDefaultRulesVerdicts(t *testing.T) {
	rs := (&storedRules{}).render("@alice:a")
	env := &pushEnv{userID: "@alice:a", displayName: "Alice", memberCount: 2}
	tests := []struct {
		name, event string
		want        pushVerdict
	}{
		{"a message in a one-to-one room notifies", `{"type":"m.room.message","sender":"@bob:b","content":{"msgtype":"m.text","body":"hi"}}`, pushVerdict{notify: true}},
		{"a notice does not notify", `{"type":"m.room.message","sender":"@bob:b","content":{"msgtype":"m.notice","body":"hi"}}`, pushVerdict{}},
		{"a mention highlights", `{"type":"m.room.message","sender":"@bob:b","content":{"msgtype":"m.text","body":"x","m.mentions":{"user_ids":["@alice:a"]}}}`, pushVerdict{notify: true, highlight: true}},
		{"the user's localpart in the body highlights", `{"type":"m.room.message","sender":"@bob:b","content":{"msgtype":"m.text","body":"ping alice"}}`, pushVerdict{notify: true, highlight: true}},
		{"the legacy name rules do not apply to an event with m.mentions", `{"type":"m.room.message","sender":"@bob:b","content":{"msgtype":"m.text","body":"ping alice","m.mentions":{}}}`, pushVerdict{notify: true}},
		{"an edit does not notify", `{"type":"m.room.message","sender":"@bob:b","content":{"msgtype":"m.text","body":"* hi","m.relates_to":{"rel_type":"m.replace","event_id":"$x"}}}`, pushVerdict{}},
		{"a reaction does not notify", `{"type":"m.reaction","sender":"@bob:b","content":{}}`, pushVerdict{}},
		{"an invite for the user notifies", `{"type":"m.room.member","state_key":"@alice:a","sender":"@bob:b","content":{"membership":"invite"}}`, pushVerdict{notify: true}},
		{"another member event does not", `{"type":"m.room.member","state_key":"@carol:c","sender":"@carol:c","content":{"membership":"join"}}`, pushVerdict{}},
		{"a tombstone highlights", `{"type":"m.room.tombstone","state_key":"","sender":"@bob:b","content":{}}`, pushVerdict{notify: true, highlight: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := evaluate(rs, parseEvent(t, tt.event), env); got != tt.want {
				t.Errorf("evaluate = %+v, want %+v", got, tt.want)
			}
		})
	}
	t.Run("the master rule, enabled, mutes everything", func(t *testing.T) {
		on := true
		sr := &storedRules{Defaults: map[string]ruleChange{"override/.m.rule.master": {Enabled: &on}}}
		ev := `{"type":"m.room.message","sender":"@bob:b","content":{"msgtype":"m.text","body":"alice!"}}`
		if got := evaluate(sr.render("@alice:a"), parseEvent(t, ev), env); got != (pushVerdict{}) {
			t.Errorf("evaluate = %+v, want nothing", got)
		}
	})
	t.Run("a sender rule with no actions mutes that sender", func(t *testing.T) {
		sr := &storedRules{User: map[string][]webui.PushRule{"sender": {{RuleID: "@bob:b", Enabled: true, Actions: []json.RawMessage{}}}}}
		ev := `{"type":"m.room.message","sender":"@bob:b","content":{"msgtype":"m.text","body":"hi"}}`
		if got := evaluate(sr.render("@alice:a"), parseEvent(t, ev), env); got != (pushVerdict{}) {
			t.Errorf("evaluate = %+v, want nothing", got)
		}
	})
}

func TestHistoricalActionsAreStripped(t *testing.T) {
	got, err := cleanActions(raws(`"dont_notify"`, `"coalesce"`, actNotify))
	if err != nil || len(got) != 1 || string(got[0]) != actNotify {
		t.Fatalf("cleanActions = %s, %v; want only notify", got, err)
	}
	if v := verdictOf(raws(`"coalesce"`)); v.notify {
		t.Error("coalesce notifies")
	}
	if _, err := cleanActions(raws(`"explode"`)); err == nil {
		t.Error("an unknown action was taken")
	}
}

func TestPushRuleJSONKeepsEmptyConditions(t *testing.T) {
	b, err := json.Marshal(webui.PushRule{RuleID: ".m.rule.master", Conditions: []webui.PushCondition{}})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(`"conditions":[]`)) || !bytes.Contains(b, []byte(`"actions":[]`)) {
		t.Errorf("master rule JSON = %s, want empty conditions and actions as []", b)
	}
}
