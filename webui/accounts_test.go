package webui

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
)

const registerPath = "/_matrix/client/v3/register"

// wantFlows checks a user-interactive auth answer: 401, the one flow with
// this stage, a session, and an errcode only when a stage was attempted.
func wantFlows(t *testing.T, w *httptest.ResponseRecorder, stage, errcode string) {
	t.Helper()
	wantStatus(t, w, http.StatusUnauthorized)
	body := w.Body.Bytes()
	var m struct {
		Flows []struct {
			Stages []string `json:"stages"`
		} `json:"flows"`
		Params  map[string]any `json:"params"`
		Session string         `json:"session"`
		Errcode *string        `json:"errcode"`
	}
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("body %s: %v", body, err)
	}
	if len(m.Flows) != 1 || !reflect.DeepEqual(m.Flows[0].Stages, []string{stage}) {
		t.Errorf("flows = %+v, want [[%s]]", m.Flows, stage)
	}
	if m.Session == "" || m.Params == nil {
		t.Errorf("session %q and params %v must both be present", m.Session, m.Params)
	}
	switch {
	case errcode == "" && m.Errcode != nil:
		t.Errorf("errcode = %q, want none (clients take it as a failed stage)", *m.Errcode)
	case errcode != "" && (m.Errcode == nil || *m.Errcode != errcode):
		t.Errorf("errcode = %v, want %s", m.Errcode, errcode)
	}
}

// claimAuth is the start of a register body with the fake's claim code.
const claimAuth = `{"auth":{"type":"m.login.registration_token","token":"` + testClaimCode + `","session":"register"}`

func TestRegisterFirstAccount(t *testing.T) {
	tests := []struct {
		name    string
		query   string
		body    string
		status  int
		errcode string
		flows   bool // a UIA answer (401 with flows)
	}{
		{"a request with no auth is offered the token stage, without an errcode", "", `{"username":"alice","password":"a long password"}`, 401, "", true},
		{"an empty body is offered the token stage", "", ``, 401, "", true},
		{"the dummy stage is refused with an errcode", "", `{"auth":{"type":"m.login.dummy"},"username":"alice","password":"a long password"}`, 401, "M_FORBIDDEN", true},
		{"a wrong claim code is refused with an errcode", "", `{"auth":{"type":"m.login.registration_token","token":"x"},"username":"alice","password":"a long password"}`, 401, "M_FORBIDDEN", true},
		{"an empty claim code is refused with an errcode", "", `{"auth":{"type":"m.login.registration_token","token":""},"username":"alice","password":"a long password"}`, 401, "M_FORBIDDEN", true},
		{"the registration token is not the claim code", "", `{"auth":{"type":"m.login.registration_token","token":"s3cret"},"username":"alice","password":"a long password"}`, 401, "M_FORBIDDEN", true},
		{"a password of exactly 72 bytes is accepted", "", claimAuth + `,"username":"alice","password":"` + strings.Repeat("p", 72) + `"}`, 200, "", false},
		{"the claim code creates the account", "", claimAuth + `,"username":"alice","password":"a long password"}`, 200, "", false},
		{"a full user ID on this node is accepted", "", claimAuth + `,"username":"@alice:` + fakeServer + `","password":"a long password"}`, 200, "", false},
		{"a user name in capitals is accepted in lower case", "", claimAuth + `,"username":"Alice","password":"a long password"}`, 200, "", false},
		{"kind=user is an ordinary registration", "?kind=user", claimAuth + `,"username":"alice","password":"a long password"}`, 200, "", false},
		{"a guest is refused", "?kind=guest", claimAuth + `}`, 403, "M_GUEST_ACCESS_FORBIDDEN", false},
		{"a missing user name is refused", "", claimAuth + `,"password":"a long password"}`, 400, "M_MISSING_PARAM", false},
		{"a user name with a space is invalid", "", claimAuth + `,"username":"al ice","password":"a long password"}`, 400, "M_INVALID_USERNAME", false},
		{"a user name with a colon is invalid", "", claimAuth + `,"username":"al:ice","password":"a long password"}`, 400, "M_INVALID_USERNAME", false},
		{"a user name with non-ASCII letters is invalid", "", claimAuth + `,"username":"ålice","password":"a long password"}`, 400, "M_INVALID_USERNAME", false},
		{"a user name over 64 characters is invalid", "", claimAuth + `,"username":"` + strings.Repeat("a", 65) + `","password":"a long password"}`, 400, "M_INVALID_USERNAME", false},
		{"a user ID on another server is refused", "", claimAuth + `,"username":"@alice:example.org","password":"a long password"}`, 400, "M_INVALID_PARAM", false},
		{"an empty password is refused", "", claimAuth + `,"username":"alice"}`, 400, "M_WEAK_PASSWORD", false},
		{"a password of 7 characters is too weak", "", claimAuth + `,"username":"alice","password":"1234567"}`, 400, "M_WEAK_PASSWORD", false},
		{"a password of 7 two-byte characters is too weak", "", claimAuth + `,"username":"alice","password":"ééééééé"}`, 400, "M_WEAK_PASSWORD", false},
		{"a password over 72 bytes, more than bcrypt reads, is refused", "", claimAuth + `,"username":"alice","password":"` + strings.Repeat("p", 73) + `"}`, 400, "M_INVALID_PARAM", false},
		{"a password over 512 bytes is refused", "", claimAuth + `,"username":"alice","password":"` + strings.Repeat("p", 513) + `"}`, 400, "M_INVALID_PARAM", false},
		{"a malformed body is not JSON", "", `{"auth":`, 400, "M_NOT_JSON", false},
		{"a body that is not an object is bad JSON", "", `["alice"]`, 400, "M_BAD_JSON", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.acc.regToken = "s3cret"
			w := h.do("POST", registerPath+tt.query, tt.body)
			switch {
			case tt.flows:
				wantFlows(t, w, loginRegistration, tt.errcode)
			case tt.errcode != "":
				wantError(t, w, tt.status, tt.errcode)
			default:
				wantStatus(t, w, 200)
				m := decode(t, w)
				if m["user_id"] != userID("alice") || m["access_token"] == "" || m["device_id"] == "" {
					t.Errorf("register = %v", m)
				}
				if c := h.rec.Changes(); !reflect.DeepEqual(c, []string{"CreateAccount alice first=true"}) {
					t.Errorf("changes = %q, want the first account created", c)
				}
				return
			}
			wantNoChanges(t, h.rec)
		})
	}

	t.Run("inhibit_login returns the user ID alone", func(t *testing.T) {
		h := newHarness(t)
		w := h.do("POST", registerPath, claimAuth+`,"username":"alice","password":"a long password","inhibit_login":true}`)
		wantStatus(t, w, 200)
		if m := decode(t, w); len(m) != 1 || m["user_id"] != userID("alice") {
			t.Errorf("register = %v, want only user_id", m)
		}
	})
}

func TestRegisterLaterAccounts(t *testing.T) {
	const (
		noAuth     = `{"username":"bob","password":"a long password"}`
		dummy      = `{"auth":{"type":"m.login.dummy"},"username":"bob","password":"a long password"}`
		wrongToken = `{"auth":{"type":"m.login.registration_token","token":"guess"},"username":"bob","password":"a long password"}`
		rightToken = `{"auth":{"type":"m.login.registration_token","token":"s3cret","session":"register"},"username":"bob","password":"a long password"}`
		badName    = `{"auth":{"type":"m.login.registration_token","token":"s3cret"},"username":"Bob!","password":"a long password"}`
		taken      = `{"auth":{"type":"m.login.registration_token","token":"s3cret"},"username":"alice","password":"a long password"}`
	)
	tests := []struct {
		name     string
		regToken string
		body     string
		status   int
		errcode  string
		flows    bool
	}{
		{"with no registration token configured, a request with no auth is refused", "", noAuth, 403, "M_FORBIDDEN", false},
		{"with no registration token configured, the dummy stage is refused", "", dummy, 403, "M_FORBIDDEN", false},
		{"with no registration token configured, any token is refused", "", wrongToken, 403, "M_FORBIDDEN", false},
		{"with a token configured, a request with no auth is offered the token stage without an errcode", "s3cret", noAuth, 401, "", true},
		{"with a token configured, the dummy stage is refused with an errcode", "s3cret", dummy, 401, "M_FORBIDDEN", true},
		{"with a token configured, a wrong token is refused with an errcode", "s3cret", wrongToken, 401, "M_FORBIDDEN", true},
		{"with a token configured, an invalid user name is refused", "s3cret", badName, 400, "M_INVALID_USERNAME", false},
		{"with a token configured, a taken user name is refused by the node", "s3cret", taken, 400, "M_USER_IN_USE", false},
		{"with a token configured, the right token creates the account", "s3cret", rightToken, 200, "", false},
		{"once claimed, the claim code is void", "s3cret", claimAuth + `,"username":"bob","password":"a long password"}`, 401, "M_FORBIDDEN", true},
		{"once claimed, the claim code is void while registration is closed", "", claimAuth + `,"username":"bob","password":"a long password"}`, 403, "M_FORBIDDEN", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.acc.addUser("alice", "pw")
			h.acc.regToken = tt.regToken
			w := h.do("POST", registerPath, tt.body)
			switch {
			case tt.flows:
				wantFlows(t, w, loginRegistration, tt.errcode)
			case tt.errcode != "":
				wantError(t, w, tt.status, tt.errcode)
			default:
				wantStatus(t, w, 200)
				if m := decode(t, w); m["user_id"] != userID("bob") {
					t.Errorf("register = %v", m)
				}
				if c := h.rec.Changes(); !reflect.DeepEqual(c, []string{"CreateAccount bob first=false"}) {
					t.Errorf("changes = %q, want bob created as a later account", c)
				}
				return
			}
			wantNoChanges(t, h.rec)
		})
	}
}

func TestRegistrationTokenValidity(t *testing.T) {
	const path = "/_matrix/client/v1/register/m.login.registration_token/validity?token="
	tests := []struct {
		name     string
		claimed  bool
		regToken string
		token    string
		valid    bool
	}{
		{"the claim code of a fresh node is valid", false, "s3cret", testClaimCode, true},
		{"another code on a fresh node is not", false, "s3cret", "guess", false},
		{"the registration token on a fresh node is not", false, "s3cret", "s3cret", false},
		{"the claim code of a claimed node is void", true, "s3cret", testClaimCode, false},
		{"the registration token of a claimed node is valid", true, "s3cret", "s3cret", true},
		{"nothing is valid while registration is closed", true, "", "s3cret", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.acc.regToken = tt.regToken
			if tt.claimed {
				h.acc.addUser("alice", "a long password")
			}
			w := h.do("GET", path+tt.token, "")
			wantStatus(t, w, 200)
			if got := decode(t, w)["valid"]; got != tt.valid {
				t.Errorf("valid = %v, want %v", got, tt.valid)
			}
			if w.Header().Get("Access-Control-Allow-Origin") != "" {
				t.Error("a token oracle carries CORS headers")
			}
		})
	}
	t.Run("a missing token is a bad request", func(t *testing.T) {
		wantError(t, newHarness(t).do("GET", path, ""), 400, "M_MISSING_PARAM")
	})
}

func TestRegisterAvailable(t *testing.T) {
	h := newHarness(t)
	t.Run("a valid user name is reported available", func(t *testing.T) {
		w := h.do("GET", registerPath+"/available?username=carol", "")
		wantStatus(t, w, 200)
		if m := decode(t, w); m["available"] != true {
			t.Errorf("available = %v", m)
		}
	})
	t.Run("an invalid user name is refused", func(t *testing.T) {
		wantError(t, h.do("GET", registerPath+"/available?username=no%20way", ""), 400, "M_INVALID_USERNAME")
	})
}

func TestLogin(t *testing.T) {
	const path = "/_matrix/client/v3/login"
	tests := []struct {
		name    string
		body    string
		status  int
		errcode string
		device  string // the device ID the reply must carry, if any
	}{
		{"a password login with a user identifier succeeds", `{"type":"m.login.password","identifier":{"type":"m.id.user","user":"bob"},"password":"pw"}`, 200, "", ""},
		{"a password login with a full user ID succeeds", `{"type":"m.login.password","identifier":{"type":"m.id.user","user":"@bob:` + fakeServer + `"},"password":"pw"}`, 200, "", ""},
		{"a password login with the legacy user field succeeds", `{"type":"m.login.password","user":"bob","password":"pw"}`, 200, "", ""},
		{"a user name in capitals logs in the lower-case account", `{"type":"m.login.password","identifier":{"type":"m.id.user","user":"BOB"},"password":"pw"}`, 200, "", ""},
		{"a requested device ID is kept", `{"type":"m.login.password","identifier":{"type":"m.id.user","user":"bob"},"password":"pw","device_id":"PHONE"}`, 200, "", "PHONE"},
		{"a wrong password is forbidden", `{"type":"m.login.password","identifier":{"type":"m.id.user","user":"bob"},"password":"nope"}`, 403, "M_FORBIDDEN", ""},
		{"an unknown user is forbidden", `{"type":"m.login.password","identifier":{"type":"m.id.user","user":"carol"},"password":"pw"}`, 403, "M_FORBIDDEN", ""},
		{"a user of another server is forbidden", `{"type":"m.login.password","identifier":{"type":"m.id.user","user":"@bob:example.org"},"password":"pw"}`, 403, "M_FORBIDDEN", ""},
		{"an invalid user name is forbidden", `{"type":"m.login.password","identifier":{"type":"m.id.user","user":"b o b"},"password":"pw"}`, 403, "M_FORBIDDEN", ""},
		{"an unsupported login type is a bad request", `{"type":"m.login.token","token":"abc"}`, 400, "M_UNKNOWN", ""},
		{"a missing login type is a bad request", `{"identifier":{"type":"m.id.user","user":"bob"},"password":"pw"}`, 400, "M_UNKNOWN", ""},
		{"a third-party identifier is a bad request", `{"type":"m.login.password","identifier":{"type":"m.id.thirdparty","medium":"email","address":"b@example.org"},"password":"pw"}`, 400, "M_UNKNOWN", ""},
		{"a malformed body is not JSON", `{"type":`, 400, "M_NOT_JSON", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.acc.addUser("bob", "pw")
			w := h.do("POST", path, tt.body)
			if tt.errcode != "" {
				wantError(t, w, tt.status, tt.errcode)
				wantNoChanges(t, h.rec)
				return
			}
			wantStatus(t, w, 200)
			m := decode(t, w)
			tok, _ := m["access_token"].(string)
			if m["user_id"] != userID("bob") || tok == "" || m["device_id"] == "" {
				t.Fatalf("login = %v", m)
			}
			if tt.device != "" && m["device_id"] != tt.device {
				t.Errorf("device_id = %v, want %s", m["device_id"], tt.device)
			}
			who := h.do("GET", "/_matrix/client/v3/account/whoami", "", token(tok))
			wantStatus(t, who, 200)
			if got := decode(t, who)["user_id"]; got != userID("bob") {
				t.Errorf("whoami with the new token = %v", got)
			}
		})
	}

	t.Run("the login flows offer passwords", func(t *testing.T) {
		h := newHarness(t)
		w := h.do("GET", path, "")
		wantStatus(t, w, 200)
		if !strings.Contains(w.Body.String(), `{"type":"m.login.password"}`) {
			t.Errorf("flows = %s", w.Body.String())
		}
	})
}

func TestRegisterAvailableSaysWhetherANameIsTaken(t *testing.T) {
	h := newHarness(t)
	h.acc.addUser("alice", "pw")
	for _, tc := range []struct {
		name, user string
		status     int
	}{
		{"a taken name is M_USER_IN_USE", "alice", 400},
		{"a free name is available", "bob", 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := h.do("GET", "/_matrix/client/v3/register/available?username="+tc.user, "")
			wantStatus(t, w, tc.status)
		})
	}
}
