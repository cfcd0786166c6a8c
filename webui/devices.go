package webui

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/parley-p2p/parley/errs"
)

// Devices is each user's devices and what needs their password again:
// naming and deleting devices, logging out everywhere, changing the
// password, deactivating the account, and refresh tokens.
type Devices interface {
	Devices(user string) ([]Device, error)
	// Device is one of the user's devices; errs.NotFound if they have no
	// such device.
	Device(user, deviceID string) (*Device, error)
	// RenameDevice sets a device's display name; errs.NotFound as Device.
	RenameDevice(user, deviceID, name string) error
	// DeleteDevices deletes devices and revokes their tokens; IDs the
	// user has no device for are skipped.
	DeleteDevices(ctx context.Context, user string, deviceIDs []string) error
	// LogoutAll deletes every device of the user.
	LogoutAll(ctx context.Context, user string) error
	// CheckPassword is nil if password is the local user's, and
	// errs.Forbidden otherwise (also for a deactivated account).
	CheckPassword(localpart, password string) error
	// ChangePassword sets the user's password and, if logoutOthers, deletes
	// every device but the caller's.
	ChangePassword(ctx context.Context, sess *Session, password string, logoutOthers bool) error
	// Deactivate closes the account for good: no login, no devices, and
	// the user leaves every room.
	Deactivate(ctx context.Context, user string) error
	// Refreshable makes a freshly issued access token expire, and returns
	// the refresh token that renews it.
	Refreshable(accessToken string) (refreshToken string, expiresInMS int64, err error)
	// Refresh exchanges a refresh token for a new pair; an unknown one is
	// a 401 M_UNKNOWN_TOKEN.
	Refresh(refreshToken string) (*LoginResult, error)
	// Seen notes that a device made a request, from ip. It must be cheap:
	// every authenticated request calls it.
	Seen(sess *Session, ip string)
}

// Device is a device as GET /devices shows it.
type Device struct {
	DeviceID    string `json:"device_id"`
	DisplayName string `json:"display_name,omitempty"`
	LastSeenIP  string `json:"last_seen_ip,omitempty"`
	LastSeenTS  int64  `json:"last_seen_ts,omitempty"`
}

// maxDeviceName bounds a device's display name, in bytes.
const maxDeviceName = 256

// maxDeleteDevices bounds the IDs one POST /delete_devices may name.
const maxDeleteDevices = 1000

func (s *Server) listDevices(w http.ResponseWriter, r *http.Request, sess *Session) error {
	ds, err := s.devices.Devices(sess.UserID)
	if err != nil {
		return err
	}
	if ds == nil {
		ds = []Device{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"devices": ds})
	return nil
}

func (s *Server) getDevice(w http.ResponseWriter, r *http.Request, sess *Session) error {
	d, err := s.devices.Device(sess.UserID, r.PathValue("deviceId"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, d)
	return nil
}

func (s *Server) putDevice(w http.ResponseWriter, r *http.Request, sess *Session) error {
	var req struct {
		DisplayName *string `json:"display_name"`
	}
	if err := readJSON(r, &req); err != nil {
		return err
	}
	id := r.PathValue("deviceId")
	if req.DisplayName == nil {
		// Nothing to change, but the device must exist.
		_, err := s.devices.Device(sess.UserID, id)
		if err == nil {
			writeJSON(w, http.StatusOK, map[string]any{})
		}
		return err
	}
	if len(*req.DisplayName) > maxDeviceName {
		return errs.Invalidf("a device's display name can have at most %d bytes", maxDeviceName)
	}
	if err := s.devices.RenameDevice(sess.UserID, id, *req.DisplayName); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{})
	return nil
}

func (s *Server) deleteDevice(w http.ResponseWriter, r *http.Request, sess *Session) error {
	var req struct {
		Auth json.RawMessage `json:"auth"`
	}
	if err := readJSON(r, &req); err != nil {
		return err
	}
	id := r.PathValue("deviceId")
	if err := s.uia(r, sess, "delete device "+id, req.Auth); err != nil {
		return err
	}
	if err := s.devices.DeleteDevices(r.Context(), sess.UserID, []string{id}); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{})
	return nil
}

func (s *Server) deleteDevices(w http.ResponseWriter, r *http.Request, sess *Session) error {
	var req struct {
		Devices *[]string       `json:"devices"`
		Auth    json.RawMessage `json:"auth"`
	}
	if err := readJSON(r, &req); err != nil {
		return err
	}
	if req.Devices == nil {
		return errMissingParam("devices is required")
	}
	if len(*req.Devices) > maxDeleteDevices {
		return errs.Invalidf("at most %d devices can be deleted at once", maxDeleteDevices)
	}
	if err := s.uia(r, sess, "delete devices", req.Auth); err != nil {
		return err
	}
	if err := s.devices.DeleteDevices(r.Context(), sess.UserID, *req.Devices); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{})
	return nil
}

func (s *Server) logoutAll(w http.ResponseWriter, r *http.Request, sess *Session) error {
	if err := s.devices.LogoutAll(r.Context(), sess.UserID); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{})
	return nil
}

func (s *Server) changePassword(w http.ResponseWriter, r *http.Request, sess *Session) error {
	var req struct {
		NewPassword   *string         `json:"new_password"`
		LogoutDevices *bool           `json:"logout_devices"`
		Auth          json.RawMessage `json:"auth"`
	}
	if err := readJSON(r, &req); err != nil {
		return err
	}
	if req.NewPassword == nil {
		return errMissingParam("new_password is required")
	}
	if err := checkPassword(*req.NewPassword); err != nil {
		return err
	}
	if err := s.uia(r, sess, "change password", req.Auth); err != nil {
		return err
	}
	logout := req.LogoutDevices == nil || *req.LogoutDevices
	if err := s.devices.ChangePassword(r.Context(), sess, *req.NewPassword, logout); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{})
	return nil
}

func (s *Server) deactivate(w http.ResponseWriter, r *http.Request, sess *Session) error {
	var req struct {
		Auth json.RawMessage `json:"auth"`
	}
	if err := readJSON(r, &req); err != nil {
		return err
	}
	if err := s.uia(r, sess, "deactivate", req.Auth); err != nil {
		return err
	}
	if err := s.devices.Deactivate(r.Context(), sess.UserID); err != nil {
		return err
	}
	// parley binds no third-party identifiers, so there are none to unbind.
	writeJSON(w, http.StatusOK, map[string]string{"id_server_unbind_result": "no-support"})
	return nil
}

// threePIDs answers that the account has no third-party identifiers:
// parley has no email or phone binding.
func (s *Server) threePIDs(w http.ResponseWriter, r *http.Request, _ *Session) error {
	writeJSON(w, http.StatusOK, map[string]any{"threepids": []any{}})
	return nil
}

func (s *Server) refresh(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		RefreshToken string `json:"refresh_token"`
	}
	if err := readJSON(r, &req); err != nil {
		return err
	}
	if req.RefreshToken == "" {
		return errMissingParam("refresh_token is required")
	}
	// Not rate limited: a refresh token has 240 random bits, so guessing
	// is hopeless, while a limit keyed by client (all of loopback is one)
	// would let any local process keep every client from refreshing.
	res, err := s.devices.Refresh(req.RefreshToken)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": res.AccessToken, "refresh_token": res.RefreshToken, "expires_in_ms": res.ExpiresInMS,
	})
	return nil
}

// withRefresh gives a login or registration its refresh token when the
// client asked for one; without, its access token never expires.
func (s *Server) withRefresh(res *LoginResult, asked bool) error {
	if !asked || s.devices == nil || res.AccessToken == "" {
		return nil
	}
	rt, ms, err := s.devices.Refreshable(res.AccessToken)
	if err != nil {
		return err
	}
	res.RefreshToken, res.ExpiresInMS = rt, ms
	return nil
}

// seen tells the devices that a session made this request.
func (s *Server) seen(r *http.Request, sess *Session) {
	if s.devices == nil {
		return
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	s.devices.Seen(sess, host)
}

// User-interactive auth: the endpoints that can lock a user out of their
// account (deleting devices, changing the password, deactivating) ask for
// the password again, with the one stage m.login.password. The first call
// answers 401 with the flows and a session; the retry carries the
// password and that session, which is good for the one operation it was
// issued for, for uiaLifetime, and is spent once it succeeds.
const (
	uiaLifetime    = 10 * time.Minute
	maxUIASessions = 1024
)

type uiaSession struct {
	user, what string
	expires    time.Time
}

// uiaSessions are the sessions of user-interactive auth in progress, at
// most maxUIASessions: when full, the one closest to expiring goes.
type uiaSessions struct {
	mu sync.Mutex
	m  map[string]uiaSession
}

func (u *uiaSessions) start(user, what string, now time.Time) string {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.m == nil {
		u.m = map[string]uiaSession{}
	}
	var oldest string
	for id, s := range u.m {
		if now.After(s.expires) {
			delete(u.m, id)
		} else if oldest == "" || s.expires.Before(u.m[oldest].expires) {
			oldest = id
		}
	}
	if len(u.m) >= maxUIASessions {
		delete(u.m, oldest)
	}
	b := make([]byte, 18)
	rand.Read(b)
	id := base64.RawURLEncoding.EncodeToString(b)
	u.m[id] = uiaSession{user: user, what: what, expires: now.Add(uiaLifetime)}
	return id
}

// valid reports whether id is a live session of this user for this
// operation.
func (u *uiaSessions) valid(id, user, what string, now time.Time) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	s, ok := u.m[id]
	if ok && now.After(s.expires) {
		delete(u.m, id)
		return false
	}
	return ok && s.user == user && s.what == what
}

func (u *uiaSessions) end(id string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	delete(u.m, id)
}

func (u *uiaSessions) len() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.m)
}

type uiaAuth struct {
	Type       string `json:"type"`
	Session    string `json:"session"`
	Identifier struct {
		Type string `json:"type"`
		User string `json:"user"`
	} `json:"identifier"`
	User     string `json:"user"` // the deprecated form of identifier
	Password string `json:"password"`
}

// uia runs user-interactive auth for the operation what: nil once the
// request carries the user's password in a live session of its own, else
// the 401 (or 429) to answer.
func (s *Server) uia(r *http.Request, sess *Session, what string, raw json.RawMessage) error {
	now := time.Now()
	answer := func(session, code, msg string) *Error {
		e := Errorf(http.StatusUnauthorized, code, "%s", msg)
		e.Extra = map[string]any{
			"flows":   []map[string][]string{{"stages": {loginPassword}}},
			"params":  map[string]any{},
			"session": session,
		}
		return e
	}
	if len(raw) == 0 || string(raw) == "null" {
		// The spec's first answer carries no errcode; clients rely on that.
		return answer(s.uiaSessions.start(sess.UserID, what, now), "", "")
	}
	var auth uiaAuth
	if err := json.Unmarshal(raw, &auth); err != nil {
		return errBadJSON(err)
	}
	if !s.uiaSessions.valid(auth.Session, sess.UserID, what, now) {
		return answer(s.uiaSessions.start(sess.UserID, what, now), "M_FORBIDDEN", "unknown or expired session: start again with the one given here")
	}
	if auth.Type != loginPassword {
		return answer(auth.Session, "M_FORBIDDEN", "this node confirms with "+loginPassword+" only")
	}
	if auth.Identifier.Type != "" && auth.Identifier.Type != "m.id.user" {
		return answer(auth.Session, "M_FORBIDDEN", "unsupported identifier type "+auth.Identifier.Type)
	}
	user := auth.Identifier.User
	if user == "" {
		user = auth.User
	}
	local, err := s.localpart(user)
	if err != nil || "@"+local+":"+s.accounts.ServerName() != sess.UserID {
		return answer(auth.Session, "M_FORBIDDEN", "the password must be that of the user making the request")
	}
	client := clientKey(r)
	if err := s.guard.beginLogin(local, client); err != nil {
		return err
	}
	err = s.devices.CheckPassword(local, auth.Password)
	if me, _ := matrixError(err); err != nil && me.Status == http.StatusForbidden {
		s.guard.log.log(s.log, "wrong password in user-interactive auth", "user", local, "client", client)
		return answer(auth.Session, "M_FORBIDDEN", "wrong password")
	}
	s.guard.loginDone(local, client, err == nil)
	if err != nil {
		return err
	}
	s.uiaSessions.end(auth.Session)
	return nil
}
