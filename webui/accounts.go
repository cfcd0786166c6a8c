package webui

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/parley-p2p/parley/errs"
)

// Accounts is the node's local accounts: who may register, logging in and
// out, access tokens, and each user's filters and profile. Every server
// needs one, since it authenticates every request that carries a token.
type Accounts interface {
	ServerName() string
	RegistrationToken() string
	// ClaimCode is the one-time code the node's first account must
	// present; "" once the node has its owner.
	ClaimCode() string

	AccountCount() (int, error)
	AccountExists(localpart string) (bool, error)
	CreateAccount(ctx context.Context, req AccountRequest) (*LoginResult, error)
	Login(ctx context.Context, localpart, password, deviceID, deviceName string) (*LoginResult, error)
	Authenticate(token string) (*Session, error)
	// Logout revokes the token and deletes its device, with every other
	// token the device holds.
	Logout(token string) error

	PutFilter(user string, filter json.RawMessage) (string, error)
	Filter(user, id string) (json.RawMessage, error)
	Profile(user string) (map[string]any, error)
	SetProfile(ctx context.Context, user, field, value string) error
}

const (
	loginPassword     = "m.login.password"
	loginRegistration = "m.login.registration_token"
)

// localpartRE is the spec's grammar for user ID localparts.
var localpartRE = regexp.MustCompile(`^[a-z0-9._=\-/+]+$`)

func (s *Server) loginFlows(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]any{"flows": []map[string]string{{"type": loginPassword}}})
	return nil
}

type loginRequest struct {
	Type       string `json:"type"`
	Identifier struct {
		Type string `json:"type"`
		User string `json:"user"`
	} `json:"identifier"`
	User                     string `json:"user"`
	Password                 string `json:"password"`
	DeviceID                 string `json:"device_id"`
	InitialDeviceDisplayName string `json:"initial_device_display_name"`
	RefreshToken             bool   `json:"refresh_token"`
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) error {
	var req loginRequest
	if err := readJSON(r, &req); err != nil {
		return err
	}
	if req.Type != loginPassword {
		return Errorf(http.StatusBadRequest, "M_UNKNOWN", "unsupported login type %q", req.Type)
	}
	user := req.Identifier.User
	if user == "" {
		user = req.User
	}
	if req.Identifier.Type != "" && req.Identifier.Type != "m.id.user" {
		return Errorf(http.StatusBadRequest, "M_UNKNOWN", "unsupported identifier type %q", req.Identifier.Type)
	}
	local, nameErr := s.localpart(user)
	client := clientKey(r)
	if err := s.guard.beginLogin(local, client); err != nil {
		return err
	}
	if nameErr != nil {
		s.guard.log.log(s.log, "failed login", "user", user, "client", client, "reason", "invalid user name")
		return Errorf(http.StatusForbidden, "M_FORBIDDEN", "invalid username or password")
	}
	res, err := s.accounts.Login(r.Context(), local, req.Password, req.DeviceID, req.InitialDeviceDisplayName)
	// A refusal (wrong password, unknown user) counts against the
	// backoff, whichever way the node spells it.
	if me, _ := matrixError(err); err != nil && me.Status == http.StatusForbidden {
		s.guard.log.log(s.log, "failed login", "user", local, "client", client)
		return err
	}
	s.guard.loginDone(local, client, err == nil)
	if err != nil {
		return err
	}
	if err := s.withRefresh(res, req.RefreshToken); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

// localpart accepts "alice" or "@alice:<this server>".
func (s *Server) localpart(user string) (string, error) {
	if strings.HasPrefix(user, "@") {
		local, server, ok := strings.Cut(user[1:], ":")
		if !ok || server != s.accounts.ServerName() {
			return "", errs.Invalidf("user %q is not on this node", user)
		}
		user = local
	}
	user = strings.ToLower(user)
	if user == "" || len(user) > 64 || !localpartRE.MatchString(user) {
		return "", Errorf(http.StatusBadRequest, "M_INVALID_USERNAME", "user names may use a-z, 0-9 and ._=-/+, up to 64 characters")
	}
	return user, nil
}

type registerRequest struct {
	Auth struct {
		Type    string `json:"type"`
		Session string `json:"session"`
		Token   string `json:"token"`
	} `json:"auth"`
	Username                 string `json:"username"`
	Password                 string `json:"password"`
	DeviceID                 string `json:"device_id"`
	InitialDeviceDisplayName string `json:"initial_device_display_name"`
	InhibitLogin             bool   `json:"inhibit_login"`
	RefreshToken             bool   `json:"refresh_token"`
}

// register enforces the node's policy: the first account claims the node
// and must present its one-time claim code; every later one needs the
// owner's registration token; with no token set, registration is closed.
// Both codes go through the spec's registration-token stage, so any
// Matrix client can claim a node.
func (s *Server) register(w http.ResponseWriter, r *http.Request) error {
	if kind := r.URL.Query().Get("kind"); kind != "" && kind != "user" {
		return Errorf(http.StatusForbidden, "M_GUEST_ACCESS_FORBIDDEN", "guest accounts are not available")
	}
	var req registerRequest
	if err := readJSON(r, &req); err != nil {
		return err
	}
	first, secret, err := s.registrationSecret()
	if err != nil {
		return err
	}
	if secret == "" {
		return Errorf(http.StatusForbidden, "M_FORBIDDEN", "registration is closed: this node has its owner; ask them to start parley with --registration-token")
	}
	// uia is the user-interactive auth answer: the flows, plus an errcode
	// when a stage was attempted and failed (the spec's initial answer has
	// none, and clients rely on that).
	uia := func(msg string) *Error {
		e := Errorf(http.StatusUnauthorized, "M_FORBIDDEN", "%s", msg)
		if msg == "" {
			e.Code, e.Message = "", ""
		}
		e.Extra = map[string]any{
			"flows":   []map[string][]string{{"stages": {loginRegistration}}},
			"params":  map[string]any{},
			"session": "register",
		}
		return e
	}
	kind, what := "registration token", "registration token"
	if first {
		kind, what = "claim code", "claim code (printed by parley run, and in the file claim-code in its data dir)"
	}
	switch req.Auth.Type {
	case "":
		return uia("")
	case loginRegistration:
	default:
		return uia("this node registers accounts with " + loginRegistration + ": give the " + what)
	}
	client := clientKey(r)
	if wait := s.guard.codes.begin(client); wait > 0 {
		return errLimited(wait)
	}
	if subtle.ConstantTimeCompare([]byte(req.Auth.Token), []byte(secret)) != 1 {
		s.guard.log.log(s.log, "wrong "+kind, "client", client)
		return uia("wrong " + what)
	}
	s.guard.codes.reset(client)
	if req.Username == "" {
		return errMissingParam("username is required")
	}
	local, err := s.localpart(req.Username)
	if err != nil {
		return err
	}
	if err := checkPassword(req.Password); err != nil {
		return err
	}
	res, err := s.accounts.CreateAccount(r.Context(), AccountRequest{
		Localpart: local, Password: req.Password, DeviceID: req.DeviceID,
		DeviceName: req.InitialDeviceDisplayName, First: first, InhibitLogin: req.InhibitLogin,
	})
	if err != nil {
		return err
	}
	if req.InhibitLogin {
		writeJSON(w, http.StatusOK, map[string]string{"user_id": res.UserID})
		return nil
	}
	if err := s.withRefresh(res, req.RefreshToken); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

// Passwords are hashed with bcrypt, which reads at most 72 bytes.
const (
	minPassword      = 8 // characters
	maxPasswordBytes = 72
)

// checkPassword refuses a password too short to resist guessing, or too
// long for bcrypt, with a message that says which.
func checkPassword(p string) error {
	if utf8.RuneCountInString(p) < minPassword {
		return Errorf(http.StatusBadRequest, "M_WEAK_PASSWORD", "a password needs at least %d characters", minPassword)
	}
	if len(p) > maxPasswordBytes {
		return Errorf(http.StatusBadRequest, "M_INVALID_PARAM", "a password can have at most %d bytes (%d given)", maxPasswordBytes, len(p))
	}
	return nil
}

// registrationSecret is what the registration-token stage must match now:
// the claim code while the node has no account, else the registration
// token ("" when registration is closed).
func (s *Server) registrationSecret() (first bool, secret string, err error) {
	count, err := s.accounts.AccountCount()
	if err != nil {
		return false, "", err
	}
	if count == 0 {
		return true, s.accounts.ClaimCode(), nil
	}
	return false, s.accounts.RegistrationToken(), nil
}

// tokenValidity is the spec's check of a registration token before the
// client asks for the rest of the account's details.
func (s *Server) tokenValidity(w http.ResponseWriter, r *http.Request) error {
	tok := r.URL.Query().Get("token")
	if tok == "" {
		return errMissingParam("token is required")
	}
	_, secret, err := s.registrationSecret()
	if err != nil {
		return err
	}
	client := clientKey(r)
	if wait := s.guard.codes.begin(client); wait > 0 {
		return errLimited(wait)
	}
	valid := secret != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(secret)) == 1
	if valid {
		s.guard.codes.reset(client)
	} else {
		s.guard.log.log(s.log, "wrong registration token checked", "client", client)
	}
	writeJSON(w, http.StatusOK, map[string]bool{"valid": valid})
	return nil
}

func (s *Server) registerAvailable(w http.ResponseWriter, r *http.Request) error {
	local, err := s.localpart(r.URL.Query().Get("username"))
	if err != nil {
		return err
	}
	taken, err := s.accounts.AccountExists(local)
	if err != nil {
		return err
	}
	if taken {
		return Errorf(http.StatusBadRequest, "M_USER_IN_USE", "that user name is taken")
	}
	writeJSON(w, http.StatusOK, map[string]bool{"available": true})
	return nil
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request, _ *Session) error {
	if err := s.accounts.Logout(accessToken(r)); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{})
	return nil
}

func (s *Server) whoami(w http.ResponseWriter, r *http.Request, sess *Session) error {
	writeJSON(w, http.StatusOK, map[string]string{"user_id": sess.UserID, "device_id": sess.DeviceID})
	return nil
}

// defaultPushRules is the spec's default rule set, trimmed to what parley
// can honour; clients need the shape more than the rules.
func defaultPushRules(userID string) map[string]any {
	// An empty actions list means "do not notify"; it must be [] and never
	// null, or clients that iterate it fail.
	rule := func(id string, conds []map[string]any, actions ...any) map[string]any {
		if conds == nil {
			conds = []map[string]any{}
		}
		if actions == nil {
			actions = []any{}
		}
		return map[string]any{"rule_id": id, "default": true, "enabled": true, "conditions": conds, "actions": actions}
	}
	// The master rule matches everything: enabled, it mutes the account.
	master := rule(".m.rule.master", nil)
	master["enabled"] = false
	notify := json.RawMessage(`"notify"`)
	return map[string]any{
		"override": []any{
			master,
			rule(".m.rule.suppress_notices", []map[string]any{{"kind": "event_match", "key": "content.msgtype", "pattern": "m.notice"}}),
			rule(".m.rule.member_event", []map[string]any{{"kind": "event_match", "key": "type", "pattern": "m.room.member"}}),
		},
		"content": []any{},
		"room":    []any{},
		"sender":  []any{},
		"underride": []any{
			rule(".m.rule.message", []map[string]any{{"kind": "event_match", "key": "type", "pattern": "m.room.message"}}, notify),
		},
	}
}

func (s *Server) putFilter(w http.ResponseWriter, r *http.Request, sess *Session) error {
	if r.PathValue("userId") != sess.UserID {
		return errs.Forbiddenf("cannot create filters for other users")
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	// The filter is stored as sent, so that GET returns it unchanged; it
	// must still be an object parley can read.
	var f Filter
	if err := json.Unmarshal(body, &f); err != nil {
		return errBadJSON(err)
	}
	if !strings.HasPrefix(strings.TrimLeft(string(body), " \t\r\n"), "{") {
		return errBadJSON(fmt.Errorf("a filter must be a JSON object"))
	}
	id, err := s.accounts.PutFilter(sess.UserID, body)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{"filter_id": id})
	return nil
}

func (s *Server) getFilter(w http.ResponseWriter, r *http.Request, sess *Session) error {
	if r.PathValue("userId") != sess.UserID {
		return errs.Forbiddenf("cannot read filters of other users")
	}
	f, err := s.accounts.Filter(sess.UserID, r.PathValue("filterId"))
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(f)
	return nil
}

// profile looks a user up. Without a token only this node's users are
// answered: a remote user's profile would tell who the node shares rooms
// with.
func (s *Server) profile(r *http.Request, sess *Session) (map[string]any, error) {
	user := r.PathValue("userId")
	if sess == nil && !strings.HasSuffix(user, ":"+s.accounts.ServerName()) {
		return nil, Errorf(http.StatusUnauthorized, "M_MISSING_TOKEN", "profiles of users on other nodes need an access token")
	}
	return s.accounts.Profile(user)
}

func (s *Server) getProfile(w http.ResponseWriter, r *http.Request, sess *Session) error {
	p, err := s.profile(r, sess)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, p)
	return nil
}

func (s *Server) getProfileField(w http.ResponseWriter, r *http.Request, sess *Session) error {
	p, err := s.profile(r, sess)
	if err != nil {
		return err
	}
	field := r.PathValue("field")
	v, ok := p[field]
	if !ok {
		return errs.NotFoundf("profile field %s not found", field)
	}
	writeJSON(w, http.StatusOK, map[string]any{field: v})
	return nil
}

func (s *Server) putProfileField(w http.ResponseWriter, r *http.Request, sess *Session) error {
	if r.PathValue("userId") != sess.UserID {
		return errs.Forbiddenf("cannot change the profile of another user")
	}
	field := r.PathValue("field")
	if field != "displayname" && field != "avatar_url" {
		return errs.Invalidf("unsupported profile field %q", field)
	}
	var body map[string]any
	if err := readJSON(r, &body); err != nil {
		return err
	}
	v, ok := body[field].(string)
	if !ok && body[field] != nil {
		return errs.Invalidf("%s must be a string", field)
	}
	if len(v) > 256 {
		return errs.Invalidf("%s is longer than 256 bytes", field)
	}
	if err := s.accounts.SetProfile(r.Context(), sess.UserID, field, v); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{})
	return nil
}
