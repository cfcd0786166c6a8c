package webui

import (
	"bytes"
	"log/slog"
	"net/http"
	"strings"
	"testing"
)

func TestTheAPIAnswers503UntilTheNodeIsReady(t *testing.T) {
	h := serve(t, Config{Addr: testAddr, WaitReady: true}, withRooms, withAdmin)
	s := h.srv
	tok := h.acc.addUser("alice", "a long password")
	for _, path := range []string{"/_matrix/client/v3/joined_rooms", "/_parley/v1/status", "/_matrix/client/versions"} {
		w := h.do("GET", path, "", token(tok))
		wantError(t, w, http.StatusServiceUnavailable, "M_UNKNOWN")
		if w.Header().Get("Retry-After") == "" {
			t.Errorf("%s: 503 without Retry-After", path)
		}
	}
	w := h.do("PUT", "/_matrix/client/v3/rooms/"+esc(roomV12)+"/send/m.room.message/t1", `{"body":"early"}`, token(tok))
	wantError(t, w, http.StatusServiceUnavailable, "M_UNKNOWN")
	if len(h.rec.Changes()) > 0 || len(h.rooms.sent) > 0 {
		t.Fatalf("a request before ready reached the node: %q", h.rec.Changes())
	}
	wantStatus(t, h.do("GET", "/", ""), http.StatusOK) // the app itself loads
	s.Ready()
	wantStatus(t, h.do("GET", "/_matrix/client/v3/joined_rooms", "", token(tok)), http.StatusOK)
}

func TestAnEscapedDotDotInAnAppPathIsNotFound(t *testing.T) {
	var logs bytes.Buffer
	h := serve(t, Config{Addr: testAddr, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	for _, path := range []string{"/%2e%2e/x", "/%2e%2e", "/..%2fetc%2fpasswd", "/a/%2e%2e/%2e%2e/etc/passwd", "/a%2f..%2f..%2fb"} {
		t.Run(path, func(t *testing.T) {
			wantError(t, h.do("GET", path, ""), http.StatusNotFound, "M_NOT_FOUND")
		})
	}
	if strings.Contains(logs.String(), "ERROR") {
		t.Errorf("logged an error:\n%s", logs.String())
	}
}

func TestAPIResponsesCarryNosniff(t *testing.T) {
	h := newHarness(t, withRooms, withAdmin)
	tok := h.acc.addUser("alice", "a long password")
	tests := []struct {
		name, method, path string
		opts               []option
	}{
		{"an anonymous answer", "GET", "/_matrix/client/versions", nil},
		{"an authenticated answer", "GET", "/_matrix/client/v3/joined_rooms", []option{token(tok)}},
		{"an error", "GET", "/_matrix/client/v3/joined_rooms", nil},
		{"an unknown endpoint", "GET", "/_matrix/client/v3/nope", nil},
		{"parley's own API", "GET", "/_parley/v1/status", nil},
		{"a preflight", "OPTIONS", "/_matrix/client/v3/sync", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := h.do(tt.method, tt.path, "", tt.opts...)
			if got := w.Header().Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("X-Content-Type-Options = %q", got)
			}
		})
	}
}

func TestARoleTheNodeDidNotGiveIsNotServed(t *testing.T) {
	tests := []struct {
		name, method, path, body string
	}{
		{"without Rooms, sending", "PUT", "/_matrix/client/v3/rooms/" + escRoomV12 + "/send/m.room.message/t1", `{}`},
		{"without Rooms, joined rooms", "GET", "/_matrix/client/v3/joined_rooms", ""},
		{"without Membership, joining", "POST", "/_matrix/client/v3/join/" + escRoomV12, `{}`},
		{"without Syncer, sync", "GET", "/_matrix/client/v3/sync", ""},
		{"without Links, joining by link", "POST", "/_parley/v1/join_link", `{"link":"parley:join/x"}`},
		{"without Admin, the status", "GET", "/_parley/v1/status", ""},
		{"without E2EE, a room's encryption", "GET", "/_parley/v1/rooms/" + escRoomV12 + "/e2ee", ""},
		{"without E2EE, verifying", "POST", "/_parley/v1/rooms/" + escRoomV12 + "/e2ee/verify", `{"server":"` + otherServer + `","via":"qr"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is unrecognized", func(t *testing.T) {
			h := newHarness(t)
			tok := h.acc.addUser("alice", "pw")
			wantError(t, h.do(tt.method, tt.path, tt.body, token(tok)), http.StatusNotFound, "M_UNRECOGNIZED")
			if c := h.rec.Calls(); len(c) > 0 {
				t.Errorf("backend was called: %q", c)
			}
		})
	}
	t.Run("the roles given are still served", func(t *testing.T) {
		h := newHarness(t, withSyncer)
		tok := h.acc.addUser("alice", "pw")
		wantStatus(t, h.do("GET", "/_matrix/client/v3/sync", "", token(tok)), http.StatusOK)
	})
}

func TestNewRefusesToServeWithoutAccounts(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("New without Accounts returned a server that could authenticate nobody")
		}
	}()
	New(Config{Addr: testAddr}, Backends{Rooms: &fakeRooms{}})
}
