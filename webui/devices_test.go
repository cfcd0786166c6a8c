package webui

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parley-p2p/parley/errs"
)

// fakeDevices checks passwords against the fake accounts and records what
// it is asked to change.
type fakeDevices struct {
	*record
	acc *fakeAccounts
}

func (f *fakeDevices) Devices(user string) ([]Device, error) { f.call("Devices"); return nil, nil }

func (f *fakeDevices) Device(user, id string) (*Device, error) {
	f.call("Device")
	return nil, errs.NotFoundf("no device %s", id)
}

func (f *fakeDevices) RenameDevice(user, id, name string) error {
	f.changed("RenameDevice", "RenameDevice %s %s", id, name)
	return nil
}

func (f *fakeDevices) DeleteDevices(_ context.Context, user string, ids []string) error {
	f.changed("DeleteDevices", "DeleteDevices %s %v", user, ids)
	return nil
}

func (f *fakeDevices) LogoutAll(_ context.Context, user string) error {
	f.changed("LogoutAll", "LogoutAll %s", user)
	return nil
}

func (f *fakeDevices) CheckPassword(local, password string) error {
	f.call("CheckPassword")
	if want, ok := f.acc.passwords[local]; !ok || want != password {
		return errs.Forbiddenf("invalid username or password")
	}
	return nil
}

func (f *fakeDevices) ChangePassword(_ context.Context, s *Session, password string, logoutOthers bool) error {
	f.changed("ChangePassword", "ChangePassword %s logout=%v", s.UserID, logoutOthers)
	return nil
}

func (f *fakeDevices) Deactivate(_ context.Context, user string) error {
	f.changed("Deactivate", "Deactivate %s", user)
	return nil
}

func (f *fakeDevices) Refreshable(at string) (string, int64, error) {
	f.changed("Refreshable", "Refreshable")
	return "rt-for-" + at, 1000, nil
}

func (f *fakeDevices) Refresh(rt string) (*LoginResult, error) {
	f.call("Refresh")
	return nil, &Error{Status: http.StatusUnauthorized, Code: "M_UNKNOWN_TOKEN", Message: "unknown refresh token"}
}

func (f *fakeDevices) Seen(*Session, string) { f.call("Seen") }

// withDevices serves the fake accounts and fakeDevices.
func withDevices(t *testing.T) *harness {
	h := newHarness(t)
	h.srv = New(Config{Addr: testAddr}, Backends{Accounts: h.acc, Devices: &fakeDevices{record: h.rec, acc: h.acc}})
	h.h = h.srv.Handler()
	return h
}

func TestUIASessions(t *testing.T) {
	now := time.Unix(1000, 0)
	t.Run("a session is good for its user and operation only", func(t *testing.T) {
		var u uiaSessions
		id := u.start("@a:x", "delete devices", now)
		if !u.valid(id, "@a:x", "delete devices", now) {
			t.Error("the session is not valid for what it was made for")
		}
		if u.valid(id, "@b:x", "delete devices", now) || u.valid(id, "@a:x", "deactivate", now) || u.valid("other", "@a:x", "delete devices", now) {
			t.Error("the session is valid for another user, operation or ID")
		}
	})
	t.Run("a session expires", func(t *testing.T) {
		var u uiaSessions
		id := u.start("@a:x", "deactivate", now)
		if u.valid(id, "@a:x", "deactivate", now.Add(uiaLifetime+time.Second)) {
			t.Error("the session is valid after its lifetime")
		}
		if u.len() != 0 {
			t.Errorf("%d sessions kept after expiry", u.len())
		}
	})
	t.Run("at most maxUIASessions are kept, the oldest going first", func(t *testing.T) {
		var u uiaSessions
		first := u.start("@a:x", "deactivate", now)
		for i := range maxUIASessions + 10 {
			u.start("@b:x", "deactivate", now.Add(time.Duration(i+1)*time.Millisecond))
		}
		if u.len() != maxUIASessions {
			t.Errorf("%d sessions kept, want %d", u.len(), maxUIASessions)
		}
		if u.valid(first, "@a:x", "deactivate", now) {
			t.Error("the oldest session survived")
		}
	})
}

func TestUserInteractiveAuth(t *testing.T) {
	h := withDevices(t)
	tok := h.acc.addUser("alice", "alice's password")
	h.acc.addUser("bob", "bob's password")
	auth := func(user, password, session string) string {
		b, _ := json.Marshal(map[string]any{"type": "m.login.password", "session": session, "password": password,
			"identifier": map[string]string{"type": "m.id.user", "user": user}})
		return string(b)
	}
	del := func(body string) (int, map[string]any) {
		w := h.do("DELETE", v3+"/devices/PHONE", body, token(tok))
		return w.Code, decode(t, w)
	}

	code, first := del("")
	session, _ := first["session"].(string)
	if code != http.StatusUnauthorized || first["errcode"] != nil || session == "" || first["flows"] == nil {
		t.Fatalf("the first answer: %d %v; want 401 with flows, a session and no errcode", code, first)
	}
	for _, c := range []struct{ name, body string }{
		{"a wrong password", auth("alice", "guess", session)},
		{"another user's password", auth("bob", "bob's password", session)},
		{"an unknown session", auth("alice", "alice's password", "nope")},
		{"another stage", `{"type":"m.login.dummy","session":"` + session + `"}`},
	} {
		code, got := del(`{"auth":` + c.body + `}`)
		if code != http.StatusUnauthorized || got["errcode"] != "M_FORBIDDEN" || got["flows"] == nil {
			t.Errorf("%s: %d %v; want 401 M_FORBIDDEN with the flows", c.name, code, got)
		}
	}
	if slices.ContainsFunc(h.rec.Changes(), func(s string) bool { return strings.HasPrefix(s, "DeleteDevices") }) {
		t.Fatalf("a device was deleted without the password: %v", h.rec.Changes())
	}
	if code, got := del(`{"auth":` + auth("@alice:"+fakeServer, "alice's password", session) + `}`); code != http.StatusOK {
		t.Fatalf("with the password: %d %v", code, got)
	}
	if want := fmt.Sprintf("DeleteDevices %s [PHONE]", userID("alice")); !slices.Contains(h.rec.Changes(), want) {
		t.Errorf("changes %v, want %q", h.rec.Changes(), want)
	}
	if w := h.do("DELETE", v3+"/devices/PHONE", `{"auth":"not an object"}`, token(tok)); w.Code != http.StatusBadRequest {
		t.Errorf("auth that is not an object: %d %s", w.Code, w.Body)
	}

	// Wrong passwords count against the user as failed logins do.
	_, first = del("")
	session = first["session"].(string)
	limited := false
	for range 20 {
		if code, got := del(`{"auth":` + auth("alice", "guess", session) + `}`); code == http.StatusTooManyRequests && got["errcode"] == "M_LIMIT_EXCEEDED" {
			limited = true
			break
		}
	}
	if !limited {
		t.Error("20 wrong passwords in a row were never limited")
	}
}

func TestDeviceEndpointsRefuseBadInput(t *testing.T) {
	h := withDevices(t)
	tok := h.acc.addUser("alice", "alice's password")
	for _, c := range []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		{"delete_devices without devices", "POST", "/delete_devices", `{}`, 400, "M_MISSING_PARAM"},
		{"delete_devices with too many", "POST", "/delete_devices", `{"devices":[` + strings.Repeat(`"D",`, maxDeleteDevices) + `"D"]}`, 400, "M_INVALID_PARAM"},
		{"a device name too long", "PUT", "/devices/D", `{"display_name":"` + strings.Repeat("x", maxDeviceName+1) + `"}`, 400, "M_INVALID_PARAM"},
		{"a password change without one", "POST", "/account/password", `{}`, 400, "M_MISSING_PARAM"},
		{"a weak password", "POST", "/account/password", `{"new_password":"short"}`, 400, "M_WEAK_PASSWORD"},
		{"an unknown device", "GET", "/devices/D", ``, 404, "M_NOT_FOUND"},
		{"refresh without a token", "POST", "/refresh", `{}`, 400, "M_MISSING_PARAM"},
		{"refresh with an unknown token", "POST", "/refresh", `{"refresh_token":"x"}`, 401, "M_UNKNOWN_TOKEN"},
		{"bad JSON", "POST", "/account/deactivate", `{`, 400, "M_NOT_JSON"},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := len(h.rec.Changes())
			w := h.do(c.method, v3+c.path, c.body, token(tok))
			got := decode(t, w)
			if w.Code != c.status || got["errcode"] != c.code {
				t.Errorf("%d %v, want %d %s", w.Code, got, c.status, c.code)
			}
			if changes := h.rec.Changes(); len(changes) != before {
				t.Errorf("it changed something: %v", changes[before:])
			}
		})
	}
	if w := h.do("GET", v3+"/devices", "", token(tok)); !strings.Contains(w.Body.String(), `"devices":[]`) {
		t.Errorf("no devices: %s, want an empty list", w.Body)
	}
}

func TestLoginGivesARefreshTokenOnlyWhenAsked(t *testing.T) {
	h := withDevices(t)
	h.acc.addUser("alice", "alice's password")
	login := func(extra string) map[string]any {
		w := h.do("POST", v3+"/login", `{"type":"m.login.password","user":"alice","password":"alice's password"`+extra+`}`)
		if w.Code != http.StatusOK {
			t.Fatalf("login: %d %s", w.Code, w.Body)
		}
		return decode(t, w)
	}
	if got := login(""); got["refresh_token"] != nil || got["expires_in_ms"] != nil {
		t.Errorf("a login that did not ask: %v", got)
	}
	if got := login(`,"refresh_token":true`); got["refresh_token"] == nil || got["expires_in_ms"] != float64(1000) {
		t.Errorf("a login that asked: %v, want a refresh token and expires_in_ms", got)
	}
}
