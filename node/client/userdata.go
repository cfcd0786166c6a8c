package client

import (
	"encoding/json"
	"errors"
	"net"
	"net/url"
	"slices"
	"strings"

	"github.com/parley-p2p/parley/errs"
	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/webui"
)

// Account data, push rules and pushers: per-user data kept on the node,
// never sent to other nodes.

const (
	// maxGlobalAccountData and maxRoomAccountData bound the types a user
	// may set, globally and in each room (values are at most 64 KiB:
	// webui reads them as event content). Room account data is only
	// taken for rooms the user has a membership in, so a user's whole
	// account data is bounded by the rooms the node holds.
	maxGlobalAccountData = 256
	maxRoomAccountData   = 64
	// maxPushers bounds a user's pushers.
	maxPushers = 16
)

// pushRulesType is the account data type under which a user's push rules
// are kept (as storedRules) and shown (rendered).
const pushRulesType = "m.push_rules"

// AccountData implements webui.UserData.
func (api *API) AccountData(s *webui.Session, roomID, typ string) (json.RawMessage, error) {
	var content json.RawMessage
	err := api.store.View(func(t *store.Txn) error {
		if roomID == "" && typ == pushRulesType {
			sr, err := loadRules(t, s.UserID)
			if err != nil {
				return err
			}
			content, err = json.Marshal(map[string]any{"global": sr.render(s.UserID)})
			return err
		}
		ad, err := t.AccountDataEntry(s.UserID, roomID, typ)
		if err != nil {
			return err
		}
		content = ad.Content
		return nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, errs.NotFoundf("no account data of type %s", typ)
	}
	return content, err
}

// SetAccountData implements webui.UserData.
func (api *API) SetAccountData(s *webui.Session, roomID, typ string, content json.RawMessage) error {
	if roomID != "" {
		if api.membershipIn(roomID, s.UserID) == "" {
			return errs.Forbiddenf("you have no membership in room %s", roomID)
		}
	}
	if err := api.putAccountData(s.UserID, roomID, typ, content); err != nil {
		return err
	}
	api.notify.wake(s.UserID)
	return nil
}

// putAccountData stores an entry within the bounds.
func (api *API) putAccountData(user, roomID, typ string, content json.RawMessage) error {
	return api.store.Update(func(t *store.Txn) error {
		_, err := t.AccountDataEntry(user, roomID, typ)
		if errors.Is(err, store.ErrNotFound) {
			n, err := t.CountAccountData(user, roomID)
			if err != nil {
				return err
			}
			if (roomID == "" && n >= maxGlobalAccountData) || (roomID != "" && n >= maxRoomAccountData) {
				return errs.TooLargef("too many types of account data (at most %d globally, %d per room)", maxGlobalAccountData, maxRoomAccountData)
			}
		} else if err != nil {
			return err
		}
		return t.PutAccountData(user, &store.AccountData{Room: roomID, Type: typ, Content: content})
	})
}

func loadRules(t *store.Txn, user string) (*storedRules, error) {
	sr := &storedRules{}
	ad, err := t.AccountDataEntry(user, "", pushRulesType)
	if errors.Is(err, store.ErrNotFound) {
		return sr, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(ad.Content, sr); err != nil {
		return nil, err
	}
	return sr, nil
}

// editRules changes a user's push rules in one transaction and wakes
// their /sync, which shows the new rules.
func (api *API) editRules(user string, edit func(sr *storedRules) error) error {
	err := api.store.Update(func(t *store.Txn) error {
		sr, err := loadRules(t, user)
		if err != nil {
			return err
		}
		if err := edit(sr); err != nil {
			return err
		}
		b, err := json.Marshal(sr)
		if err != nil {
			return err
		}
		return t.PutAccountData(user, &store.AccountData{Type: pushRulesType, Content: b})
	})
	if err == nil {
		api.notify.wake(user)
	}
	return err
}

func (api *API) userRules(user string) (*webui.PushRuleset, error) {
	var sr *storedRules
	err := api.store.View(func(t *store.Txn) error {
		var err error
		sr, err = loadRules(t, user)
		return err
	})
	if err != nil {
		return nil, err
	}
	return sr.render(user), nil
}

// PushRules implements webui.UserData.
func (api *API) PushRules(s *webui.Session) (*webui.PushRuleset, error) {
	return api.userRules(s.UserID)
}

// PushRule implements webui.UserData.
func (api *API) PushRule(s *webui.Session, kind, ruleID string) (*webui.PushRule, error) {
	rs, err := api.userRules(s.UserID)
	if err != nil {
		return nil, err
	}
	for _, r := range *kindRules(rs, kind) {
		if r.RuleID == ruleID {
			return &r, nil
		}
	}
	return nil, errs.NotFoundf("no %s push rule %s", kind, ruleID)
}

// PutPushRule implements webui.UserData.
func (api *API) PutPushRule(s *webui.Session, kind string, rule webui.PushRule, before, after string) error {
	if strings.HasPrefix(rule.RuleID, ".") {
		return errs.Invalidf("rule IDs starting with a dot are the server's")
	}
	switch kind {
	case "override", "underride":
		if rule.Conditions == nil {
			rule.Conditions = []webui.PushCondition{}
		}
		if len(rule.Conditions) > 16 {
			return errs.Invalidf("a push rule has at most 16 conditions")
		}
		rule.Pattern = nil
	case "content":
		if rule.Pattern == nil {
			return errs.Invalidf("a content rule needs a pattern")
		}
		rule.Conditions = nil
	case "room":
		if !strings.HasPrefix(rule.RuleID, "!") {
			return errs.Invalidf("a room rule's ID is a room ID")
		}
		rule.Conditions, rule.Pattern = nil, nil
	case "sender":
		if !strings.HasPrefix(rule.RuleID, "@") {
			return errs.Invalidf("a sender rule's ID is a user ID")
		}
		rule.Conditions, rule.Pattern = nil, nil
	}
	var err error
	if rule.Actions, err = cleanActions(rule.Actions); err != nil {
		return err
	}
	for _, c := range rule.Conditions {
		if c.Kind == "" {
			return errs.Invalidf("a push condition needs a kind")
		}
	}
	if b, err := json.Marshal(rule); err != nil || len(b) > maxPushRuleBytes {
		return errs.Invalidf("a push rule is at most %d bytes", maxPushRuleBytes)
	}
	rule.Default, rule.Enabled = false, true
	return api.editRules(s.UserID, func(sr *storedRules) error {
		if sr.User == nil {
			sr.User = map[string][]webui.PushRule{}
		}
		rules := sr.User[kind]
		old := slices.IndexFunc(rules, func(r webui.PushRule) bool { return r.RuleID == rule.RuleID })
		if old < 0 && sr.count() >= maxUserPushRules {
			return errs.TooLargef("at most %d push rules", maxUserPushRules)
		}
		if old >= 0 {
			rule.Enabled = rules[old].Enabled
			if before == "" && after == "" {
				rules[old] = rule
				return nil
			}
			rules = slices.Delete(rules, old, old+1)
		}
		at := 0 // a new rule comes first of the user's
		for _, ref := range []struct {
			id    string
			shift int
		}{{before, 0}, {after, 1}} {
			if ref.id == "" {
				continue
			}
			k := slices.IndexFunc(rules, func(r webui.PushRule) bool { return r.RuleID == ref.id })
			if k < 0 {
				return errs.NotFoundf("no user-defined %s rule %s to place this one by", kind, ref.id)
			}
			at = k + ref.shift
		}
		sr.User[kind] = slices.Insert(rules, at, rule)
		return nil
	})
}

// DeletePushRule implements webui.UserData.
func (api *API) DeletePushRule(s *webui.Session, kind, ruleID string) error {
	return api.editRules(s.UserID, func(sr *storedRules) error {
		r, user, at := sr.find(s.UserID, kind, ruleID)
		switch {
		case r == nil:
			return errs.NotFoundf("no %s push rule %s", kind, ruleID)
		case !user:
			return errs.Invalidf("server-default rules cannot be deleted, only disabled")
		}
		sr.User[kind] = slices.Delete(sr.User[kind], at, at+1)
		return nil
	})
}

// SetPushRuleEnabled implements webui.UserData.
func (api *API) SetPushRuleEnabled(s *webui.Session, kind, ruleID string, enabled bool) error {
	return api.changeRule(s.UserID, kind, ruleID, func(r *webui.PushRule, c *ruleChange) {
		if r != nil {
			r.Enabled = enabled
		} else {
			c.Enabled = &enabled
		}
	})
}

// SetPushRuleActions implements webui.UserData.
func (api *API) SetPushRuleActions(s *webui.Session, kind, ruleID string, actions []json.RawMessage) error {
	actions, err := cleanActions(actions)
	if err != nil {
		return err
	}
	return api.changeRule(s.UserID, kind, ruleID, func(r *webui.PushRule, c *ruleChange) {
		if r != nil {
			r.Actions = actions
		} else {
			c.Actions = actions
		}
	})
}

// changeRule edits a user rule in place (r), or records a change to a
// server-default one (c).
func (api *API) changeRule(user, kind, ruleID string, change func(r *webui.PushRule, c *ruleChange)) error {
	return api.editRules(user, func(sr *storedRules) error {
		r, isUser, _ := sr.find(user, kind, ruleID)
		switch {
		case r == nil:
			return errs.NotFoundf("no %s push rule %s", kind, ruleID)
		case isUser:
			change(r, nil)
			return nil
		}
		if sr.Defaults == nil {
			sr.Defaults = map[string]ruleChange{}
		}
		c := sr.Defaults[kind+"/"+ruleID]
		change(nil, &c)
		sr.Defaults[kind+"/"+ruleID] = c
		return nil
	})
}

func loopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// Pushers implements webui.UserData.
func (api *API) Pushers(s *webui.Session) ([]json.RawMessage, error) {
	var out []json.RawMessage
	err := api.store.View(func(t *store.Txn) error {
		var err error
		out, err = t.Pushers(s.UserID)
		return err
	})
	return out, err
}

// SetPusher implements webui.UserData. The node stores and lists pushers
// but calls no push gateway: a parley node has no push service to reach.
func (api *API) SetPusher(s *webui.Session, p webui.Pusher) error {
	switch {
	case len(p.AppID) > 64:
		return errs.Invalidf("app_id is at most 64 bytes")
	case len(p.PushKey) > 512:
		return errs.Invalidf("pushkey is at most 512 bytes")
	case len(p.AppDisplayName) > 256 || len(p.DeviceDisplayName) > 256 || len(p.ProfileTag) > 256 || len(p.Lang) > 32:
		return errs.Invalidf("a pusher's names, profile tag and lang are at most 256 bytes (lang 32)")
	case len(p.Data) > 4<<10:
		return errs.Invalidf("a pusher's data is at most 4 KiB")
	case strings.ContainsRune(p.AppID+p.PushKey, 0):
		return errs.Invalidf("app_id and pushkey may not hold NUL")
	}
	if p.Kind == nil {
		return api.store.Update(func(t *store.Txn) error { return t.DeletePusher(s.UserID, p.AppID, p.PushKey) })
	}
	switch *p.Kind {
	case "http":
		var data struct {
			URL string `json:"url"`
		}
		if err := json.Unmarshal(p.Data, &data); err != nil {
			return errs.Invalidf("data: %v", err)
		}
		// The spec: a gateway's URL should be HTTPS, never HTTP; plain
		// HTTP is taken only for a gateway on this machine.
		u, err := url.Parse(data.URL)
		if err != nil || u.Host == "" || (u.Scheme != "https" && (u.Scheme != "http" || !loopbackHost(u.Hostname()))) {
			return errs.Invalidf("an http pusher's data.url must be an https URL (or http on this machine)")
		}
	case "email":
	default:
		return errs.Invalidf("unknown pusher kind %q", *p.Kind)
	}
	appendTo := p.Append
	p.Append = false
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return api.store.Update(func(t *store.Txn) error {
		list, err := t.Pushers(s.UserID)
		if err != nil {
			return err
		}
		exists := false
		for _, raw := range list {
			var q webui.Pusher
			if json.Unmarshal(raw, &q) == nil && q.AppID == p.AppID && q.PushKey == p.PushKey {
				exists = true
			}
		}
		if !exists && len(list) >= maxPushers {
			return errs.TooLargef("at most %d pushers", maxPushers)
		}
		if !appendTo {
			// The spec: the same app ID and pushkey for other users is
			// removed, unless append is set.
			users, err := t.PusherUsers(p.AppID, p.PushKey)
			if err != nil {
				return err
			}
			for _, u := range users {
				if u != s.UserID {
					if err := t.DeletePusher(u, p.AppID, p.PushKey); err != nil {
						return err
					}
				}
			}
		}
		return t.PutPusher(s.UserID, p.AppID, p.PushKey, b)
	})
}
