package webui

import (
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
)

func TestHostCheck(t *testing.T) {
	tests := []struct {
		name string
		host string
		ok   bool
	}{
		{"a rebinding domain on the right port is refused", "evil.example:18008", false},
		{"a rebinding domain without a port is refused", "evil.example", false},
		{"the loopback address on another port is refused", "127.0.0.1:18009", false},
		{"localhost on another port is refused", "localhost:18009", false},
		{"the loopback address without a port is refused", "127.0.0.1", false},
		{"a subdomain of localhost is refused", "evil.localhost:18008", false},
		{"localhost on the bound port passes", "localhost:18008", true},
		{"localhost in capitals passes", "LOCALHOST:18008", true},
		{"the bound IPv4 address passes", "127.0.0.1:18008", true},
		{"the IPv6 loopback address passes", "[::1]:18008", true},
	}
	for _, path := range []string{"/_matrix/client/versions", "/_parley/v1/status", "/"} {
		for _, tt := range tests {
			t.Run(path+": "+tt.name, func(t *testing.T) {
				h := newHarness(t, withAdmin)
				w := h.do("GET", path, "", host(tt.host))
				if !tt.ok {
					wantError(t, w, http.StatusMisdirectedRequest, "M_FORBIDDEN")
					if c := h.rec.Calls(); len(c) > 0 {
						t.Errorf("backend was called: %q", c)
					}
					return
				}
				wantStatus(t, w, http.StatusOK)
			})
		}
	}
}

func TestHostCheckFollowsTheBindAddress(t *testing.T) {
	tests := []struct {
		name, addr, host string
		ok               bool
	}{
		{"a node bound to localhost refuses other names", "localhost:18008", "evil.example:18008", false},
		{"a node bound to localhost accepts 127.0.0.1", "localhost:18008", "127.0.0.1:18008", true},
		{"a node bound to ::1 accepts localhost", "[::1]:18008", "localhost:18008", true},
		{"a node bound to ::1 refuses other names", "[::1]:18008", "evil.example:18008", false},
		{"a node bound to all interfaces refuses a rebinding domain", "0.0.0.0:18008", "evil.example:18008", false},
		{"a node bound to all interfaces refuses a name it was not given", "0.0.0.0:18008", "mybox.lan:18008", false},
		{"a node bound to all interfaces refuses a subdomain of localhost", "0.0.0.0:18008", "evil.localhost:18008", false},
		{"a node bound to all interfaces accepts an IPv4 literal", "0.0.0.0:18008", "192.168.1.5:18008", true},
		{"a node bound to all interfaces accepts an IPv6 literal", "[::]:18008", "[fd00::5]:18008", true},
		{"a node bound to all interfaces accepts localhost", ":18008", "localhost:18008", true},
		{"a node bound to all interfaces accepts a mapped port", "0.0.0.0:18008", "127.0.0.1:9000", true},
		{"a node bound to a LAN address accepts that address", "192.168.1.5:18008", "192.168.1.5:18008", true},
		{"a node bound to a LAN address refuses other names", "192.168.1.5:18008", "evil.example:18008", false},
		{"a node bound to a host name accepts that name", "mybox.lan:18008", "MyBox.lan:18008", true},
		{"a node bound to a host name refuses other names", "mybox.lan:18008", "evil.example:18008", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := serve(t, Config{Addr: tt.addr}).srv
			if got := s.allowedHost(tt.host); got != tt.ok {
				t.Errorf("allowedHost(%q) with Addr %q = %v, want %v", tt.host, tt.addr, got, tt.ok)
			}
		})
	}
}

func TestAllowedHostsNameFurtherNames(t *testing.T) {
	tests := []struct {
		name, addr, host string
		ok               bool
	}{
		{"a listed name passes on all interfaces", "0.0.0.0:18008", "mybox.lan:18008", true},
		{"a listed name passes in capitals", "0.0.0.0:18008", "MYBOX.LAN", true},
		{"a listed name passes behind a proxy's port", "0.0.0.0:18008", "mybox.lan:443", true},
		{"an unlisted name is still refused", "0.0.0.0:18008", "evil.example:18008", false},
		{"a subdomain of a listed name is refused", "0.0.0.0:18008", "evil.mybox.lan:18008", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := serve(t, Config{Addr: tt.addr, AllowedHosts: []string{"mybox.lan"}}).srv
			if got := s.allowedHost(tt.host); got != tt.ok {
				t.Errorf("allowedHost(%q) with Addr %q = %v, want %v", tt.host, tt.addr, got, tt.ok)
			}
		})
	}
}

// wantCORS checks the headers the spec asks for on every /_matrix response.
func wantCORS(t *testing.T, hdr http.Header) {
	t.Helper()
	if got := hdr.Get("Access-Control-Allow-Origin"); got != "*" {
		t.Errorf("Access-Control-Allow-Origin = %q, want *", got)
	}
	methods := hdr.Get("Access-Control-Allow-Methods")
	for _, m := range []string{"GET", "POST", "PUT", "DELETE", "OPTIONS"} {
		if !strings.Contains(methods, m) {
			t.Errorf("Access-Control-Allow-Methods = %q, missing %s", methods, m)
		}
	}
	headers := hdr.Get("Access-Control-Allow-Headers")
	for _, h := range []string{"X-Requested-With", "Content-Type", "Authorization"} {
		if !strings.Contains(headers, h) {
			t.Errorf("Access-Control-Allow-Headers = %q, missing %s", headers, h)
		}
	}
}

func TestCORS(t *testing.T) {
	tests := []struct {
		name         string
		method, path string
		body         string
		opts         []option
		status       int
	}{
		{"a successful anonymous request has CORS headers", "GET", "/_matrix/client/versions", "", nil, 200},
		{"a request refused for a missing token has CORS headers", "GET", "/_matrix/client/v3/joined_rooms", "", nil, 401},
		{"a request refused for a bad token has CORS headers", "GET", "/_matrix/client/v3/joined_rooms", "", []option{token("nope")}, 401},
		{"an unknown endpoint's 404 has CORS headers", "GET", "/_matrix/client/v3/nope", "", nil, 404},
		{"an unknown API version's 404 has CORS headers", "GET", "/_matrix/client/r0/sync", "", nil, 404},
		{"a wrong method's 405 has CORS headers", "DELETE", "/_matrix/client/v3/login", "", nil, 405},
		{"a malformed body's 400 has CORS headers", "POST", "/_matrix/client/v3/login", "{", nil, 400},
		{"a cross-origin token-less POST refused with 403 has CORS headers", "POST", "/_matrix/client/v3/login", "{}", []option{origin("https://evil.example")}, 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, withRooms)
			w := h.do(tt.method, tt.path, tt.body, tt.opts...)
			wantStatus(t, w, tt.status)
			wantCORS(t, w.Header())
		})
	}
}

func TestPreflight(t *testing.T) {
	paths := []struct{ name, path string }{
		{"a preflight for sending an event", "/_matrix/client/v3/rooms/%21r%3As/send/m.room.message/t1"},
		{"a preflight for registering", "/_matrix/client/v3/register"},
		{"a preflight for sync", "/_matrix/client/v3/sync?access_token=alice-token"},
		{"a preflight for an unknown endpoint", "/_matrix/client/v3/nope"},
	}
	for _, p := range paths {
		t.Run(p.name+" answers 200 with CORS headers and calls nothing", func(t *testing.T) {
			h := newHarness(t)
			h.acc.addUser("alice", "pw")
			w := h.do("OPTIONS", p.path, "",
				origin("https://app.element.io"),
				header("Access-Control-Request-Method", "PUT"),
				header("Access-Control-Request-Headers", "authorization, content-type"))
			wantStatus(t, w, http.StatusOK)
			wantCORS(t, w.Header())
			if w.Body.Len() != 0 {
				t.Errorf("preflight body = %q, want empty", w.Body.String())
			}
			if c := h.rec.Calls(); len(c) > 0 {
				t.Errorf("backend was called: %q", c)
			}
		})
	}
}

func TestNonMatrixPathsHaveNoCORS(t *testing.T) {
	tests := []struct {
		name, method, path string
	}{
		{"the status endpoint", "GET", "/_parley/v1/status"},
		{"an unknown parley endpoint", "GET", "/_parley/v1/nope"},
		{"a preflight to the status endpoint", "OPTIONS", "/_parley/v1/status"},
		{"the app", "GET", "/"},
		{"an app route", "GET", "/rooms/abc"},
	}
	for _, tt := range tests {
		t.Run(tt.name+" sends no CORS headers", func(t *testing.T) {
			h := newHarness(t, withAdmin)
			w := h.do(tt.method, tt.path, "", origin("https://evil.example"))
			for k := range w.Header() {
				if strings.HasPrefix(k, "Access-Control-") {
					t.Errorf("header %s = %q, want none", k, w.Header().Get(k))
				}
			}
		})
	}
}

func TestStatusOrigin(t *testing.T) {
	tests := []struct {
		name   string
		origin string
		status int
	}{
		{"a page of another origin is refused", "https://evil.example", 403},
		{"a page on the same port under another host name is refused", "http://localhost:18008", 403},
		{"a sandboxed page (origin null) is refused", "null", 403},
		{"the node's own app is served", "http://127.0.0.1:18008", 200},
		{"a request with no Origin is served", "", 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, withAdmin)
			var opts []option
			if tt.origin != "" {
				opts = append(opts, origin(tt.origin))
			}
			w := h.do("GET", "/_parley/v1/status", "", opts...)
			if tt.status != 200 {
				wantError(t, w, tt.status, "M_FORBIDDEN")
				if c := h.rec.Calls(); len(c) > 0 {
					t.Errorf("backend was called: %q", c)
				}
				return
			}
			wantStatus(t, w, 200)
			if got := decode(t, w)["server_name"]; got != fakeServer {
				t.Errorf("server_name = %v, want %s", got, fakeServer)
			}
		})
	}
}

func TestTokenlessOriginCheck(t *testing.T) {
	const claim = claimAuth + `,"username":"alice","password":"a long password"}`
	const login = `{"type":"m.login.password","identifier":{"type":"m.id.user","user":"bob"},"password":"pw"}`
	tests := []struct {
		name   string
		path   string
		body   string
		origin string
		status int
	}{
		{"a cross-origin registration is refused", "/_matrix/client/v3/register", claim, "https://evil.example", 403},
		{"a cross-origin registration from a sandboxed page is refused", "/_matrix/client/v3/register", claim, "null", 403},
		{"a cross-origin login is refused", "/_matrix/client/v3/login", login, "https://evil.example", 403},
		{"a login from the same port under another host name is refused", "/_matrix/client/v3/login", login, "http://localhost:18008", 403},
		{"a same-origin registration passes", "/_matrix/client/v3/register", claim, "http://127.0.0.1:18008", 200},
		{"a registration with no Origin passes", "/_matrix/client/v3/register", claim, "", 200},
		{"a same-origin login passes", "/_matrix/client/v3/login", login, "http://127.0.0.1:18008", 200},
		{"a login with no Origin passes", "/_matrix/client/v3/login", login, "", 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			if strings.HasSuffix(tt.path, "/login") {
				h.acc.addUser("bob", "pw")
			}
			var opts []option
			if tt.origin != "" {
				opts = append(opts, origin(tt.origin))
			}
			w := h.do("POST", tt.path, tt.body, opts...)
			if tt.status == 403 {
				wantError(t, w, 403, "M_FORBIDDEN")
				if c := h.rec.Calls(); len(c) > 0 {
					t.Errorf("backend was called: %q", c)
				}
				return
			}
			wantStatus(t, w, tt.status)
			if tok, _ := decode(t, w)["access_token"].(string); tok == "" {
				t.Errorf("no access_token in %s", w.Body.String())
			}
		})
	}

	t.Run("a cross-origin read of the login flows passes", func(t *testing.T) {
		h := newHarness(t)
		w := h.do("GET", "/_matrix/client/v3/login", "", origin("https://app.element.io"))
		wantStatus(t, w, 200)
		wantCORS(t, w.Header())
	})
}

func TestCrossOriginWithToken(t *testing.T) {
	tests := []struct {
		name, method, path, body string
	}{
		{"listing joined rooms from another origin succeeds", "GET", "/_matrix/client/v3/joined_rooms", ""},
		{"sending a message from another origin succeeds", "PUT", "/_matrix/client/v3/rooms/" + escRoomV12 + "/send/m.room.message/t1", `{"body":"hi","msgtype":"m.text"}`},
		{"logging out from another origin succeeds", "POST", "/_matrix/client/v3/logout", "{}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, withRooms)
			tok := h.acc.addUser("alice", "pw")
			w := h.do(tt.method, tt.path, tt.body, token(tok), origin("https://app.element.io"))
			wantStatus(t, w, 200)
			wantCORS(t, w.Header())
		})
	}
}

func TestAuthentication(t *testing.T) {
	tests := []struct {
		name   string
		path   string
		opts   []option
		status int
		code   string
	}{
		{"a request with no token is refused as missing", "/_matrix/client/v3/account/whoami", nil, 401, "M_MISSING_TOKEN"},
		{"an empty bearer token counts as missing", "/_matrix/client/v3/account/whoami", []option{header("Authorization", "Bearer ")}, 401, "M_MISSING_TOKEN"},
		{"a non-bearer Authorization header counts as missing", "/_matrix/client/v3/account/whoami", []option{header("Authorization", "Basic YWxpY2U6cHc=")}, 401, "M_MISSING_TOKEN"},
		{"an unknown bearer token is refused as unknown", "/_matrix/client/v3/account/whoami", []option{token("stolen")}, 401, "M_UNKNOWN_TOKEN"},
		{"an unknown query token is refused as unknown", "/_matrix/client/v3/account/whoami?access_token=stolen", nil, 401, "M_UNKNOWN_TOKEN"},
		{"a bearer token is accepted", "/_matrix/client/v3/account/whoami", []option{token("alice-token")}, 200, ""},
		{"a query token is accepted", "/_matrix/client/v3/account/whoami?access_token=alice-token", nil, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.acc.addUser("alice", "pw")
			w := h.do("GET", tt.path, "", tt.opts...)
			if tt.code != "" {
				wantError(t, w, tt.status, tt.code)
				return
			}
			wantStatus(t, w, tt.status)
			m := decode(t, w)
			if m["user_id"] != userID("alice") || m["device_id"] != "DEVALICE" {
				t.Errorf("whoami = %v", m)
			}
		})
	}

	t.Run("logging out with a query token ends that token", func(t *testing.T) {
		h := newHarness(t)
		h.acc.addUser("alice", "pw")
		wantStatus(t, h.do("POST", "/_matrix/client/v3/logout?access_token=alice-token", ""), 200)
		wantError(t, h.do("GET", "/_matrix/client/v3/account/whoami", "", token("alice-token")), 401, "M_UNKNOWN_TOKEN")
	})
}

func TestRouting(t *testing.T) {
	tests := []struct {
		name, method, path string
		status             int
		allow              string // for 405: a method the Allow header must list
	}{
		{"an unknown client endpoint is unrecognized", "GET", "/_matrix/client/v3/nope", 404, ""},
		{"an unknown Matrix API is unrecognized", "GET", "/_matrix/federation/v1/version", 404, ""},
		{"the bare /_matrix prefix is unrecognized", "GET", "/_matrix/", 404, ""},
		{"an unknown parley endpoint is unrecognized", "GET", "/_parley/v1/nope", 404, ""},
		{"a path below the push rules is unrecognized", "GET", "/_matrix/client/v3/pushrules/global/override/.m.rule.master", 404, ""},
		{"DELETE on the login endpoint is the wrong method", "DELETE", "/_matrix/client/v3/login", 405, "POST"},
		{"POST to versions is the wrong method", "POST", "/_matrix/client/versions", 405, "GET"},
		{"GET on a send path is the wrong method", "GET", "/_matrix/client/v3/rooms/%21r%3As/send/m.room.message/t1", 405, "PUT"},
		{"POST to state is the wrong method", "POST", "/_matrix/client/v3/rooms/%21r%3As/state/m.room.name/", 405, "PUT"},
		{"POST to the status endpoint is the wrong method", "POST", "/_parley/v1/status", 405, "GET"},
		{"POST to the app is the wrong method", "POST", "/", 405, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, withRooms, withAdmin)
			w := h.do(tt.method, tt.path, "", token("x"))
			wantError(t, w, tt.status, "M_UNRECOGNIZED")
			if tt.allow != "" && !strings.Contains(w.Header().Get("Allow"), tt.allow) {
				t.Errorf("Allow = %q, want it to list %s", w.Header().Get("Allow"), tt.allow)
			}
			if c := h.rec.Calls(); len(c) > 0 {
				t.Errorf("backend was called: %q", c)
			}
		})
	}
}

func TestApp(t *testing.T) {
	tests := []struct {
		name, path  string
		contentType string
		contains    string
	}{
		{"the root serves index.html", "/", "text/html", "<title>parley</title>"},
		{"an app route falls back to index.html", "/some/app/route", "text/html", "<title>parley</title>"},
		{"a missing file falls back to index.html", "/missing.css", "text/html", "<title>parley</title>"},
		{"the script is served as JavaScript", "/app.js", "text/javascript", "/_parley/v1/status"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			w := h.do("GET", tt.path, "")
			wantStatus(t, w, 200)
			if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, tt.contentType) {
				t.Errorf("Content-Type = %q, want %s", ct, tt.contentType)
			}
			if !strings.Contains(w.Body.String(), tt.contains) {
				t.Errorf("body does not contain %q: %s", tt.contains, w.Body.String())
			}
			for _, k := range []string{"X-Frame-Options", "X-Content-Type-Options", "Content-Security-Policy"} {
				if w.Header().Get(k) == "" {
					t.Errorf("missing %s", k)
				}
			}
		})
	}

	t.Run("the app can be served from a folder on disk", func(t *testing.T) {
		dir := t.TempDir()
		if err := writeFile(dir+"/index.html", "<p>from disk</p>"); err != nil {
			t.Fatal(err)
		}
		h := serve(t, Config{Addr: testAddr, AppDir: dir})
		w := h.do("GET", "/deep/route", "")
		wantStatus(t, w, 200)
		if !strings.Contains(w.Body.String(), "from disk") {
			t.Errorf("body = %q, want the file from disk", w.Body.String())
		}
	})
}

func TestRealServer(t *testing.T) {
	s := serve(t, Config{Addr: "127.0.0.1:0"}).srv
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })

	t.Run("a real client reaches the API through the listener", func(t *testing.T) {
		resp, err := http.Get("http://" + s.Addr() + "/_matrix/client/versions")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || !strings.Contains(string(body), `"versions"`) {
			t.Errorf("GET versions = %d %s", resp.StatusCode, body)
		}
	})

	t.Run("a request naming another host is refused over real HTTP", func(t *testing.T) {
		req, _ := http.NewRequest("GET", "http://"+s.Addr()+"/_matrix/client/versions", nil)
		req.Host = "evil.example:" + portOf(t, s.Addr())
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMisdirectedRequest {
			t.Errorf("status = %d, want 421", resp.StatusCode)
		}
	})

	t.Run("a second server on the same address fails to start", func(t *testing.T) {
		s2 := serve(t, Config{Addr: s.Addr()}).srv
		if err := s2.Start(); err == nil {
			s2.Close()
			t.Fatal("Start on a used address succeeded")
		}
		s2.Close()
	})

	t.Run("closing twice is harmless", func(t *testing.T) {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := net.Dial("tcp", s.Addr()); err == nil {
			t.Error("the listener still accepts connections after Close")
		}
	})
}

func portOf(t *testing.T, addr string) string {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCloseEndsLongPolls(t *testing.T) {
	h := serve(t, Config{Addr: "127.0.0.1:0"}, withSyncer)
	tok := h.acc.addUser("alice", "pw")
	h.syncer.held = make(chan struct{})
	s := h.srv
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	type result struct {
		status int
		body   string
		err    error
	}
	done := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest("GET", "http://"+s.Addr()+"/_matrix/client/v3/sync?timeout=300000", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		done <- result{resp.StatusCode, string(b), err}
	}()
	<-h.syncer.held // the long-poll is in the backend
	s.Close()
	r := <-done
	if r.err != nil || r.status != 200 || !strings.Contains(r.body, "cut short") {
		t.Errorf("a long-poll in flight at Close got %d %q %v; want the backend's answer once its context ended", r.status, r.body, r.err)
	}
}

func TestAnonymousOraclesHaveNoCORS(t *testing.T) {
	remote := esc("@bob:example.org")
	tests := []struct {
		name, path string
		opts       []option
		status     int
		cors       bool
	}{
		{"register/available for the app is answered without CORS", registerPath + "/available?username=carol", nil, 200, false},
		{"register/available for another page is refused without CORS", registerPath + "/available?username=carol", []option{origin("https://evil.example")}, 403, false},
		{"a local profile without a token is answered without CORS", "/_matrix/client/v3/profile/" + esc(userID("alice")), nil, 200, false},
		{"a local profile for another page is refused without CORS", "/_matrix/client/v3/profile/" + esc(userID("alice")), []option{origin("https://evil.example")}, 403, false},
		{"a remote profile without a token is refused", "/_matrix/client/v3/profile/" + remote, nil, 401, false},
		{"a remote profile field without a token is refused", "/_matrix/client/v3/profile/" + remote + "/displayname", nil, 401, false},
		{"a profile with a token has CORS for clients elsewhere", "/_matrix/client/v3/profile/" + esc(userID("alice")), []option{token("alice-token"), origin("https://app.element.io")}, 200, true},
		{"a profile with a bad token is refused with CORS", "/_matrix/client/v3/profile/" + esc(userID("alice")), []option{token("nope")}, 401, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.acc.tokens["alice-token"] = &Session{UserID: userID("alice"), DeviceID: "D"}
			w := h.do("GET", tt.path, "", tt.opts...)
			wantStatus(t, w, tt.status)
			if got := w.Header().Get("Access-Control-Allow-Origin") != ""; got != tt.cors {
				t.Errorf("CORS headers present = %v, want %v", got, tt.cors)
			}
			if tt.status >= 400 && slices.Contains(h.rec.Calls(), "Profile") {
				t.Errorf("backend was asked: %q", h.rec.Calls())
			}
		})
	}
}

// TestTheAppURLIsOneABrowserCanOpen: bound to all interfaces, the printed
// URL names the loopback address, not [::] or 0.0.0.0.
func TestTheAppURLIsOneABrowserCanOpen(t *testing.T) {
	for addr, want := range map[string]string{
		"0.0.0.0:18008":   "http://127.0.0.1:18008/",
		"[::]:18008":      "http://127.0.0.1:18008/",
		"127.0.0.1:18008": "http://127.0.0.1:18008/",
		"[::1]:18008":     "http://[::1]:18008/",
		"mybox.lan:18008": "http://mybox.lan:18008/",
	} {
		if got := serve(t, Config{Addr: addr}).srv.URL(); got != want {
			t.Errorf("URL with Addr %q = %q, want %q", addr, got, want)
		}
	}
}
