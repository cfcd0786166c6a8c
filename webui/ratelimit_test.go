package webui

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// fakeClock is the limiter's time, moved by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestLimiterBacksOff(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1e9, 0)}
	l := newLimiter(3, time.Second, 8*time.Second)
	l.now = clock.now
	tests := []struct {
		name    string
		advance time.Duration
		wait    time.Duration // 0: the attempt goes ahead
	}{
		{"the first failure is free", 0, 0},
		{"the second is free", 0, 0},
		{"the third is free", 0, 0},
		{"the fourth goes ahead and starts the wait", 0, 0},
		{"the fifth at once must wait a second", 0, time.Second},
		{"a refused attempt adds nothing", 500 * time.Millisecond, 500 * time.Millisecond},
		{"after the wait, one more goes ahead", 500 * time.Millisecond, 0},
		{"and the next waits twice as long", 0, 2 * time.Second},
		{"then four seconds", 2 * time.Second, 0},
		{"then four seconds, at once", 0, 4 * time.Second},
		{"then eight", 4 * time.Second, 0},
		{"never more than the ceiling", 8 * time.Second, 0},
		{"never more than the ceiling, at once", 0, 8 * time.Second},
		{"an hour later the key starts afresh", time.Hour, 0},
		{"with its free failures again", 0, 0},
	}
	for _, tt := range tests {
		clock.t = clock.t.Add(tt.advance)
		if got := l.begin("user:alice"); got != tt.wait {
			t.Errorf("%s: wait %v, want %v", tt.name, got, tt.wait)
		}
	}
}

func TestLimiterSuccessGivesTheCountBack(t *testing.T) {
	l := newLimiter(2, time.Second, time.Minute)
	for range 100 {
		if l.begin("user:alice") > 0 {
			t.Fatal("a user who always succeeds had to wait")
		}
		l.succeeded("user:alice")
	}
	if n := l.size(); n != 0 {
		t.Errorf("%d keys left after successes", n)
	}
}

func TestLimiterTableIsBounded(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1e9, 0)}
	l := newLimiter(5, time.Second, time.Minute)
	l.now = clock.now
	l.max = 1000
	l.begin("user:alice")
	for i := range 20000 {
		clock.t = clock.t.Add(time.Millisecond)
		l.begin(fmt.Sprintf("user:junk%d", i))
		if n := l.size(); n > l.max {
			t.Fatalf("%d keys after %d junk names, bound %d", n, i+1, l.max)
		}
	}
}

// TestAFullTableKeepsAVictimHeldBack: a guesser fills the table with
// names of its own; the key it has locked out stays locked.
func TestAFullTableKeepsAVictimHeldBack(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1e9, 0)}
	l := newLimiter(5, time.Minute, 10*time.Minute)
	l.now = clock.now
	l.max = 1000
	for range 6 {
		l.begin("user:victim")
	}
	if l.begin("user:victim") == 0 {
		t.Fatal("the victim's key is not held back after 6 failures")
	}
	for i := range 5000 {
		clock.t = clock.t.Add(time.Millisecond)
		l.begin(fmt.Sprintf("user:junk%d", i))
	}
	if l.begin("user:victim") == 0 {
		t.Fatal("5,000 junk names freed the victim's key from its wait")
	}
}

func TestClientKey(t *testing.T) {
	tests := []struct{ name, remote, want string }{
		{"every loopback address is one client", "127.3.4.5:5555", "client:loopback"},
		{"the IPv6 loopback too", "[::1]:5555", "client:loopback"},
		{"an IPv4 address is itself", "192.168.1.7:5555", "client:192.168.1.7"},
		{"an IPv6 address is its /64", "[2001:db8:1:2:3:4:5:6]:5555", "client:2001:db8:1:2::/64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tt.remote
			if got := clientKey(r); got != tt.want {
				t.Errorf("clientKey(%s) = %s, want %s", tt.remote, got, tt.want)
			}
		})
	}
}

func TestWrongPasswordsAreThrottledPerUser(t *testing.T) {
	h := newHarness(t)
	h.acc.addUser("bob", "the right password")
	wrong := `{"type":"m.login.password","identifier":{"type":"m.id.user","user":"bob"},"password":"a wrong password"}`
	statuses := map[int]int{}
	for range 50 {
		w := h.do("POST", "/_matrix/client/v3/login", wrong)
		statuses[w.Code]++
		if w.Code == http.StatusTooManyRequests {
			if m := decode(t, w); m["errcode"] != "M_LIMIT_EXCEEDED" || m["retry_after_ms"].(float64) <= 0 {
				t.Fatalf("429 body %v", m)
			}
		}
	}
	if statuses[http.StatusForbidden] != 6 || statuses[http.StatusTooManyRequests] != 44 {
		t.Errorf("answers to 50 wrong passwords: %v, want 6 checked and 44 refused", statuses)
	}
	logins := 0
	for _, c := range h.rec.Calls() {
		if c == "Login" {
			logins++
		}
	}
	if logins != 6 {
		t.Errorf("%d passwords reached the node, want 6", logins)
	}
}
