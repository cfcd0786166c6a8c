package webui

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
)

// fakeUserData records what reaches it; it holds nothing.
type fakeUserData struct{ calls []string }

func (f *fakeUserData) note(format string, args ...any) error {
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
	return nil
}

func (f *fakeUserData) AccountData(s *Session, roomID, typ string) (json.RawMessage, error) {
	return json.RawMessage(`{"a":1}`), f.note("get %s %s", roomID, typ)
}
func (f *fakeUserData) SetAccountData(s *Session, roomID, typ string, content json.RawMessage) error {
	return f.note("set %s %s %s", roomID, typ, content)
}
func (f *fakeUserData) PushRules(s *Session) (*PushRuleset, error) {
	return &PushRuleset{Override: []PushRule{{RuleID: ".m.rule.master", Default: true, Conditions: []PushCondition{}}}}, f.note("rules")
}
func (f *fakeUserData) PushRule(s *Session, kind, ruleID string) (*PushRule, error) {
	return &PushRule{RuleID: ruleID, Enabled: true}, f.note("rule %s %s", kind, ruleID)
}
func (f *fakeUserData) PutPushRule(s *Session, kind string, rule PushRule, before, after string) error {
	return f.note("put %s %s before=%s after=%s", kind, rule.RuleID, before, after)
}
func (f *fakeUserData) DeletePushRule(s *Session, kind, ruleID string) error {
	return f.note("delete %s %s", kind, ruleID)
}
func (f *fakeUserData) SetPushRuleEnabled(s *Session, kind, ruleID string, enabled bool) error {
	return f.note("enabled %s %s %v", kind, ruleID, enabled)
}
func (f *fakeUserData) SetPushRuleActions(s *Session, kind, ruleID string, actions []json.RawMessage) error {
	return f.note("actions %s %s %d", kind, ruleID, len(actions))
}
func (f *fakeUserData) Receipt(s *Session, roomID, receiptType, eventID, threadID string) error {
	return f.note("receipt %s %s %s %s", roomID, receiptType, eventID, threadID)
}
func (f *fakeUserData) Notifications(s *Session, from string, limit int, only string) (*NotificationsResponse, error) {
	return &NotificationsResponse{Notifications: []Notification{}}, f.note("notifications %s %d %s", from, limit, only)
}
func (f *fakeUserData) Pushers(s *Session) ([]json.RawMessage, error) { return nil, f.note("pushers") }
func (f *fakeUserData) SetPusher(s *Session, p Pusher) error {
	return f.note("pusher %s %s %v", p.AppID, p.PushKey, p.Kind != nil)
}

func TestUserDataRequests(t *testing.T) {
	alice := "/_matrix/client/v3/user/" + userID("alice")
	tests := []struct {
		name, method, path, body string
		status                   int
		code                     string // for errors
		call                     string // what the backend must hear; "" for nothing
	}{
		{"global account data is set", "PUT", alice + "/account_data/org.example.x", `{"b":2}`, 200, "", `set  org.example.x {"b":2}`},
		{"room account data is read", "GET", alice + "/rooms/%21r:example.org/account_data/m.tag", "", 200, "", "get !r:example.org m.tag"},
		{"another user's account data is forbidden", "GET", "/_matrix/client/v3/user/@bob:example.org/account_data/x", "", 403, "M_FORBIDDEN", ""},
		{"m.push_rules cannot be set", "PUT", alice + "/account_data/m.push_rules", `{}`, 405, "M_BAD_JSON", ""},
		{"m.fully_read cannot be set", "PUT", alice + "/rooms/%21r:example.org/account_data/m.fully_read", `{}`, 405, "M_BAD_JSON", ""},
		{"a room ID must be one", "GET", alice + "/rooms/lobby/account_data/m.tag", "", 400, "M_INVALID_PARAM", ""},
		{"account data must be an object", "PUT", alice + "/account_data/x", `[1]`, 400, "M_BAD_JSON", ""},
		{"the rules are read under global", "GET", "/_matrix/client/v3/pushrules/", "", 200, "", "rules"},
		{"the global scope is read alone", "GET", "/_matrix/client/v3/pushrules/global/", "", 200, "", "rules"},
		{"a rule is put with its place", "PUT", "/_matrix/client/v3/pushrules/global/override/r1?before=r0", `{"actions":["notify"],"conditions":[]}`, 200, "", "put override r1 before=r0 after="},
		{"a rule without actions is refused", "PUT", "/_matrix/client/v3/pushrules/global/override/r1", `{}`, 400, "M_MISSING_PARAM", ""},
		{"an unknown kind is refused", "GET", "/_matrix/client/v3/pushrules/global/sideways/r1", "", 400, "M_INVALID_PARAM", ""},
		{"an unknown scope is refused", "DELETE", "/_matrix/client/v3/pushrules/device/override/r1", "", 400, "M_INVALID_PARAM", ""},
		{"enabled is set", "PUT", "/_matrix/client/v3/pushrules/global/override/r1/enabled", `{"enabled":false}`, 200, "", "enabled override r1 false"},
		{"enabled must be given", "PUT", "/_matrix/client/v3/pushrules/global/override/r1/enabled", `{}`, 400, "M_MISSING_PARAM", ""},
		{"actions are set", "PUT", "/_matrix/client/v3/pushrules/global/underride/r1/actions", `{"actions":[]}`, 200, "", "actions underride r1 0"},
		{"a receipt is taken", "POST", "/_matrix/client/v3/rooms/%21r:example.org/receipt/m.read/$e", `{"thread_id":"main"}`, 200, "", "receipt !r:example.org m.read $e main"},
		{"an unknown receipt type is 400", "POST", "/_matrix/client/v3/rooms/%21r:example.org/receipt/m.seen/$e", `{}`, 400, "M_INVALID_PARAM", ""},
		{"a thread ID must be main or an event", "POST", "/_matrix/client/v3/rooms/%21r:example.org/receipt/m.read/$e", `{"thread_id":"x"}`, 400, "M_INVALID_PARAM", ""},
		{"read markers set the fully-read marker", "POST", "/_matrix/client/v3/rooms/%21r:example.org/read_markers", `{"m.fully_read":"$e"}`, 200, "", "receipt !r:example.org m.fully_read $e "},
		{"a read marker must be an event ID", "POST", "/_matrix/client/v3/rooms/%21r:example.org/read_markers", `{"m.read":5}`, 400, "M_BAD_JSON", ""},
		{"notifications are listed", "GET", "/_matrix/client/v3/notifications?from=123&limit=5&only=highlight", "", 200, "", "notifications 123 5 highlight"},
		{"notifications take only highlight", "GET", "/_matrix/client/v3/notifications?only=all", "", 400, "M_INVALID_PARAM", ""},
		{"a pusher is deleted with kind null", "POST", "/_matrix/client/v3/pushers/set", `{"pushkey":"k","app_id":"a","kind":null}`, 200, "", "pusher a k false"},
		{"a pusher needs its display names", "POST", "/_matrix/client/v3/pushers/set", `{"pushkey":"k","app_id":"a","kind":"http","data":{}}`, 400, "M_MISSING_PARAM", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &record{}
			acc := newFakeAccounts(rec)
			tok := acc.addUser("alice", "pw")
			ud := &fakeUserData{}
			h := New(Config{Addr: testAddr}, Backends{Accounts: acc, UserData: ud}).Handler()
			r := httptest.NewRequest(tt.method, tt.path, strings.NewReader(tt.body))
			r.Host = testAddr
			r.Header.Set("Authorization", "Bearer "+tok)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if tt.code != "" {
				wantError(t, w, tt.status, tt.code)
			} else {
				wantStatus(t, w, tt.status)
			}
			var got string
			if len(ud.calls) > 0 {
				got = ud.calls[0]
			}
			if got != tt.call {
				t.Errorf("backend heard %q, want %q", got, tt.call)
			}
		})
	}
}

func TestPushRulesAnswerHasEveryKind(t *testing.T) {
	rec := &record{}
	acc := newFakeAccounts(rec)
	tok := acc.addUser("alice", "pw")
	h := New(Config{Addr: testAddr}, Backends{Accounts: acc, UserData: &fakeUserData{}}).Handler()
	r := httptest.NewRequest("GET", "/_matrix/client/v3/pushrules/", nil)
	r.Host = testAddr
	r.Header.Set("Authorization", "Bearer "+tok)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	wantStatus(t, w, 200)
	var got struct {
		Global map[string]json.RawMessage `json:"global"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	for _, kind := range PushRuleKinds {
		if v := got.Global[kind]; len(v) == 0 || v[0] != '[' {
			t.Errorf("global.%s = %s, want a list (never null)", kind, v)
		}
	}
	if !strings.Contains(string(got.Global["override"]), `"conditions":[]`) {
		t.Errorf("the master rule lost its empty conditions: %s", got.Global["override"])
	}
}
