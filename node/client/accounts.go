package client

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/parley-p2p/parley/errs"

	"golang.org/x/crypto/bcrypt"

	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/rooms"
	"github.com/parley-p2p/parley/webui"
)

func randomString(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	s := base64.RawURLEncoding.EncodeToString(b)
	return s[:n]
}

func randomDeviceID() string {
	const letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	b := make([]byte, 10)
	rand.Read(b)
	for i := range b {
		b[i] = letters[int(b[i])%len(letters)]
	}
	return string(b)
}

func (api *API) userID(localpart string) string { return "@" + localpart + ":" + api.serverName }

func (api *API) account(localpart string) (*store.Account, error) {
	var a *store.Account
	err := api.store.View(func(t *store.Txn) error {
		var err error
		a, err = t.Account(localpart)
		return err
	})
	return a, err
}

// AccountCount implements webui.Backend.
func (api *API) AccountCount() (int, error) {
	var c int
	err := api.store.View(func(t *store.Txn) error {
		var err error
		c, err = t.AccountCount()
		return err
	})
	return c, err
}

// AccountExists implements webui.Backend.
func (api *API) AccountExists(localpart string) (bool, error) {
	_, err := api.account(localpart)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// CreateAccount implements webui.Backend.
func (api *API) CreateAccount(ctx context.Context, req webui.AccountRequest) (*webui.LoginResult, error) {
	// bcrypt reads at most 72 bytes; the API refuses longer passwords
	// first, with the same message.
	if len(req.Password) > 72 {
		return nil, errs.Invalidf("a password can have at most 72 bytes (%d given)", len(req.Password))
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(req.Password), bcrypt.DefaultCost)
	if err != nil {
		return nil, err
	}
	api.acctMu.Lock()
	defer api.acctMu.Unlock()
	count, err := api.AccountCount()
	if err != nil {
		return nil, err
	}
	if req.First && count > 0 {
		return nil, errs.Forbiddenf("this node already has its owner")
	}
	if _, err := api.account(req.Localpart); err == nil {
		return nil, &webui.Error{Status: http.StatusBadRequest, Code: "M_USER_IN_USE", Message: "that user name is taken"}
	}
	if err := checkDeviceID(req.DeviceID); err != nil {
		return nil, err
	}
	user := api.userID(req.Localpart)
	var token string
	var sess *store.Session
	err = api.store.Update(func(t *store.Txn) error {
		if err := t.PutAccount(&store.Account{Localpart: req.Localpart, PasswordHash: string(hash), Created: nowMS()}); err != nil {
			return err
		}
		if err := t.PutProfile(user, &store.Profile{DisplayName: req.Localpart}); err != nil {
			return err
		}
		if req.First {
			if err := t.SetOwner(req.Localpart); err != nil {
				return err
			}
		}
		if req.InhibitLogin {
			return nil
		}
		var err error
		token, sess, _, _, err = api.issue(t, user, req.DeviceID, req.DeviceName)
		return err
	})
	if err != nil {
		return nil, err
	}
	if req.First {
		api.claimed()
	}
	if req.InhibitLogin {
		api.log.Info("account created", "user", user)
		return &webui.LoginResult{UserID: user}, nil
	}
	api.devicesChanged(user, sess.DeviceID, false)
	api.log.Info("account created", "user", user)
	return &webui.LoginResult{UserID: user, AccessToken: token, DeviceID: sess.DeviceID}, nil
}

// Login implements webui.Backend.
func (api *API) Login(ctx context.Context, localpart, password, deviceID, deviceName string) (*webui.LoginResult, error) {
	bad := errs.Forbiddenf("invalid username or password")
	a, err := api.account(localpart)
	if errors.Is(err, store.ErrNotFound) {
		// Spend the same time as a real check.
		bcrypt.CompareHashAndPassword([]byte("$2a$10$abcdefghijklmnopqrstuuJ7oIqH5a3xJ0D4Bq3m8eXf9zJxUz5yS"), []byte(password))
		return nil, bad
	}
	if err != nil {
		return nil, err
	}
	if bcrypt.CompareHashAndPassword([]byte(a.PasswordHash), []byte(password)) != nil {
		return nil, bad
	}
	if a.Deactivated {
		return nil, &webui.Error{Status: http.StatusForbidden, Code: "M_USER_DEACTIVATED", Message: "this account has been deactivated"}
	}
	if err := checkDeviceID(deviceID); err != nil {
		return nil, err
	}
	if err := api.adoptSessions(); err != nil {
		return nil, err
	}
	user := api.userID(localpart)
	var token, added string
	var sess *store.Session
	var removed []string
	if err := api.store.Update(func(t *store.Txn) error {
		var err error
		token, sess, added, removed, err = api.issue(t, user, deviceID, deviceName)
		return err
	}); err != nil {
		return nil, err
	}
	for _, id := range removed {
		api.devicesChanged(user, id, true)
	}
	if added != "" {
		api.devicesChanged(user, added, false)
	}
	return &webui.LoginResult{UserID: user, AccessToken: token, DeviceID: sess.DeviceID}, nil
}

// Authenticate implements webui.Backend.
func (api *API) Authenticate(token string) (*webui.Session, error) {
	if sess, isCLI, err := api.cliSession(token); isCLI {
		return sess, err
	}
	var s *store.Session
	err := api.store.View(func(t *store.Txn) error {
		var err error
		s, err = t.Session(token)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, &webui.Error{Status: http.StatusUnauthorized, Code: "M_UNKNOWN_TOKEN", Message: "unknown or expired access token"}
	}
	if err != nil {
		return nil, err
	}
	if s.Expires != 0 && nowMS() >= s.Expires {
		return nil, errUnknownToken("the access token has expired: refresh it", true)
	}
	if s.PrevRefresh != "" {
		api.firstUse(token)
	}
	return &webui.Session{UserID: s.UserID, DeviceID: s.DeviceID}, nil
}

// Logout implements webui.Backend: the token's device is deleted, and
// every token it holds revoked.
func (api *API) Logout(token string) error {
	var s *store.Session
	err := api.store.View(func(t *store.Txn) error {
		var err error
		s, err = t.Session(token)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil // the CLI's token, or one revoked meanwhile
	}
	if err != nil {
		return err
	}
	if err := api.store.Update(func(t *store.Txn) error { return t.DeleteSession(token) }); err != nil {
		return err
	}
	return api.deleteDevices(s.UserID, func(id string) bool { return id == s.DeviceID })
}

// PutFilter implements webui.Backend.
func (api *API) PutFilter(user string, filter json.RawMessage) (string, error) {
	var id string
	err := api.store.Update(func(t *store.Txn) error {
		var err error
		id, err = t.PutFilter(user, filter)
		return err
	})
	return id, err
}

// Filter implements webui.Backend.
func (api *API) Filter(user, id string) (json.RawMessage, error) {
	var f json.RawMessage
	err := api.store.View(func(t *store.Txn) error {
		var err error
		f, err = t.Filter(user, id)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, errs.NotFoundf("no filter %q", id)
	}
	return f, err
}

// Profile implements webui.Backend: local users from the store, others
// from their member events in shared rooms.
func (api *API) Profile(user string) (map[string]any, error) {
	out := map[string]any{}
	if local, ok := api.peers.LocalUser(user); ok {
		if _, err := api.account(local); err != nil {
			return nil, errs.NotFoundf("user %s does not exist", user)
		}
		var p *store.Profile
		if err := api.store.View(func(t *store.Txn) error {
			var err error
			p, err = t.Profile(user)
			return err
		}); err != nil {
			return nil, err
		}
		if p.DisplayName != "" {
			out["displayname"] = p.DisplayName
		}
		if p.AvatarURL != "" {
			out["avatar_url"] = p.AvatarURL
		}
		return out, nil
	}
	for _, r := range api.peers.Rooms() {
		id, ok := r.State()[rooms.StateKey{Type: "m.room.member", StateKey: user}]
		if !ok {
			continue
		}
		if i, err := api.dag.Event(id); err == nil {
			var c map[string]any
			json.Unmarshal(api.shownInfo(i).Content, &c) // the plain view's
			for _, k := range []string{"displayname", "avatar_url"} {
				if v, ok := c[k].(string); ok {
					out[k] = v
				}
			}
			return out, nil
		}
	}
	return nil, errs.NotFoundf("no profile known for %s", user)
}

// SetProfile implements webui.Backend; the change is also sent as a new
// member event to every room the user is in.
func (api *API) SetProfile(ctx context.Context, user, field, value string) error {
	err := api.store.Update(func(t *store.Txn) error {
		p, err := t.Profile(user)
		if err != nil {
			return err
		}
		if field == "displayname" {
			p.DisplayName = value
		} else {
			p.AvatarURL = value
		}
		return t.PutProfile(user, p)
	})
	if err != nil {
		return err
	}
	for _, r := range api.peers.Rooms() {
		if api.peers.Membership(r, user) != "join" {
			continue
		}
		c, _ := rooms.MarshalCanonical(api.memberContent(user, "join"))
		u := user
		if _, err := api.dag.Send(ctx, r.Room, user, "m.room.member", &u, c, "", ""); err != nil {
			api.log.Warn("profile update in room", "room", r.ID, "err", err)
		}
	}
	return nil
}
