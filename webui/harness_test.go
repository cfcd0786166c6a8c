package webui

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
)

// The harness drives Server.Handler in process; Host headers name testAddr.

const testAddr = "127.0.0.1:18008"

// role is a backend role a harness serves besides Accounts, which every
// server has.
type role int

const (
	withRooms role = iota
	withMembership
	withSyncer
	withAdmin
	withLinks
	withE2EE
)

type harness struct {
	t          *testing.T
	srv        *Server
	h          http.Handler
	rec        *record // every fake's calls and changes
	acc        *fakeAccounts
	rooms      *fakeRooms
	membership fakeMembership
	syncer     *fakeSyncer
	e2ee       *fakeE2EE
}

// newHarness serves the fake accounts and the fakes of the roles named;
// the other roles' routes are not served.
func newHarness(t *testing.T, roles ...role) *harness {
	return serve(t, Config{Addr: testAddr}, roles...)
}

// serve is newHarness with a Config.
func serve(t *testing.T, cfg Config, roles ...role) *harness {
	rec := &record{}
	h := &harness{t: t, rec: rec, acc: newFakeAccounts(rec)}
	b := Backends{Accounts: h.acc}
	for _, r := range roles {
		switch r {
		case withRooms:
			h.rooms = &fakeRooms{record: rec, joined: []string{roomV12, roomV11}}
			b.Rooms = h.rooms
		case withMembership:
			h.membership = fakeMembership{rec}
			b.Membership = h.membership
		case withSyncer:
			h.syncer = &fakeSyncer{record: rec}
			b.Syncer = h.syncer
		case withAdmin:
			b.Admin = fakeAdmin{rec}
		case withLinks:
			b.Links = fakeLinks{rec}
		case withE2EE:
			h.e2ee = newFakeE2EE(rec)
			b.E2EE = h.e2ee
		}
	}
	h.srv = New(cfg, b)
	h.h = h.srv.Handler()
	return h
}

// option changes a request before it is sent.
type option func(*http.Request)

func token(tok string) option {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
}

func origin(o string) option { return func(r *http.Request) { r.Header.Set("Origin", o) } }

func host(h string) option { return func(r *http.Request) { r.Host = h } }

func header(k, v string) option { return func(r *http.Request) { r.Header.Set(k, v) } }

// do sends one request; path may carry a query and escaped segments.
func (h *harness) do(method, path, body string, opts ...option) *httptest.ResponseRecorder {
	h.t.Helper()
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	r.Host = testAddr
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	for _, o := range opts {
		o(r)
	}
	w := httptest.NewRecorder()
	h.h.ServeHTTP(w, r)
	return w
}

// decode parses a JSON object response.
func decode(t *testing.T, w *httptest.ResponseRecorder) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
		t.Fatalf("response is not a JSON object: %v: %q", err, w.Body.String())
	}
	return m
}

// wantStatus fails unless the response has this status.
func wantStatus(t *testing.T, w *httptest.ResponseRecorder, status int) {
	t.Helper()
	if w.Code != status {
		t.Fatalf("status = %d, want %d; body %s", w.Code, status, w.Body.String())
	}
}

// wantError fails unless the response is a Matrix error with this status and errcode.
func wantError(t *testing.T, w *httptest.ResponseRecorder, status int, code string) {
	t.Helper()
	wantStatus(t, w, status)
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	m := decode(t, w)
	if m["errcode"] != code {
		t.Errorf("errcode = %v, want %s; body %s", m["errcode"], code, w.Body.String())
	}
	if msg, _ := m["error"].(string); msg == "" {
		t.Errorf("error message is empty; body %s", w.Body.String())
	}
}

// wantNoChanges fails if any fake recorded a change.
func wantNoChanges(t *testing.T, rec *record) {
	t.Helper()
	if c := rec.Changes(); len(c) > 0 {
		t.Errorf("backend changed: %q, want nothing", c)
	}
}

// esc percent-encodes every byte that is not a letter or digit, the most a
// client may escape (matrix-js-sdk's encodeURIComponent escapes ':', '$'
// and '@' but not '!').
func esc(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

var escRoomV12 = esc(roomV12)

func writeFile(path, content string) error { return os.WriteFile(path, []byte(content), 0o644) }

// decodeInto parses a JSON response into v.
func decodeInto(t *testing.T, w *httptest.ResponseRecorder, v any) {
	t.Helper()
	if err := json.Unmarshal(w.Body.Bytes(), v); err != nil {
		t.Fatalf("response %q: %v", w.Body.String(), err)
	}
}
