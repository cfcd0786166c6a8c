package webui

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/parley-p2p/parley/errs"
)

// UserData is the data a node keeps for each of its users: account data
// (global and per room), push rules, read receipts and markers, pushers.
type UserData interface {
	// AccountData reads one entry (roomID "" for global); errs.NotFound
	// when unset.
	AccountData(s *Session, roomID, typ string) (json.RawMessage, error)
	SetAccountData(s *Session, roomID, typ string, content json.RawMessage) error

	PushRules(s *Session) (*PushRuleset, error)
	PushRule(s *Session, kind, ruleID string) (*PushRule, error)
	// PutPushRule creates or replaces a user-defined rule, placed before
	// or after another user-defined rule of its kind when asked.
	PutPushRule(s *Session, kind string, rule PushRule, before, after string) error
	DeletePushRule(s *Session, kind, ruleID string) error
	SetPushRuleEnabled(s *Session, kind, ruleID string, enabled bool) error
	SetPushRuleActions(s *Session, kind, ruleID string, actions []json.RawMessage) error

	// Receipt records a read receipt (m.read, m.read.private) or the
	// fully-read marker (m.fully_read), for a thread when threadID is set.
	Receipt(s *Session, roomID, receiptType, eventID, threadID string) error

	Pushers(s *Session) ([]json.RawMessage, error)
	SetPusher(s *Session, p Pusher) error

	// Notifications lists the events that notified the user, newest
	// first, below the from token; only is "" or "highlight".
	Notifications(s *Session, from string, limit int, only string) (*NotificationsResponse, error)
}

// Notification is one entry of GET /notifications.
type Notification struct {
	Actions    []json.RawMessage `json:"actions"`
	Event      ClientEvent       `json:"event"`
	ProfileTag string            `json:"profile_tag,omitempty"`
	Read       bool              `json:"read"`
	RoomID     string            `json:"room_id"`
	TS         int64             `json:"ts"`
}

// NotificationsResponse is the reply to GET /notifications.
type NotificationsResponse struct {
	NextToken     string         `json:"next_token,omitempty"`
	Notifications []Notification `json:"notifications"`
}

// PushCondition is a condition of a push rule.
type PushCondition struct {
	Kind    string          `json:"kind"`
	Key     string          `json:"key,omitempty"`
	Pattern *string         `json:"pattern,omitempty"`
	Value   json.RawMessage `json:"value,omitempty"`
	Is      string          `json:"is,omitempty"`
}

// PushRule is a push rule as the API shows it.
type PushRule struct {
	RuleID     string            `json:"rule_id"`
	Default    bool              `json:"default"`
	Enabled    bool              `json:"enabled"`
	Conditions []PushCondition   `json:"conditions,omitempty"`
	Actions    []json.RawMessage `json:"actions"`
	Pattern    *string           `json:"pattern,omitempty"`
}

// MarshalJSON keeps an override or underride rule's empty conditions as
// [] (the master rule has none), which omitempty would drop, and actions
// never null.
func (r PushRule) MarshalJSON() ([]byte, error) {
	type plain PushRule
	p := plain(r)
	if p.Actions == nil {
		p.Actions = []json.RawMessage{}
	}
	b, err := json.Marshal(p)
	if err != nil || r.Conditions == nil || len(r.Conditions) > 0 {
		return b, err
	}
	return append(b[:len(b)-1], `,"conditions":[]}`...), nil
}

// PushRuleset is a user's rules, by kind, in priority order.
type PushRuleset struct {
	Override  []PushRule `json:"override"`
	Content   []PushRule `json:"content"`
	Room      []PushRule `json:"room"`
	Sender    []PushRule `json:"sender"`
	Underride []PushRule `json:"underride"`
}

// PushRuleKinds are the kinds of push rules, highest priority first.
var PushRuleKinds = []string{"override", "content", "room", "sender", "underride"}

// Pusher is the body of POST /pushers/set.
type Pusher struct {
	PushKey           string          `json:"pushkey"`
	Kind              *string         `json:"kind"`
	AppID             string          `json:"app_id"`
	AppDisplayName    string          `json:"app_display_name,omitempty"`
	DeviceDisplayName string          `json:"device_display_name,omitempty"`
	ProfileTag        string          `json:"profile_tag,omitempty"`
	Lang              string          `json:"lang,omitempty"`
	Data              json.RawMessage `json:"data,omitempty"`
	Append            bool            `json:"append,omitempty"`
}

// managedAccountData are the types the server controls: the spec answers
// 405 when a client sets them through the account data endpoints.
var managedAccountData = map[string]bool{"m.fully_read": true, "m.push_rules": true}

func (s *Server) accountDataScope(r *http.Request, sess *Session) (roomID, typ string, err error) {
	if r.PathValue("userId") != sess.UserID {
		return "", "", errs.Forbiddenf("cannot access another user's account data")
	}
	roomID = r.PathValue("roomId")
	if strings.Contains(r.Pattern, "{roomId}") && (!strings.HasPrefix(roomID, "!") || strings.ContainsRune(roomID, 0)) {
		return "", "", errs.Invalidf("%q is not a room ID", roomID)
	}
	typ = r.PathValue("type")
	if typ == "" || len(typ) > 255 || strings.ContainsRune(typ, 0) {
		return "", "", errs.Invalidf("account data type must be 1 to 255 bytes")
	}
	return roomID, typ, nil
}

func (s *Server) getAccountData(w http.ResponseWriter, r *http.Request, sess *Session) error {
	roomID, typ, err := s.accountDataScope(r, sess)
	if err != nil {
		return err
	}
	content, err := s.userdata.AccountData(sess, roomID, typ)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(content)
	return nil
}

func (s *Server) putAccountData(w http.ResponseWriter, r *http.Request, sess *Session) error {
	roomID, typ, err := s.accountDataScope(r, sess)
	if err != nil {
		return err
	}
	if managedAccountData[typ] {
		return Errorf(http.StatusMethodNotAllowed, "M_BAD_JSON", "%s is managed by the server and cannot be set here", typ)
	}
	content, err := readContent(r) // a JSON object of at most 64 KiB
	if err != nil {
		return err
	}
	if err := s.userdata.SetAccountData(sess, roomID, typ, content); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct{}{})
	return nil
}

func (s *Server) getPushRules(w http.ResponseWriter, r *http.Request, sess *Session) error {
	rs, err := s.userdata.PushRules(sess)
	if err != nil {
		return err
	}
	for _, l := range []*[]PushRule{&rs.Override, &rs.Content, &rs.Room, &rs.Sender, &rs.Underride} {
		if *l == nil {
			*l = []PushRule{} // clients iterate each kind: never null
		}
	}
	if r.PathValue("scope") != "" {
		writeJSON(w, http.StatusOK, rs)
		return nil
	}
	writeJSON(w, http.StatusOK, map[string]any{"global": rs})
	return nil
}

// pushRuleTarget checks the scope and kind of a push rule's path.
func pushRuleTarget(r *http.Request) (kind, ruleID string, err error) {
	if r.PathValue("scope") != "global" {
		return "", "", errs.Invalidf("the only push rule scope is global")
	}
	kind, ruleID = r.PathValue("kind"), r.PathValue("ruleId")
	if !isPushKind(kind) {
		return "", "", errs.Invalidf("unknown push rule kind %q", kind)
	}
	if ruleID == "" || len(ruleID) > 255 {
		return "", "", errs.Invalidf("a push rule ID must be 1 to 255 bytes")
	}
	return kind, ruleID, nil
}

func isPushKind(kind string) bool {
	for _, k := range PushRuleKinds {
		if k == kind {
			return true
		}
	}
	return false
}

func (s *Server) getPushRule(w http.ResponseWriter, r *http.Request, sess *Session) error {
	kind, ruleID, err := pushRuleTarget(r)
	if err != nil {
		return err
	}
	rule, err := s.userdata.PushRule(sess, kind, ruleID)
	if err != nil {
		return err
	}
	switch r.PathValue("attr") {
	case "enabled":
		writeJSON(w, http.StatusOK, map[string]bool{"enabled": rule.Enabled})
	case "actions":
		actions := rule.Actions
		if actions == nil {
			actions = []json.RawMessage{}
		}
		writeJSON(w, http.StatusOK, map[string]any{"actions": actions})
	default:
		writeJSON(w, http.StatusOK, rule)
	}
	return nil
}

func (s *Server) putPushRule(w http.ResponseWriter, r *http.Request, sess *Session) error {
	kind, ruleID, err := pushRuleTarget(r)
	if err != nil {
		return err
	}
	var body struct {
		Actions    []json.RawMessage `json:"actions"`
		Conditions []PushCondition   `json:"conditions"`
		Pattern    *string           `json:"pattern"`
	}
	if err := readJSON(r, &body); err != nil {
		return err
	}
	if body.Actions == nil {
		return errMissingParam("actions is required")
	}
	q := r.URL.Query()
	rule := PushRule{RuleID: ruleID, Enabled: true, Actions: body.Actions, Conditions: body.Conditions, Pattern: body.Pattern}
	if err := s.userdata.PutPushRule(sess, kind, rule, q.Get("before"), q.Get("after")); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct{}{})
	return nil
}

func (s *Server) deletePushRule(w http.ResponseWriter, r *http.Request, sess *Session) error {
	kind, ruleID, err := pushRuleTarget(r)
	if err != nil {
		return err
	}
	if err := s.userdata.DeletePushRule(sess, kind, ruleID); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct{}{})
	return nil
}

func (s *Server) putPushRuleEnabled(w http.ResponseWriter, r *http.Request, sess *Session) error {
	kind, ruleID, err := pushRuleTarget(r)
	if err != nil {
		return err
	}
	var body struct {
		Enabled *bool `json:"enabled"`
	}
	if err := readJSON(r, &body); err != nil {
		return err
	}
	if body.Enabled == nil {
		return errMissingParam("enabled is required")
	}
	if err := s.userdata.SetPushRuleEnabled(sess, kind, ruleID, *body.Enabled); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct{}{})
	return nil
}

func (s *Server) putPushRuleActions(w http.ResponseWriter, r *http.Request, sess *Session) error {
	kind, ruleID, err := pushRuleTarget(r)
	if err != nil {
		return err
	}
	var body struct {
		Actions []json.RawMessage `json:"actions"`
	}
	if err := readJSON(r, &body); err != nil {
		return err
	}
	if body.Actions == nil {
		return errMissingParam("actions is required")
	}
	if err := s.userdata.SetPushRuleActions(sess, kind, ruleID, body.Actions); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct{}{})
	return nil
}

// receiptTypes are the receipt types POST /receipt takes.
var receiptTypes = map[string]bool{"m.read": true, "m.read.private": true, "m.fully_read": true}

func (s *Server) postReceipt(w http.ResponseWriter, r *http.Request, sess *Session) error {
	typ := r.PathValue("receiptType")
	if !receiptTypes[typ] {
		return errs.Invalidf("unknown receipt type %q", typ)
	}
	var body struct {
		ThreadID string `json:"thread_id"`
	}
	if err := readJSON(r, &body); err != nil {
		return err
	}
	if body.ThreadID != "" && typ == "m.fully_read" {
		return errs.Invalidf("m.fully_read takes no thread_id")
	}
	if body.ThreadID != "" && body.ThreadID != "main" && !strings.HasPrefix(body.ThreadID, "$") {
		return errs.Invalidf("thread_id must be \"main\" or an event ID")
	}
	if err := s.userdata.Receipt(sess, r.PathValue("roomId"), typ, r.PathValue("eventId"), body.ThreadID); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct{}{})
	return nil
}

func (s *Server) postReadMarkers(w http.ResponseWriter, r *http.Request, sess *Session) error {
	var body map[string]json.RawMessage
	if err := readJSON(r, &body); err != nil {
		return err
	}
	roomID := r.PathValue("roomId")
	// m.fully_read last: it is the one clients care least to see move
	// before their receipt does.
	for _, typ := range []string{"m.read", "m.read.private", "m.fully_read"} {
		raw, ok := body[typ]
		if !ok || string(raw) == "null" {
			continue
		}
		var eventID string
		if err := json.Unmarshal(raw, &eventID); err != nil || eventID == "" {
			return errBadJSON(fmt.Errorf("%s must be an event ID", typ))
		}
		if err := s.userdata.Receipt(sess, roomID, typ, eventID, ""); err != nil {
			return err
		}
	}
	writeJSON(w, http.StatusOK, struct{}{})
	return nil
}

func (s *Server) getNotifications(w http.ResponseWriter, r *http.Request, sess *Session) error {
	q := r.URL.Query()
	limit := 0
	if n, ok, err := queryInt(q, "limit", 0); err != nil {
		return err
	} else if ok {
		limit = n
	}
	only := q.Get("only")
	if only != "" && only != "highlight" {
		return errs.Invalidf("only may be \"highlight\"")
	}
	resp, err := s.userdata.Notifications(sess, q.Get("from"), limit, only)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

func (s *Server) getPushers(w http.ResponseWriter, r *http.Request, sess *Session) error {
	ps, err := s.userdata.Pushers(sess)
	if err != nil {
		return err
	}
	if ps == nil {
		ps = []json.RawMessage{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"pushers": ps})
	return nil
}

func (s *Server) setPusher(w http.ResponseWriter, r *http.Request, sess *Session) error {
	var p Pusher
	if err := readJSON(r, &p); err != nil {
		return err
	}
	if p.PushKey == "" {
		return errMissingParam("pushkey is required")
	}
	if p.AppID == "" {
		return errMissingParam("app_id is required")
	}
	if p.Kind != nil {
		switch {
		case p.AppDisplayName == "":
			return errMissingParam("app_display_name is required")
		case p.DeviceDisplayName == "":
			return errMissingParam("device_display_name is required")
		case p.Lang == "":
			return errMissingParam("lang is required")
		case len(p.Data) == 0 || p.Data[0] != '{':
			return errMissingParam("data is required, a JSON object")
		}
	}
	if err := s.userdata.SetPusher(sess, p); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct{}{})
	return nil
}
