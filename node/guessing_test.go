package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-p2p/parley/internal/testkit"
	"maunium.net/go/mautrix"
)

// syncBuffer is a log sink tests can read while the node writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// guesses sends n requests at once and counts the answers by status; each
// 429 must be M_LIMIT_EXCEEDED with a retry_after_ms.
func guesses(t *testing.T, url string, n int, body func(i int) string) map[int]int {
	t.Helper()
	var mu sync.Mutex
	counts := map[int]int{}
	var bad []string
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			resp, err := http.Post(url, "application/json", strings.NewReader(body(i)))
			if err != nil {
				mu.Lock()
				bad = append(bad, err.Error())
				mu.Unlock()
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var e struct {
				Errcode    string `json:"errcode"`
				RetryAfter int64  `json:"retry_after_ms"`
			}
			json.Unmarshal(b, &e)
			mu.Lock()
			defer mu.Unlock()
			counts[resp.StatusCode]++
			if resp.StatusCode == http.StatusTooManyRequests && (e.Errcode != "M_LIMIT_EXCEEDED" || e.RetryAfter <= 0) {
				bad = append(bad, string(b))
			}
		})
	}
	wg.Wait()
	if len(bad) > 0 {
		t.Fatalf("bad answers: %q", bad)
	}
	return counts
}

// Fifty wrong passwords for alice arrive at once. Only a few reach bcrypt
// (403); the rest are told to wait (429). The failures are logged, but not
// line for line; the node goes on serving, and alice logs in once her wait
// is over.
func TestPasswordGuessingIsThrottled(t *testing.T) {
	// Not parallel: the limiter's waits are a second and up, so how many of the 50 guesses it lets through depends on how fast they arrive.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	logs := &syncBuffer{}
	a := newTestNode(t, testOpts{logger: slog.New(slog.NewTextHandler(logs, nil))})
	alice := a.register(ctx, "alice")

	counts := guesses(t, "http://"+a.HTTPAddr()+"/_matrix/client/v3/login", 50, func(int) string {
		return `{"type":"m.login.password","identifier":{"type":"m.id.user","user":"alice"},"password":"a wrong guess"}`
	})
	t.Logf("answers to 50 wrong passwords: %v", counts)
	if counts[http.StatusForbidden] > 10 || counts[http.StatusTooManyRequests] < 40 || counts[http.StatusForbidden]+counts[http.StatusTooManyRequests] != 50 {
		t.Errorf("answers to 50 wrong passwords: %v, want at most 10 checked and the rest refused with 429", counts)
	}
	if n := strings.Count(logs.String(), "failed login"); n == 0 || n > 10 {
		t.Errorf("%d log lines for 50 failed logins, want 1 to 10", n)
	}

	if _, err := alice.Whoami(ctx); err != nil {
		t.Fatalf("the node stopped serving alice's session: %v", err)
	}
	c := a.client()
	testkit.WaitFor(t, 30*time.Second, "alice to log in after her wait", func() bool {
		_, err := c.Login(ctx, &mautrix.ReqLogin{
			Type:       mautrix.AuthTypePassword,
			Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "alice"},
			Password:   testPassword("alice"),
		})
		if err != nil && !errors.Is(err, mautrix.MLimitExceeded) {
			t.Fatalf("alice's login: %v", err)
		}
		return err == nil
	})
}

// Fifty guesses at the registration token arrive at once: at most a few
// are compared, none creates an account, and the validity check is held
// to the same limit.
func TestRegistrationTokenGuessingIsThrottled(t *testing.T) {
	// Not parallel: the limiter's waits are a second and up, so how many of the 50 guesses it lets through depends on how fast they arrive.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a := newTestNode(t, testOpts{regToken: "family-token"})
	a.register(ctx, "alice")

	counts := guesses(t, "http://"+a.HTTPAddr()+"/_matrix/client/v3/register", 50, func(i int) string {
		return `{"username":"mallory","password":"a long password","auth":{"type":"m.login.registration_token","token":"guess` + string(rune('a'+i%26)) + `"}}`
	})
	t.Logf("answers to 50 wrong tokens: %v", counts)
	if counts[http.StatusUnauthorized] > 10 || counts[http.StatusTooManyRequests] < 40 {
		t.Errorf("answers to 50 wrong tokens: %v, want at most 10 compared and the rest refused with 429", counts)
	}
	if n, _ := a.api.AccountCount(); n != 1 {
		t.Fatalf("%d accounts after guessing", n)
	}
	status, _, body := apiRequest(t, a, "GET", "/_matrix/client/v1/register/m.login.registration_token/validity?token=family-token", "", "", nil)
	if status != http.StatusTooManyRequests {
		t.Errorf("validity check right after the guesses: %d %s, want 429", status, body)
	}
	testkit.WaitFor(t, 30*time.Second, "bob to register with the token after the wait", func() bool {
		_, err := registerWithToken(ctx, a.client(), "bob", testPassword("bob"), "family-token")
		if err != nil && !errors.Is(err, mautrix.MLimitExceeded) {
			t.Fatalf("bob's registration: %v", err)
		}
		return err == nil
	})
}

// A password of 7 characters is too weak; one of 100 bytes is more than
// bcrypt reads. Both get a clear 400 and create nothing.
func TestPasswordRulesOnTheServer(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a := newTestNode(t, testOpts{})
	tests := []struct {
		name, password, errcode, says string
	}{
		{"seven characters are too weak", "1234567", "M_WEAK_PASSWORD", "at least 8 characters"},
		{"100 bytes are more than bcrypt reads", strings.Repeat("p", 100), "M_INVALID_PARAM", "at most 72 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := registerWithToken(ctx, a.client(), "alice", tt.password, a.ClaimCode())
			var he mautrix.HTTPError
			if !errors.As(err, &he) || he.RespError == nil || he.RespError.StatusCode != 400 || he.RespError.ErrCode != tt.errcode || !strings.Contains(he.RespError.Err, tt.says) {
				t.Fatalf("register: %v, want 400 %s saying %q", err, tt.errcode, tt.says)
			}
			if n, _ := a.api.AccountCount(); n != 0 {
				t.Fatalf("%d accounts", n)
			}
		})
	}
}
