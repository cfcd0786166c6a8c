package node

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/parley-p2p/parley/internal/testkit"
	"github.com/parley-p2p/parley/node/store"
)

// matrixErr is the status and errcode of a failed request, and its body's
// other fields (a UIA answer's flows and session); status 0 if err is nil.
func matrixErr(err error) (status int, code string, extra map[string]any) {
	var he mautrix.HTTPError
	if errors.As(err, &he) {
		if he.Response != nil {
			status = he.Response.StatusCode
		}
		if he.RespError != nil {
			code, extra = he.RespError.ErrCode, he.RespError.ExtraData
		}
	}
	return status, code, extra
}

func wantErr(t *testing.T, what string, err error, status int, code string) map[string]any {
	t.Helper()
	s, c, extra := matrixErr(err)
	if s != status || c != code {
		t.Fatalf("%s: %v (status %d, errcode %q), want %d %s", what, err, s, c, status, code)
	}
	return extra
}

// login logs a user in from a new device and returns its client.
func (tn *testNode) login(ctx context.Context, name, deviceName string, refresh bool) (*mautrix.Client, *mautrix.RespLogin) {
	tn.t.Helper()
	c := tn.client()
	resp, err := c.Login(ctx, &mautrix.ReqLogin{
		Type:                     mautrix.AuthTypePassword,
		Identifier:               mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: name},
		Password:                 testPassword(name),
		InitialDeviceDisplayName: deviceName,
		RefreshToken:             refresh,
		StoreCredentials:         true,
	})
	if err != nil {
		tn.t.Fatalf("login %s: %v", name, err)
	}
	return c, resp
}

// passwordAuth is the m.login.password stage of user-interactive auth.
func passwordAuth(user id.UserID, password, session string) map[string]any {
	return map[string]any{
		"type":       "m.login.password",
		"identifier": map[string]string{"type": "m.id.user", "user": string(user)},
		"password":   password,
		"session":    session,
	}
}

// do makes a request of the client API (v3), and returns the body of an
// error answer decoded (mautrix keeps it only when it has an errcode,
// which a first UIA answer has not).
func do(ctx context.Context, c *mautrix.Client, method string, path []any, body, out any) (map[string]any, error) {
	data, err := c.MakeRequest(ctx, method, c.BuildClientURL(append([]any{"v3"}, path...)...), body, out)
	var extra map[string]any
	if err != nil {
		json.Unmarshal(data, &extra)
	}
	return extra, err
}

// uiaSession checks a first UIA answer (401, the password flow, no
// errcode) and returns its session.
func uiaSession(t *testing.T, what string, extra map[string]any, err error) string {
	t.Helper()
	wantErr(t, what, err, http.StatusUnauthorized, "")
	session, _ := extra["session"].(string)
	flows, _ := extra["flows"].([]any)
	if session == "" || len(flows) != 1 {
		t.Fatalf("%s: UIA answer %v, want one flow and a session", what, extra)
	}
	if stages := flows[0].(map[string]any)["stages"].([]any); len(stages) != 1 || stages[0] != "m.login.password" {
		t.Fatalf("%s: flows %v, want [m.login.password]", what, flows)
	}
	return session
}

func whoami(ctx context.Context, c *mautrix.Client) error {
	_, err := c.Whoami(ctx)
	return err
}

// refreshed is the answer to POST /refresh (mautrix has no type for it).
type refreshed struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	ExpiresInMS  int64  `json:"expires_in_ms"`
}

func post(ctx context.Context, c *mautrix.Client, path []any, body, out any) (map[string]any, error) {
	return do(ctx, c, http.MethodPost, path, body, out)
}

// TestDevicesAreListedNamedAndSeen: each login is a device with the name
// it gave, its last use and address; a device can be renamed; another
// user's or an unknown device is 404.
func TestDevicesAreListedNamedAndSeen(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a := newTestNode(t, testOpts{regToken: "reg-token-123"})
	alice := a.register(ctx, "alice")
	bob := a.register(ctx, "bob")
	phone, _ := a.login(ctx, "alice", "alice's phone", false)
	if err := whoami(ctx, phone); err != nil {
		t.Fatal(err)
	}

	list, err := alice.GetDevicesInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[id.DeviceID]mautrix.RespDeviceInfo{}
	for _, d := range list.Devices {
		byID[d.DeviceID] = d
	}
	if len(byID) != 2 {
		t.Fatalf("devices %+v, want alice's two", list.Devices)
	}
	p, ok := byID[phone.DeviceID]
	if !ok || p.DisplayName != "alice's phone" {
		t.Errorf("the phone's device: %+v, want the name it logged in with", p)
	}
	if p.LastSeenIP != "127.0.0.1" || p.LastSeenTS == 0 {
		t.Errorf("the phone, seen at %d from %q; want a time and 127.0.0.1", p.LastSeenTS, p.LastSeenIP)
	}
	if _, ok := byID[alice.DeviceID]; !ok {
		t.Errorf("devices %+v lack the one registration made", list.Devices)
	}

	if err := alice.SetDeviceInfo(ctx, phone.DeviceID, &mautrix.ReqDeviceInfo{DisplayName: "old phone"}); err != nil {
		t.Fatal(err)
	}
	got, err := phone.GetDeviceInfo(ctx, phone.DeviceID)
	if err != nil || got.DisplayName != "old phone" {
		t.Errorf("after renaming: %+v, %v; want old phone", got, err)
	}

	_, err = alice.GetDeviceInfo(ctx, bob.DeviceID)
	wantErr(t, "alice reads bob's device", err, http.StatusNotFound, "M_NOT_FOUND")
	_, err = alice.GetDeviceInfo(ctx, "NOSUCHDEVICE")
	wantErr(t, "an unknown device", err, http.StatusNotFound, "M_NOT_FOUND")
	err = alice.SetDeviceInfo(ctx, bob.DeviceID, &mautrix.ReqDeviceInfo{DisplayName: "mine now"})
	wantErr(t, "alice renames bob's device", err, http.StatusNotFound, "M_NOT_FOUND")
	if got, _ := bob.GetDeviceInfo(ctx, bob.DeviceID); got == nil || got.DisplayName == "mine now" {
		t.Errorf("bob's device after alice's try: %+v", got)
	}
	long := make([]byte, 300)
	for i := range long {
		long[i] = 'x'
	}
	err = alice.SetDeviceInfo(ctx, phone.DeviceID, &mautrix.ReqDeviceInfo{DisplayName: string(long)})
	wantErr(t, "a 300-byte name", err, http.StatusBadRequest, "M_INVALID_PARAM")

	// whois shows the caller's own sessions, and nobody else's.
	who, err := phone.AdminWhoIs(ctx, phone.UserID)
	if err != nil {
		t.Fatal(err)
	}
	if who.UserID != phone.UserID || len(who.Devices) != 2 {
		t.Fatalf("whois: %+v, want alice's two devices", who)
	}
	if s := who.Devices[phone.DeviceID].Sessions; len(s) != 1 || len(s[0].Connections) != 1 ||
		s[0].Connections[0].IP != "127.0.0.1" || s[0].Connections[0].LastSeen.IsZero() {
		t.Errorf("whois: the phone's sessions %+v, want one seen from 127.0.0.1", s)
	}
	_, err = alice.AdminWhoIs(ctx, bob.UserID)
	wantErr(t, "alice looks bob up", err, http.StatusForbidden, "M_FORBIDDEN")
}

// TestDeletingDevicesAsksForThePassword: DELETE /devices/{id} and POST
// /delete_devices answer 401 with the password flow until the retry
// carries the user's password in the session given; a wrong password,
// another user's, or a session of another operation is refused; once
// deleted, a device's token no longer works.
func TestDeletingDevicesAsksForThePassword(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a := newTestNode(t, testOpts{regToken: "reg-token-123"})
	alice := a.register(ctx, "alice")
	a.register(ctx, "bob")
	phone, _ := a.login(ctx, "alice", "phone", false)

	del := func(device id.DeviceID, auth any) (map[string]any, error) {
		return do(ctx, alice, http.MethodDelete, []any{"devices", device}, map[string]any{"auth": auth}, nil)
	}
	extra, err := del(phone.DeviceID, nil)
	session := uiaSession(t, "delete without auth", extra, err)

	_, err = del(phone.DeviceID, passwordAuth(alice.UserID, "not the password", session))
	extra = wantErr(t, "a wrong password", err, http.StatusUnauthorized, "M_FORBIDDEN")
	if extra["flows"] == nil || extra["session"] != session {
		t.Errorf("the wrong password's answer %v lacks the flows or the session", extra)
	}
	_, err = del(phone.DeviceID, passwordAuth("@bob:"+id.UserID(a.ServerName()), testPassword("bob"), session))
	wantErr(t, "bob's password for alice", err, http.StatusUnauthorized, "M_FORBIDDEN")
	_, err = del(phone.DeviceID, passwordAuth(alice.UserID, testPassword("alice"), "made-up-session"))
	wantErr(t, "an unknown session", err, http.StatusUnauthorized, "M_FORBIDDEN")
	// A session given for deleting many devices is not one for this.
	extra, err = post(ctx, alice, []any{"delete_devices"}, map[string]any{"devices": []id.DeviceID{phone.DeviceID}}, nil)
	other := uiaSession(t, "delete_devices without auth", extra, err)
	_, err = del(phone.DeviceID, passwordAuth(alice.UserID, testPassword("alice"), other))
	wantErr(t, "another operation's session", err, http.StatusUnauthorized, "M_FORBIDDEN")
	if err := whoami(ctx, phone); err != nil {
		t.Fatalf("the phone after refused deletions: %v", err)
	}

	if _, err := del(phone.DeviceID, passwordAuth(alice.UserID, testPassword("alice"), session)); err != nil {
		t.Fatalf("delete with the password: %v", err)
	}
	wantErr(t, "the deleted device's token", whoami(ctx, phone), http.StatusUnauthorized, "M_UNKNOWN_TOKEN")
	if _, err := alice.GetDeviceInfo(ctx, phone.DeviceID); err == nil {
		t.Error("the deleted device is still there")
	}
	// The session is spent.
	_, err = del(alice.DeviceID, passwordAuth(alice.UserID, testPassword("alice"), session))
	wantErr(t, "a spent session", err, http.StatusUnauthorized, "M_FORBIDDEN")

	// Many at once: unknown IDs are skipped.
	p1, _ := a.login(ctx, "alice", "one", false)
	p2, _ := a.login(ctx, "alice", "two", false)
	_, err = post(ctx, alice, []any{"delete_devices"}, map[string]any{}, nil)
	wantErr(t, "delete_devices without devices", err, http.StatusBadRequest, "M_MISSING_PARAM")
	req := &mautrix.ReqDeleteDevices[any]{Devices: []id.DeviceID{p1.DeviceID, p2.DeviceID, "NOSUCHDEVICE"}}
	extra, err = post(ctx, alice, []any{"delete_devices"}, req, nil)
	session = uiaSession(t, "delete_devices", extra, err)
	req.Auth = passwordAuth(alice.UserID, testPassword("alice"), session)
	if _, err := post(ctx, alice, []any{"delete_devices"}, req, nil); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*mautrix.Client{p1, p2} {
		wantErr(t, "a token of a device deleted with others", whoami(ctx, c), http.StatusUnauthorized, "M_UNKNOWN_TOKEN")
	}
	list, err := alice.GetDevicesInfo(ctx)
	if err != nil || len(list.Devices) != 1 || list.Devices[0].DeviceID != alice.DeviceID {
		t.Errorf("devices left: %+v, %v; want alice's first alone", list, err)
	}
}

// TestLogoutDeletesTheDevice: /logout deletes the caller's device (not
// only its token); /logout/all every device of the user, and no one
// else's.
func TestLogoutDeletesTheDevice(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a := newTestNode(t, testOpts{regToken: "reg-token-123"})
	alice := a.register(ctx, "alice")
	bob := a.register(ctx, "bob")
	phone, _ := a.login(ctx, "alice", "phone", false)
	if _, err := phone.Logout(ctx); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "a logged-out token", whoami(ctx, phone), http.StatusUnauthorized, "M_UNKNOWN_TOKEN")
	if _, err := alice.GetDeviceInfo(ctx, phone.DeviceID); err == nil {
		t.Error("the logged-out device is still listed")
	}

	tablet, _ := a.login(ctx, "alice", "tablet", false)
	if _, err := tablet.LogoutAll(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*mautrix.Client{alice, tablet} {
		wantErr(t, "a token after /logout/all", whoami(ctx, c), http.StatusUnauthorized, "M_UNKNOWN_TOKEN")
	}
	if err := whoami(ctx, bob); err != nil {
		t.Errorf("bob after alice's /logout/all: %v", err)
	}
	again, _ := a.login(ctx, "alice", "again", false)
	list, err := again.GetDevicesInfo(ctx)
	if err != nil || len(list.Devices) != 1 {
		t.Errorf("devices after /logout/all and a login: %+v, %v; want the new one alone", list, err)
	}
}

// TestChangingThePassword: POST /account/password asks for the old
// password, then logs out every other device unless logout_devices is
// false; the old password stops working.
func TestChangingThePassword(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a := newTestNode(t, testOpts{})
	alice := a.register(ctx, "alice")
	phone, _ := a.login(ctx, "alice", "phone", false)

	var caps struct {
		Capabilities map[string]struct {
			Enabled bool `json:"enabled"`
		} `json:"capabilities"`
	}
	if _, err := alice.MakeRequest(ctx, http.MethodGet, alice.BuildClientURL("v3", "capabilities"), nil, &caps); err != nil {
		t.Fatal(err)
	}
	if !caps.Capabilities["m.change_password"].Enabled {
		t.Error("m.change_password is not enabled in /capabilities")
	}

	change := func(c *mautrix.Client, body map[string]any) error {
		_, err := post(ctx, c, []any{"account", "password"}, body, nil)
		return err
	}
	wantErr(t, "no new_password", change(alice, map[string]any{}), http.StatusBadRequest, "M_MISSING_PARAM")
	wantErr(t, "a weak password", change(alice, map[string]any{"new_password": "short"}), http.StatusBadRequest, "M_WEAK_PASSWORD")
	const newPassword = "a much better password"
	extra, err := post(ctx, alice, []any{"account", "password"}, map[string]any{"new_password": newPassword}, nil)
	session := uiaSession(t, "password without auth", extra, err)
	err = change(alice, map[string]any{"new_password": newPassword, "auth": passwordAuth(alice.UserID, "wrong password", session)})
	wantErr(t, "a wrong old password", err, http.StatusUnauthorized, "M_FORBIDDEN")
	err = change(alice, map[string]any{"new_password": newPassword, "auth": passwordAuth(alice.UserID, testPassword("alice"), session)})
	if err != nil {
		t.Fatal(err)
	}
	if err := whoami(ctx, alice); err != nil {
		t.Errorf("the device that changed the password: %v", err)
	}
	wantErr(t, "another device after the change", whoami(ctx, phone), http.StatusUnauthorized, "M_UNKNOWN_TOKEN")
	_, err = a.client().Login(ctx, &mautrix.ReqLogin{Type: mautrix.AuthTypePassword,
		Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "alice"}, Password: testPassword("alice")})
	wantErr(t, "the old password", err, http.StatusForbidden, "M_FORBIDDEN")
	tablet := a.client()
	if _, err := tablet.Login(ctx, &mautrix.ReqLogin{Type: mautrix.AuthTypePassword, StoreCredentials: true,
		Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "alice"}, Password: newPassword}); err != nil {
		t.Fatalf("login with the new password: %v", err)
	}

	// logout_devices: false keeps the other devices.
	extra, err = post(ctx, alice, []any{"account", "password"}, map[string]any{"new_password": "third password!", "logout_devices": false}, nil)
	session = uiaSession(t, "second change", extra, err)
	err = change(alice, map[string]any{"new_password": "third password!", "logout_devices": false, "auth": passwordAuth(alice.UserID, newPassword, session)})
	if err != nil {
		t.Fatal(err)
	}
	if err := whoami(ctx, tablet); err != nil {
		t.Errorf("another device after a change with logout_devices false: %v", err)
	}
}

// TestDeactivatedAccountLeavesItsRooms: POST /account/deactivate asks for
// the password, logs every device out, leaves the rooms the user is in
// or invited to, and the name can neither log in nor register again. The
// node's owner cannot deactivate.
func TestDeactivatedAccountLeavesItsRooms(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a := newTestNode(t, testOpts{regToken: "reg-token-123"})
	alice := a.register(ctx, "alice")
	bob := a.register(ctx, "bob")
	joined := privateRoom(t, ctx, alice)
	joinThrough(t, ctx, joined, alice, bob)
	invited := privateRoom(t, ctx, alice)
	if _, err := alice.InviteUser(ctx, invited, &mautrix.ReqInviteUser{UserID: bob.UserID}); err != nil {
		t.Fatal(err)
	}
	phone, _ := a.login(ctx, "bob", "phone", false)

	var threepids struct {
		ThreePIDs []any `json:"threepids"`
	}
	if _, err := bob.MakeRequest(ctx, http.MethodGet, bob.BuildClientURL("v3", "account", "3pid"), nil, &threepids); err != nil || threepids.ThreePIDs == nil {
		t.Errorf("/account/3pid: %+v, %v; want an empty list", threepids, err)
	}

	deactivate := func(c *mautrix.Client, auth any) (map[string]any, error) {
		var out map[string]any
		extra, err := post(ctx, c, []any{"account", "deactivate"}, map[string]any{"auth": auth}, &out)
		if err != nil {
			return extra, err
		}
		return out, nil
	}
	extra, err := deactivate(bob, nil)
	session := uiaSession(t, "deactivate without auth", extra, err)
	_, err = deactivate(bob, passwordAuth(bob.UserID, "wrong password", session))
	wantErr(t, "deactivate with a wrong password", err, http.StatusUnauthorized, "M_FORBIDDEN")
	out, err := deactivate(bob, passwordAuth(bob.UserID, testPassword("bob"), session))
	if err != nil {
		t.Fatal(err)
	}
	if out["id_server_unbind_result"] != "no-support" {
		t.Errorf("deactivate answered %v", out)
	}

	for _, c := range []*mautrix.Client{bob, phone} {
		wantErr(t, "a deactivated user's token", whoami(ctx, c), http.StatusUnauthorized, "M_UNKNOWN_TOKEN")
	}
	for _, room := range []id.RoomID{joined, invited} {
		testkit.WaitFor(t, 20*time.Second, "bob to leave "+room.String(), func() bool {
			return a.membership(a.getRoom(room.String()), bob.UserID.String()) == "leave"
		})
	}
	_, err = a.client().Login(ctx, &mautrix.ReqLogin{Type: mautrix.AuthTypePassword,
		Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "bob"}, Password: testPassword("bob")})
	wantErr(t, "a deactivated user's login", err, http.StatusForbidden, "M_USER_DEACTIVATED")
	_, err = registerWithToken(ctx, a.client(), "bob", "another password", "reg-token-123")
	wantErr(t, "registering the name again", err, http.StatusBadRequest, "M_USER_IN_USE")

	extra, err = deactivate(alice, nil)
	session = uiaSession(t, "the owner's deactivate", extra, err)
	_, err = deactivate(alice, passwordAuth(alice.UserID, testPassword("alice"), session))
	wantErr(t, "the owner deactivating", err, http.StatusForbidden, "M_FORBIDDEN")
	if err := whoami(ctx, alice); err != nil {
		t.Errorf("the owner after a refused deactivation: %v", err)
	}
}

// TestRefreshTokens: a login or registration that asks for a refresh
// token gets one, with an access token that expires; /refresh swaps it
// for a new pair, the old refresh token working until the new access
// token is used. Without asking, tokens do not expire.
func TestRefreshTokens(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a := newTestNode(t, testOpts{regToken: "reg-token-123"})
	a.register(ctx, "alice")
	anon := a.client()
	refresh := func(rt string) (*refreshed, error) {
		var out refreshed
		_, err := post(ctx, anon, []any{"refresh"}, map[string]string{"refresh_token": rt}, &out)
		return &out, err
	}
	withToken := func(at string) *mautrix.Client {
		c := a.client()
		c.SetCredentials("@alice:"+id.UserID(a.ServerName()), at)
		return c
	}

	_, plain := a.login(ctx, "alice", "plain", false)
	if plain.RefreshToken != "" || plain.ExpiresInMS != 0 {
		t.Errorf("a login without refresh_token got %q, expiring in %d ms", plain.RefreshToken, plain.ExpiresInMS)
	}
	c1, l := a.login(ctx, "alice", "refreshing", true)
	if l.RefreshToken == "" || l.ExpiresInMS != time.Hour.Milliseconds() {
		t.Fatalf("a login with refresh_token: %q, expiring in %d ms; want a token and an hour", l.RefreshToken, l.ExpiresInMS)
	}
	if err := whoami(ctx, c1); err != nil {
		t.Fatal(err)
	}

	r2, err := refresh(l.RefreshToken)
	if err != nil || r2.AccessToken == "" || r2.RefreshToken == "" || r2.ExpiresInMS <= 0 {
		t.Fatalf("refresh: %+v, %v", r2, err)
	}
	wantErr(t, "the access token refreshed", whoami(ctx, c1), http.StatusUnauthorized, "M_UNKNOWN_TOKEN")
	// The answer was lost, say: the old refresh token still works, until
	// a new access token is used.
	r3, err := refresh(l.RefreshToken)
	if err != nil {
		t.Fatalf("the old refresh token before the new access token is used: %v", err)
	}
	c3 := withToken(r3.AccessToken)
	if err := whoami(ctx, c3); err != nil {
		t.Fatal(err)
	}
	_, err = refresh(l.RefreshToken)
	wantErr(t, "the old refresh token once the new access token is used", err, http.StatusUnauthorized, "M_UNKNOWN_TOKEN")
	_, err = refresh(r2.RefreshToken)
	wantErr(t, "the other replacement of the old refresh token", err, http.StatusUnauthorized, "M_UNKNOWN_TOKEN")
	wantErr(t, "the other replacement's access token", whoami(ctx, withToken(r2.AccessToken)), http.StatusUnauthorized, "M_UNKNOWN_TOKEN")

	// Using the new refresh token revokes the old one too.
	r4, err := refresh(r3.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	r5, err := refresh(r4.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	_, err = refresh(r3.RefreshToken)
	wantErr(t, "a refresh token whose replacement was used", err, http.StatusUnauthorized, "M_UNKNOWN_TOKEN")

	_, err = refresh("pr_made-up")
	wantErr(t, "an unknown refresh token", err, http.StatusUnauthorized, "M_UNKNOWN_TOKEN")
	_, err = post(ctx, anon, []any{"refresh"}, map[string]string{}, nil)
	wantErr(t, "no refresh token", err, http.StatusBadRequest, "M_MISSING_PARAM")

	// Deleting the device revokes its refresh token.
	c5 := withToken(r5.AccessToken)
	if _, err := c5.Logout(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = refresh(r5.RefreshToken)
	wantErr(t, "the refresh token of a logged-out device", err, http.StatusUnauthorized, "M_UNKNOWN_TOKEN")

	// Registration asks the same way.
	reg := a.client()
	req := &mautrix.ReqRegister[any]{Username: "bob", Password: testPassword("bob"), RefreshToken: true}
	_, uia, _ := reg.Register(ctx, req)
	if uia == nil {
		t.Fatal("no UIA for registration")
	}
	req.Auth = map[string]any{"type": authRegistrationToken, "token": "reg-token-123", "session": uia.Session}
	resp, _, err := reg.Register(ctx, req)
	if err != nil || resp.RefreshToken == "" || resp.ExpiresInMS <= 0 {
		t.Fatalf("register with refresh_token: %+v, %v", resp, err)
	}
}

// TestAccessTokensExpire: an access token issued with a refresh token
// stops working once its lifetime is over, with soft_logout; refreshing
// gives a working one.
func TestAccessTokensExpire(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a := newTestNode(t, testOpts{accessTokenLifetime: 50 * time.Millisecond})
	a.register(ctx, "alice")
	c, l := a.login(ctx, "alice", "short-lived", true)
	if l.ExpiresInMS != 50 {
		t.Errorf("expires_in_ms %d, want 50", l.ExpiresInMS)
	}
	var extra map[string]any
	testkit.WaitFor(t, 10*time.Second, "the access token to expire", func() bool {
		var status int
		var code string
		status, code, extra = matrixErr(whoami(ctx, c))
		return status == http.StatusUnauthorized && code == "M_UNKNOWN_TOKEN"
	})
	if extra["soft_logout"] != true {
		t.Errorf("the expired token's answer %v lacks soft_logout", extra)
	}
	var r refreshed
	if _, err := post(ctx, a.client(), []any{"refresh"}, map[string]string{"refresh_token": l.RefreshToken}, &r); err != nil {
		t.Fatal(err)
	}
	if r.AccessToken == "" || r.ExpiresInMS != 50 {
		t.Errorf("refresh after expiry: %+v", r)
	}
}

// TestRegisteringWithoutLoginMakesNoDevice: inhibit_login creates the
// account alone; its first login is its only device.
func TestRegisteringWithoutLoginMakesNoDevice(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a := newTestNode(t, testOpts{regToken: "reg-token-123"})
	a.register(ctx, "alice")
	c := a.client()
	req := &mautrix.ReqRegister[any]{Username: "bob", Password: testPassword("bob"), InhibitLogin: true}
	_, uia, _ := c.Register(ctx, req)
	if uia == nil {
		t.Fatal("no UIA for registration")
	}
	req.Auth = map[string]any{"type": authRegistrationToken, "token": "reg-token-123", "session": uia.Session}
	resp, _, err := c.Register(ctx, req)
	if err != nil || resp.AccessToken != "" || resp.DeviceID != "" {
		t.Fatalf("register with inhibit_login: %+v, %v; want no token and no device", resp, err)
	}
	bob, _ := a.login(ctx, "bob", "first", false)
	list, err := bob.GetDevicesInfo(ctx)
	if err != nil || len(list.Devices) != 1 || list.Devices[0].DeviceID != bob.DeviceID {
		t.Errorf("devices after the first login: %+v, %v; want that login's alone", list, err)
	}
}

// TestSessionsFromBeforeDevicesAreAdopted: a token stored before devices
// were recorded is listed as its device, and deleting that device revokes
// it.
func TestSessionsFromBeforeDevicesAreAdopted(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a := newTestNode(t, testOpts{})
	alice := a.register(ctx, "alice")
	err := a.store.Update(func(tx *store.Txn) error {
		return tx.PutSession("pt_legacy-token", &store.Session{UserID: alice.UserID.String(), DeviceID: "LEGACY"})
	})
	if err != nil {
		t.Fatal(err)
	}
	legacy := a.client()
	legacy.SetCredentials(alice.UserID, "pt_legacy-token")
	info, err := legacy.GetDeviceInfo(ctx, "LEGACY")
	if err != nil || info.DeviceID != "LEGACY" {
		t.Fatalf("the legacy session's device: %+v, %v", info, err)
	}
	del := func(auth any) (map[string]any, error) {
		return do(ctx, alice, http.MethodDelete, []any{"devices", "LEGACY"}, map[string]any{"auth": auth}, nil)
	}
	extra, err := del(nil)
	session := uiaSession(t, "delete the legacy device", extra, err)
	if _, err := del(passwordAuth(alice.UserID, testPassword("alice"), session)); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "the legacy token after its device was deleted", whoami(ctx, legacy), http.StatusUnauthorized, "M_UNKNOWN_TOKEN")
}
