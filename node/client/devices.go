package client

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"

	"github.com/parley-p2p/parley/errs"
	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/webui"
)

// DefaultAccessTokenLifetime is how long an access token issued with a
// refresh token lasts. The API listens on loopback only, so a token is
// exposed mostly through what a client keeps (logs, a URL with
// ?access_token=): an hour bounds that, while each refresh is one store
// write, which a shorter lifetime would multiply for nothing.
const DefaultAccessTokenLifetime = time.Hour

const (
	// maxDevices bounds the devices of one user: a login beyond it
	// deletes the device seen least recently.
	maxDevices = 100
	// maxDeviceTokens bounds the access tokens (and, apart, the refresh
	// tokens) of one device: beyond, the oldest is revoked.
	maxDeviceTokens = 16
	// maxDeviceName bounds a display name given at login, in bytes (a
	// longer one is cut).
	maxDeviceName = 256
	// maxDeviceID bounds a device ID a client picks, in bytes.
	maxDeviceID = 255
	// seenWriteEvery is how often a device's last-seen time and address
	// are written to the store at most; between writes they are kept in
	// memory, and /devices shows the newer.
	seenWriteEvery = 5 * time.Minute
	// deactivateTimeout bounds the leaving of rooms that deactivation does.
	deactivateTimeout = 2 * time.Minute
)

type devKey struct{ user, device string }

type seenRec struct {
	ts     int64 // ms
	ip     string
	stored int64 // ms, when last written to the store
}

// deviceState is the API's memory of devices: when each was last seen
// (one entry per device that made a request since start, dropped with the
// device), and whether sessions older than device records were adopted.
// adoptMu is held across a store update, so it is never taken inside
// one; mu is held only for work in memory, never while waiting on the
// store, so the store's writer may take it.
type deviceState struct {
	mu   sync.Mutex // guards seen
	seen map[devKey]seenRec

	adoptMu sync.Mutex
	adopted bool
}

// adoptSessions gives a device record to each session issued before
// devices were recorded, once per start.
func (api *API) adoptSessions() error {
	api.dev.adoptMu.Lock()
	defer api.dev.adoptMu.Unlock()
	if api.dev.adopted {
		return nil
	}
	err := api.store.Update(func(t *store.Txn) error {
		orphans, err := t.OrphanSessions()
		if err != nil {
			return err
		}
		devs := map[devKey]*store.Device{}
		for hash, s := range orphans {
			k := devKey{s.UserID, s.DeviceID}
			d := devs[k]
			if d == nil {
				d = &store.Device{UserID: s.UserID, ID: s.DeviceID, Created: s.Created}
				devs[k] = d
			}
			d.Tokens = append(d.Tokens, hash)
		}
		for _, d := range devs {
			if err := t.PutDevice(d); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		api.dev.adopted = true
	}
	return err
}

// devicesChanged is where a device of a local user was added or removed:
// the hook for what tells others of device lists (Config.OnDeviceChange).
func (api *API) devicesChanged(user, deviceID string, removed bool) {
	if removed {
		api.dev.mu.Lock()
		delete(api.dev.seen, devKey{user, deviceID})
		api.dev.mu.Unlock()
		// Its published keys and waiting messages go too (todevice.go).
		if err := api.ForgetDevice(user, deviceID); err != nil {
			api.log.Warn("forget a deleted device's keys", "user", user, "device", deviceID, "err", err)
		}
	}
	if api.cfg.OnDeviceChange != nil {
		api.cfg.OnDeviceChange(user, deviceID, removed)
	}
}

// issue makes a new access token for a device of the user, creating the
// device (named name) if it does not exist. It returns the token, its
// session, and the devices it added and removed (for devicesChanged).
func (api *API) issue(t *store.Txn, user, deviceID, name string) (token string, sess *store.Session, added string, removed []string, err error) {
	now := nowMS()
	if deviceID == "" {
		deviceID = randomDeviceID()
	}
	d, err := t.Device(user, deviceID)
	if errors.Is(err, store.ErrNotFound) {
		d = &store.Device{UserID: user, ID: deviceID, Name: cutName(name), Created: now}
		added = deviceID
		if removed, err = evictDevices(t, user); err != nil {
			return "", nil, "", nil, err
		}
	} else if err != nil {
		return "", nil, "", nil, err
	}
	token = "pt_" + randomString(40)
	sess = &store.Session{UserID: user, DeviceID: deviceID, Created: now}
	if err := addToken(t, &d.Tokens, store.HashToken(token), t.DeleteSessionHash); err != nil {
		return "", nil, "", nil, err
	}
	if err := t.PutSession(token, sess); err != nil {
		return "", nil, "", nil, err
	}
	return token, sess, added, removed, t.PutDevice(d)
}

// evictDevices makes room for one more device of the user, deleting the
// ones seen least recently.
func evictDevices(t *store.Txn, user string) ([]string, error) {
	ds, err := t.Devices(user)
	if err != nil || len(ds) < maxDevices {
		return nil, err
	}
	seen := func(d *store.Device) int64 { return max(d.LastSeenTS, d.Created) }
	slices.SortFunc(ds, func(a, b *store.Device) int { return int(seen(a) - seen(b)) })
	var gone []string
	for _, d := range ds[:len(ds)-maxDevices+1] {
		if err := t.DeleteDevice(user, d.ID); err != nil {
			return nil, err
		}
		gone = append(gone, d.ID)
	}
	return gone, nil
}

// addToken adds a token's hash to a device's list, revoking the oldest
// beyond maxDeviceTokens.
func addToken(t *store.Txn, list *[]string, hash string, revoke func(string) error) error {
	*list = append(*list, hash)
	for len(*list) > maxDeviceTokens {
		if err := revoke((*list)[0]); err != nil {
			return err
		}
		*list = (*list)[1:]
	}
	return nil
}

// cutName bounds a display name given at login, on a rune boundary.
func cutName(name string) string {
	if len(name) <= maxDeviceName {
		return name
	}
	name = name[:maxDeviceName]
	for !utf8.ValidString(name) {
		name = name[:len(name)-1]
	}
	return name
}

func checkDeviceID(id string) error {
	if len(id) > maxDeviceID || strings.ContainsRune(id, 0) {
		return errs.Invalidf("a device ID has at most %d bytes, and no NUL", maxDeviceID)
	}
	return nil
}

func webDevice(d *store.Device, seen seenRec, ok bool) webui.Device {
	out := webui.Device{DeviceID: d.ID, DisplayName: d.Name, LastSeenIP: d.LastSeenIP, LastSeenTS: d.LastSeenTS}
	if ok && seen.ts > out.LastSeenTS {
		out.LastSeenTS, out.LastSeenIP = seen.ts, seen.ip
	}
	return out
}

// Devices implements webui.Devices.
func (api *API) Devices(user string) ([]webui.Device, error) {
	if err := api.adoptSessions(); err != nil {
		return nil, err
	}
	var ds []*store.Device
	if err := api.store.View(func(t *store.Txn) error {
		var err error
		ds, err = t.Devices(user)
		return err
	}); err != nil {
		return nil, err
	}
	api.dev.mu.Lock()
	defer api.dev.mu.Unlock()
	out := make([]webui.Device, 0, len(ds))
	for _, d := range ds {
		s, ok := api.dev.seen[devKey{user, d.ID}]
		out = append(out, webDevice(d, s, ok))
	}
	return out, nil
}

// Device implements webui.Devices.
func (api *API) Device(user, deviceID string) (*webui.Device, error) {
	if err := api.adoptSessions(); err != nil {
		return nil, err
	}
	var d *store.Device
	err := api.store.View(func(t *store.Txn) error {
		var err error
		d, err = t.Device(user, deviceID)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, errs.NotFoundf("you have no device %q", deviceID)
	}
	if err != nil {
		return nil, err
	}
	api.dev.mu.Lock()
	s, ok := api.dev.seen[devKey{user, d.ID}]
	api.dev.mu.Unlock()
	wd := webDevice(d, s, ok)
	return &wd, nil
}

// RenameDevice implements webui.Devices.
func (api *API) RenameDevice(user, deviceID, name string) error {
	if err := api.adoptSessions(); err != nil {
		return err
	}
	err := api.store.Update(func(t *store.Txn) error {
		d, err := t.Device(user, deviceID)
		if err != nil {
			return err
		}
		d.Name = name
		return t.PutDevice(d)
	})
	if errors.Is(err, store.ErrNotFound) {
		return errs.NotFoundf("you have no device %q", deviceID)
	}
	return err
}

// DeleteDevices implements webui.Devices.
func (api *API) DeleteDevices(ctx context.Context, user string, deviceIDs []string) error {
	return api.deleteDevices(user, func(id string) bool { return slices.Contains(deviceIDs, id) })
}

// deleteDevices deletes the user's devices that match, revoking their
// tokens.
func (api *API) deleteDevices(user string, match func(id string) bool) error {
	if err := api.adoptSessions(); err != nil {
		return err
	}
	var gone []string
	err := api.store.Update(func(t *store.Txn) error {
		gone = gone[:0]
		ds, err := t.Devices(user)
		if err != nil {
			return err
		}
		for _, d := range ds {
			if !match(d.ID) {
				continue
			}
			if err := t.DeleteDevice(user, d.ID); err != nil {
				return err
			}
			gone = append(gone, d.ID)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, id := range gone {
		api.devicesChanged(user, id, true)
	}
	return nil
}

// LogoutAll implements webui.Devices.
func (api *API) LogoutAll(ctx context.Context, user string) error {
	return api.deleteDevices(user, func(string) bool { return true })
}

// CheckPassword implements webui.Devices.
func (api *API) CheckPassword(localpart, password string) error {
	a, err := api.account(localpart)
	if errors.Is(err, store.ErrNotFound) {
		return errs.Forbiddenf("invalid username or password")
	}
	if err != nil {
		return err
	}
	if a.Deactivated || bcrypt.CompareHashAndPassword([]byte(a.PasswordHash), []byte(password)) != nil {
		return errs.Forbiddenf("invalid username or password")
	}
	return nil
}

// localOf is the local part of a user of this node.
func (api *API) localOf(user string) (string, error) {
	local, ok := strings.CutPrefix(user, "@")
	local, ok2 := strings.CutSuffix(local, ":"+api.serverName)
	if !ok || !ok2 {
		return "", errs.Invalidf("%s is not a user of this node", user)
	}
	return local, nil
}

// ChangePassword implements webui.Devices.
func (api *API) ChangePassword(ctx context.Context, sess *webui.Session, password string, logoutOthers bool) error {
	if len(password) > 72 {
		return errs.Invalidf("a password can have at most 72 bytes (%d given)", len(password))
	}
	local, err := api.localOf(sess.UserID)
	if err != nil {
		return err
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return err
	}
	if err := api.store.Update(func(t *store.Txn) error {
		a, err := t.Account(local)
		if err != nil {
			return err
		}
		a.PasswordHash = string(hash)
		return t.PutAccount(a)
	}); err != nil {
		return err
	}
	api.log.Info("password changed", "user", sess.UserID, "logout_devices", logoutOthers)
	if !logoutOthers {
		return nil
	}
	return api.deleteDevices(sess.UserID, func(id string) bool { return id != sess.DeviceID })
}

// Deactivate implements webui.Devices. The node's owner cannot: the
// node would be left with nobody to administer it and no way to be
// claimed again.
func (api *API) Deactivate(ctx context.Context, user string) error {
	local, err := api.localOf(user)
	if err != nil {
		return err
	}
	owner, err := api.owner()
	if err != nil {
		return err
	}
	if local == owner {
		return errs.Forbiddenf("the node's owner cannot deactivate their account")
	}
	if err := api.store.Update(func(t *store.Txn) error {
		a, err := t.Account(local)
		if err != nil {
			return err
		}
		a.Deactivated = true
		return t.PutAccount(a)
	}); err != nil {
		return err
	}
	if err := api.LogoutAll(ctx, user); err != nil {
		return err
	}
	api.log.Info("account deactivated", "user", user)
	// Leave every room joined, invited to or knocked on, and decline the
	// invites to rooms this node does not hold: to the end even if the
	// client that asked goes away, since nobody can ask again.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), deactivateTimeout)
	defer cancel()
	sess := &webui.Session{UserID: user}
	var failed error
	for _, r := range api.peers.Rooms() {
		switch api.peers.Membership(r, user) {
		case "join", "invite", "knock":
			if err := api.Leave(ctx, sess, r.ID, ""); err != nil {
				api.log.Warn("deactivated user leaving room", "room", r.ID, "err", err)
				failed = cmpOr(failed, err)
			}
		}
	}
	var invites []*store.Invite
	api.store.View(func(t *store.Txn) error {
		var err error
		invites, err = t.Invites(user)
		return err
	})
	for _, inv := range invites {
		if !inv.Left {
			if err := api.Leave(ctx, sess, inv.RoomID, ""); err != nil {
				failed = cmpOr(failed, err)
			}
		}
	}
	if err := api.store.Update(func(t *store.Txn) error { return t.PutProfile(user, &store.Profile{}) }); err != nil {
		return err
	}
	if failed != nil {
		return errs.Unavailablef("the account is deactivated, but leaving some rooms failed: %v", failed)
	}
	return nil
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// lifetime is how long a refreshable access token lasts.
func (api *API) lifetime() time.Duration {
	if api.cfg.AccessTokenLifetime > 0 {
		return api.cfg.AccessTokenLifetime
	}
	return DefaultAccessTokenLifetime
}

// Refreshable implements webui.Devices.
func (api *API) Refreshable(accessToken string) (string, int64, error) {
	rt := "pr_" + randomString(40)
	life := api.lifetime()
	err := api.store.Update(func(t *store.Txn) error {
		s, err := t.Session(accessToken)
		if err != nil {
			return err
		}
		d, err := t.Device(s.UserID, s.DeviceID)
		if err != nil {
			return err
		}
		return api.pair(t, d, accessToken, s, rt, "", life)
	})
	return rt, life.Milliseconds(), err
}

// pair makes an access token's session expire, and issues its refresh
// token rt (which replaces prev, if set) to device d.
func (api *API) pair(t *store.Txn, d *store.Device, at string, s *store.Session, rt, prev string, life time.Duration) error {
	now := nowMS()
	rh := store.HashToken(rt)
	s.Expires, s.Refresh, s.PrevRefresh = now+life.Milliseconds(), rh, prev
	if err := t.PutSession(at, s); err != nil {
		return err
	}
	if err := t.PutRefreshSession(rh, &store.RefreshSession{
		UserID: d.UserID, DeviceID: d.ID, Created: now, Access: store.HashToken(at), Prev: prev,
	}); err != nil {
		return err
	}
	if err := addToken(t, &d.Refresh, rh, t.DeleteRefreshSession); err != nil {
		return err
	}
	return t.PutDevice(d)
}

func errUnknownToken(msg string, soft bool) *webui.Error {
	e := &webui.Error{Status: http.StatusUnauthorized, Code: "M_UNKNOWN_TOKEN", Message: msg}
	if soft {
		// The device still exists: the client may refresh or log in
		// again to it.
		e.Extra = map[string]any{"soft_logout": true}
	}
	return e
}

// Refresh implements webui.Devices. The refresh token used stays valid
// (its access token does not) until the new access or refresh token is
// used: a client whose answer was lost can ask again.
func (api *API) Refresh(refreshToken string) (*webui.LoginResult, error) {
	hash := store.HashToken(refreshToken)
	at, rt := "pt_"+randomString(40), "pr_"+randomString(40)
	life := api.lifetime()
	var user, device string
	err := api.store.Update(func(t *store.Txn) error {
		rec, err := t.RefreshSession(hash)
		if err != nil {
			return err
		}
		d, err := t.Device(rec.UserID, rec.DeviceID)
		if err != nil {
			return err
		}
		user, device = rec.UserID, rec.DeviceID
		if rec.Prev != "" {
			// This refresh token is used: the one it replaced goes.
			if err := revokeRefresh(t, d, rec.Prev, hash); err != nil {
				return err
			}
			rec.Prev = ""
		}
		if rec.Access != "" {
			if store.RemoveHash(&d.Tokens, rec.Access) {
				if err := t.DeleteSessionHash(rec.Access); err != nil {
					return err
				}
			}
			rec.Access = ""
		}
		if err := t.PutRefreshSession(hash, rec); err != nil {
			return err
		}
		s := &store.Session{UserID: d.UserID, DeviceID: d.ID, Created: nowMS()}
		if err := addToken(t, &d.Tokens, store.HashToken(at), t.DeleteSessionHash); err != nil {
			return err
		}
		return api.pair(t, d, at, s, rt, hash, life)
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, errUnknownToken("unknown or revoked refresh token", false)
	}
	if err != nil {
		return nil, err
	}
	return &webui.LoginResult{UserID: user, DeviceID: device, AccessToken: at, RefreshToken: rt, ExpiresInMS: life.Milliseconds()}, nil
}

// revokeRefresh revokes the refresh token prev of device d, and the
// other tokens issued for it but keep (a client that asked twice): once
// one replacement is used, the others are not.
func revokeRefresh(t *store.Txn, d *store.Device, prev, keep string) error {
	if store.RemoveHash(&d.Refresh, prev) {
		if err := t.DeleteRefreshSession(prev); err != nil {
			return err
		}
	}
	for _, h := range slices.Clone(d.Refresh) {
		if h == keep {
			continue
		}
		r, err := t.RefreshSession(h)
		if errors.Is(err, store.ErrNotFound) {
			store.RemoveHash(&d.Refresh, h)
			continue
		}
		if err != nil {
			return err
		}
		if r.Prev != prev {
			continue
		}
		store.RemoveHash(&d.Refresh, h)
		if err := t.DeleteRefreshSession(h); err != nil {
			return err
		}
		if r.Access != "" && store.RemoveHash(&d.Tokens, r.Access) {
			if err := t.DeleteSessionHash(r.Access); err != nil {
				return err
			}
		}
	}
	return t.PutDevice(d)
}

// firstUse is the first request with an access token issued by Refresh:
// the refresh token it replaced is revoked.
func (api *API) firstUse(token string) {
	err := api.store.Update(func(t *store.Txn) error {
		s, err := t.Session(token)
		if err != nil || s.PrevRefresh == "" {
			return err
		}
		d, err := t.Device(s.UserID, s.DeviceID)
		if err != nil {
			return err
		}
		if err := revokeRefresh(t, d, s.PrevRefresh, s.Refresh); err != nil {
			return err
		}
		s.PrevRefresh = ""
		return t.PutSession(token, s)
	})
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		api.log.Warn("revoke a replaced refresh token", "err", err)
	}
}

// Seen implements webui.Devices: it keeps the time and address in
// memory, and writes them to the device's record at most once every
// seenWriteEvery.
func (api *API) Seen(sess *webui.Session, ip string) {
	if sess.DeviceID == cliDevice {
		return
	}
	now := nowMS()
	k := devKey{sess.UserID, sess.DeviceID}
	api.dev.mu.Lock()
	if api.dev.seen == nil {
		api.dev.seen = map[devKey]seenRec{}
	}
	rec := api.dev.seen[k]
	write := now-rec.stored >= seenWriteEvery.Milliseconds()
	rec.ts, rec.ip = now, ip
	if write {
		rec.stored = now
	}
	api.dev.seen[k] = rec
	api.dev.mu.Unlock()
	if !write {
		return
	}
	// Queued, not waited for: the request goes on while it commits.
	gone := false
	api.store.UpdateThen(func(t *store.Txn) error {
		d, err := t.Device(sess.UserID, sess.DeviceID)
		gone = errors.Is(err, store.ErrNotFound)
		if gone {
			return nil // deleted meanwhile, or not adopted yet
		}
		if err != nil {
			return err
		}
		d.LastSeenTS, d.LastSeenIP = now, ip
		return t.PutDevice(d)
	}, func(err error) {
		if err != nil {
			api.log.Warn("note a device's last use", "err", err)
		}
		if gone {
			api.dev.mu.Lock()
			delete(api.dev.seen, k)
			api.dev.mu.Unlock()
		}
	})
}
