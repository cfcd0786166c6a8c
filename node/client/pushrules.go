package client

import (
	"bytes"
	"encoding/json"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/parley-p2p/parley/errs"
	"github.com/parley-p2p/parley/rooms"
	"github.com/parley-p2p/parley/webui"
)

// Push rules: the spec's server-default rules (v1.16 "Predefined
// rules"), the user's own rules and changes to the defaults (kept as the
// account data m.push_rules, in the form storedRules), and an evaluator
// that says whether an event notifies or highlights a user.

const (
	// maxUserPushRules bounds the rules a user may add, all kinds
	// together; maxPushRuleBytes bounds each one's JSON.
	maxUserPushRules = 200
	maxPushRuleBytes = 4 << 10
)

// storedRules is what the node keeps of a user's push rules: the rules
// they added, by kind in priority order, and what they changed of the
// server-default ones (keyed "kind/rule_id").
type storedRules struct {
	User     map[string][]webui.PushRule `json:"user,omitempty"`
	Defaults map[string]ruleChange       `json:"defaults,omitempty"`
}

type ruleChange struct {
	Enabled *bool             `json:"enabled,omitempty"`
	Actions []json.RawMessage `json:"actions"` // nil: unchanged; [] stays [] (no omitempty)
}

func raws(vs ...string) []json.RawMessage {
	out := make([]json.RawMessage, len(vs))
	for k, v := range vs {
		out[k] = json.RawMessage(v)
	}
	return out
}

func match(key, pattern string) webui.PushCondition {
	return webui.PushCondition{Kind: "event_match", Key: key, Pattern: &pattern}
}

func propIs(key, value string) webui.PushCondition {
	return webui.PushCondition{Kind: "event_property_is", Key: key, Value: json.RawMessage(value)}
}

const (
	actNotify    = `"notify"`
	actHighlight = `{"set_tweak":"highlight"}`
	actSound     = `{"set_tweak":"sound","value":"default"}`
)

// defaultRules is the spec's predefined rule set for a user, in priority
// order within each kind.
func defaultRules(userID string) webui.PushRuleset {
	rule := func(id string, conds []webui.PushCondition, actions ...string) webui.PushRule {
		if conds == nil {
			conds = []webui.PushCondition{}
		}
		return webui.PushRule{RuleID: id, Default: true, Enabled: true, Conditions: conds, Actions: raws(actions...)}
	}
	userJSON, _ := json.Marshal(userID)
	master := rule(".m.rule.master", nil)
	master.Enabled = false
	localpart := strings.TrimPrefix(userID, "@")
	localpart, _, _ = strings.Cut(localpart, ":")
	containsUserName := webui.PushRule{RuleID: ".m.rule.contains_user_name", Default: true, Enabled: true,
		Pattern: &localpart, Actions: raws(actNotify, actSound, actHighlight)}
	return webui.PushRuleset{
		Override: []webui.PushRule{
			master,
			rule(".m.rule.suppress_notices", []webui.PushCondition{match("content.msgtype", "m.notice")}),
			rule(".m.rule.invite_for_me", []webui.PushCondition{
				match("type", "m.room.member"), match("content.membership", "invite"), match("state_key", userID),
			}, actNotify, actSound),
			rule(".m.rule.member_event", []webui.PushCondition{match("type", "m.room.member")}),
			rule(".m.rule.is_user_mention", []webui.PushCondition{
				{Kind: "event_property_contains", Key: `content.m\.mentions.user_ids`, Value: userJSON},
			}, actNotify, actHighlight, actSound),
			rule(".m.rule.contains_display_name", []webui.PushCondition{{Kind: "contains_display_name"}}, actNotify, actHighlight, actSound),
			rule(".m.rule.is_room_mention", []webui.PushCondition{
				propIs(`content.m\.mentions.room`, "true"), {Kind: "sender_notification_permission", Key: "room"},
			}, actNotify, actHighlight),
			rule(".m.rule.roomnotif", []webui.PushCondition{
				{Kind: "sender_notification_permission", Key: "room"}, match("content.body", "@room"),
			}, actNotify, actHighlight),
			rule(".m.rule.tombstone", []webui.PushCondition{match("type", "m.room.tombstone"), match("state_key", "")}, actNotify, actHighlight),
			rule(".m.rule.reaction", []webui.PushCondition{match("type", "m.reaction")}),
			rule(".m.rule.room.server_acl", []webui.PushCondition{match("type", "m.room.server_acl"), match("state_key", "")}),
			rule(".m.rule.suppress_edits", []webui.PushCondition{propIs(`content.m\.relates_to.rel_type`, `"m.replace"`)}),
		},
		Content: []webui.PushRule{containsUserName},
		Room:    []webui.PushRule{},
		Sender:  []webui.PushRule{},
		Underride: []webui.PushRule{
			rule(".m.rule.call", []webui.PushCondition{match("type", "m.call.invite")}, actNotify, `{"set_tweak":"sound","value":"ring"}`),
			rule(".m.rule.encrypted_room_one_to_one", []webui.PushCondition{
				{Kind: "room_member_count", Is: "2"}, match("type", "m.room.encrypted"),
			}, actNotify, actSound),
			rule(".m.rule.room_one_to_one", []webui.PushCondition{
				{Kind: "room_member_count", Is: "2"}, match("type", "m.room.message"),
			}, actNotify, actSound),
			rule(".m.rule.message", []webui.PushCondition{match("type", "m.room.message")}, actNotify),
			rule(".m.rule.encrypted", []webui.PushCondition{match("type", "m.room.encrypted")}, actNotify),
		},
	}
}

// kindRules returns the slice of a ruleset that holds a kind.
func kindRules(rs *webui.PushRuleset, kind string) *[]webui.PushRule {
	switch kind {
	case "override":
		return &rs.Override
	case "content":
		return &rs.Content
	case "room":
		return &rs.Room
	case "sender":
		return &rs.Sender
	case "underride":
		return &rs.Underride
	}
	return nil
}

// render builds the user's full ruleset: in each kind the user's rules
// come before the server-default ones, except the master rule, which
// stays first of all.
func (sr *storedRules) render(userID string) *webui.PushRuleset {
	rs := defaultRules(userID)
	for _, kind := range webui.PushRuleKinds {
		rules := kindRules(&rs, kind)
		for k := range *rules {
			r := &(*rules)[k]
			if c, ok := sr.Defaults[kind+"/"+r.RuleID]; ok {
				if c.Enabled != nil {
					r.Enabled = *c.Enabled
				}
				if c.Actions != nil {
					r.Actions = c.Actions
				}
			}
		}
		user := sr.User[kind]
		at := 0
		if kind == "override" {
			at = 1
		}
		*rules = slices.Insert(*rules, at, user...)
	}
	return &rs
}

// find locates a rule: in the user's rules (user true, at its index) or
// among the defaults.
func (sr *storedRules) find(userID, kind, ruleID string) (rule *webui.PushRule, user bool, at int) {
	for k, r := range sr.User[kind] {
		if r.RuleID == ruleID {
			return &sr.User[kind][k], true, k
		}
	}
	rs := sr.render(userID)
	for _, r := range *kindRules(rs, kind) {
		if r.RuleID == ruleID && r.Default {
			return &r, false, -1
		}
	}
	return nil, false, -1
}

func (sr *storedRules) count() int {
	n := 0
	for _, rules := range sr.User {
		n += len(rules)
	}
	return n
}

// cleanActions checks a rule's actions ("notify" or a set_tweak object)
// and strips the historical "dont_notify" and "coalesce", as the spec
// asks.
func cleanActions(actions []json.RawMessage) ([]json.RawMessage, error) {
	if len(actions) > 16 {
		return nil, errs.Invalidf("a push rule has at most 16 actions")
	}
	out := make([]json.RawMessage, 0, len(actions))
	for _, a := range actions {
		var s string
		if json.Unmarshal(a, &s) == nil {
			switch s {
			case "notify":
				out = append(out, a)
			case "dont_notify", "coalesce":
			default:
				return nil, errs.Invalidf("unknown push rule action %q", s)
			}
			continue
		}
		var tw struct {
			SetTweak string `json:"set_tweak"`
		}
		if json.Unmarshal(a, &tw) != nil || tw.SetTweak == "" {
			return nil, errs.Invalidf("a push rule action is a string or a set_tweak object")
		}
		out = append(out, a)
	}
	return out, nil
}

// pushEnv is what conditions need beyond the event itself.
type pushEnv struct {
	userID      string
	displayName string
	memberCount int
	// pl are the room's power levels; nil: no sender has permission.
	pl *rooms.PowerLevels
}

// pushVerdict is what a user's rules say of an event.
type pushVerdict struct{ notify, highlight bool }

// evaluate runs the ruleset over an event (its client JSON, parsed with
// UseNumber) and returns what the first matching enabled rule says.
func evaluate(rs *webui.PushRuleset, ev map[string]any, env *pushEnv) pushVerdict {
	actions, _ := matchActions(rs, ev, env)
	return verdictOf(actions)
}

// matchActions returns the actions of the first enabled rule that
// matches the event; ok is false when none does.
func matchActions(rs *webui.PushRuleset, ev map[string]any, env *pushEnv) (actions []json.RawMessage, ok bool) {
	roomID, _ := ev["room_id"].(string)
	sender, _ := ev["sender"].(string)
	for _, kind := range webui.PushRuleKinds {
		for _, r := range *kindRules(rs, kind) {
			if !r.Enabled {
				continue
			}
			var ok bool
			switch kind {
			case "override", "underride":
				ok = allMatch(r.Conditions, ev, env)
			case "content":
				ok = r.Pattern != nil && condMatch(match("content.body", *r.Pattern), ev, env)
			case "room":
				ok = r.RuleID == roomID
			case "sender":
				ok = r.RuleID == sender
			}
			if ok && legacyMention[r.RuleID] && hasMentions(ev) {
				ok = false // v1.7: only for events without m.mentions
			}
			if ok {
				return r.Actions, true
			}
		}
	}
	return nil, false
}

// legacyMention are the default rules the spec deprecated in v1.7: they
// apply only to events that carry no m.mentions.
var legacyMention = map[string]bool{".m.rule.contains_display_name": true, ".m.rule.roomnotif": true, ".m.rule.contains_user_name": true}

func hasMentions(ev map[string]any) bool {
	_, ok := lookup(ev, `content.m\.mentions`)
	return ok
}

func verdictOf(actions []json.RawMessage) pushVerdict {
	var v pushVerdict
	for _, a := range actions {
		var s string
		if json.Unmarshal(a, &s) == nil {
			v.notify = v.notify || s == "notify" // dont_notify and coalesce mean nothing
			continue
		}
		var tw struct {
			SetTweak string           `json:"set_tweak"`
			Value    *json.RawMessage `json:"value"`
		}
		if json.Unmarshal(a, &tw) == nil && tw.SetTweak == "highlight" {
			v.highlight = tw.Value == nil || string(*tw.Value) == "true"
		}
	}
	v.highlight = v.highlight && v.notify
	return v
}

func allMatch(conds []webui.PushCondition, ev map[string]any, env *pushEnv) bool {
	for _, c := range conds {
		if !condMatch(c, ev, env) {
			return false
		}
	}
	return true
}

// condMatch evaluates one condition; a kind it does not know never
// matches, as the spec asks.
func condMatch(c webui.PushCondition, ev map[string]any, env *pushEnv) bool {
	switch c.Kind {
	case "event_match":
		v, ok := property(ev, c.Key).(string)
		if !ok || c.Pattern == nil {
			return false
		}
		return globMatch(*c.Pattern, v, c.Key == "content.body")
	case "event_property_is":
		v, found := lookup(ev, c.Key)
		return found && scalarEqual(v, c.Value)
	case "event_property_contains":
		arr, ok := property(ev, c.Key).([]any)
		if !ok {
			return false
		}
		for _, v := range arr {
			if scalarEqual(v, c.Value) {
				return true
			}
		}
		return false
	case "contains_display_name":
		body, ok := property(ev, "content.body").(string)
		return ok && env.displayName != "" && globMatch(env.displayName, body, true)
	case "room_member_count":
		return memberCountIs(c.Is, env.memberCount)
	case "sender_notification_permission":
		sender, _ := ev["sender"].(string)
		return env.pl != nil && env.pl.UserLevel(sender) >= env.pl.NotificationLevel(c.Key)
	}
	return false
}

// splitKey splits a dotted key, where "\." is a literal dot and "\\" a
// backslash.
func splitKey(key string) []string {
	var parts []string
	var cur strings.Builder
	for i := 0; i < len(key); i++ {
		switch c := key[i]; {
		case c == '\\' && i+1 < len(key) && (key[i+1] == '.' || key[i+1] == '\\'):
			cur.WriteByte(key[i+1])
			i++
		case c == '.':
			parts = append(parts, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	return append(parts, cur.String())
}

func lookup(ev map[string]any, key string) (any, bool) {
	var cur any = ev
	for _, p := range splitKey(key) {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[p]; !ok {
			return nil, false
		}
	}
	return cur, true
}

func property(ev map[string]any, key string) any {
	v, _ := lookup(ev, key)
	return v
}

// scalarEqual compares an event's value with a condition's: strings,
// integers, booleans and null, exactly.
func scalarEqual(v any, want json.RawMessage) bool {
	switch v.(type) {
	case map[string]any, []any:
		return false
	}
	got, err := json.Marshal(v)
	if err != nil {
		return false
	}
	var w bytes.Buffer
	if json.Compact(&w, want) != nil {
		return false
	}
	return bytes.Equal(got, w.Bytes())
}

func memberCountIs(is string, n int) bool {
	op := strings.TrimRight(is, "0123456789")
	want, err := strconv.Atoi(is[len(op):])
	if err != nil {
		return false
	}
	switch op {
	case "", "==":
		return n == want
	case "<":
		return n < want
	case ">":
		return n > want
	case "<=":
		return n <= want
	case ">=":
		return n >= want
	}
	return false
}

// globCache holds compiled glob patterns; it is cleared when full, so it
// never holds more than globCacheSize.
var (
	globMu    sync.Mutex
	globCache = map[string]*regexp.Regexp{}
)

const globCacheSize = 1024

// globMatch matches a glob (* and ?) case-insensitively: against the
// whole value, or, for words, anywhere between word boundaries (how the
// spec matches content.body and display names).
func globMatch(glob, value string, words bool) bool {
	key := glob
	if words {
		key = "w\x00" + glob
	}
	globMu.Lock()
	re, ok := globCache[key]
	globMu.Unlock()
	if !ok {
		pat := regexp.QuoteMeta(glob)
		pat = strings.ReplaceAll(pat, `\*`, ".*?")
		pat = strings.ReplaceAll(pat, `\?`, ".")
		if words {
			pat = `(?is)(^|\W)` + pat + `(\W|$)`
		} else {
			pat = `(?is)^` + pat + `$`
		}
		var err error
		if re, err = regexp.Compile(pat); err != nil {
			return false
		}
		globMu.Lock()
		if len(globCache) >= globCacheSize {
			clear(globCache)
		}
		globCache[key] = re
		globMu.Unlock()
	}
	return re.MatchString(value)
}
