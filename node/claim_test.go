package node

import (
	"context"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parley-p2p/parley/internal/testkit"
	"maunium.net/go/mautrix"
)

// A local process (or a page that got past the Host check) tries to claim
// a fresh node the way anyone could before: m.login.dummy, then guesses.
// Neither creates an account; the owner, with the code from the data dir,
// claims the node through a Matrix client's user-interactive auth, and the
// code is void from then on.
func TestClaimingAFreshNodeNeedsItsClaimCode(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	a := newTestNode(t, testOpts{dir: dir})

	path := filepath.Join(dir, "claim-code")
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
		t.Errorf("claim-code mode %v, want a regular file 0600", fi.Mode())
	}
	b, _ := os.ReadFile(path)
	code := strings.TrimSpace(string(b))
	if code == "" || code != a.ClaimCode() || len(code) < 16 {
		t.Fatalf("claim-code file %q, node's code %q", code, a.ClaimCode())
	}
	if !strings.HasSuffix(a.ClaimURL(), "/#/claim/"+code) {
		t.Errorf("claim URL %q", a.ClaimURL())
	}

	attacker := a.client()
	if _, err := attacker.RegisterDummy(ctx, &mautrix.ReqRegister[any]{Username: "mallory", Password: "a long password"}); err == nil {
		t.Fatal("m.login.dummy claimed the node")
	}
	for _, guess := range []string{"", "0000", code[:len(code)-1], code + "x", strings.ToUpper(code)} {
		if _, err := registerWithToken(ctx, attacker, "mallory", "a long password", guess); !errors.Is(err, mautrix.MForbidden) {
			t.Errorf("guess %q: %v, want M_FORBIDDEN", guess, err)
		}
	}
	status, _, body := apiRequest(t, a, "GET", "/_matrix/client/v1/register/m.login.registration_token/validity?token=guess", "", "", nil)
	if status != http.StatusOK || !strings.Contains(body, `"valid":false`) {
		t.Errorf("validity of a guess: %d %s", status, body)
	}
	if n, _ := a.api.AccountCount(); n != 0 {
		t.Fatalf("%d accounts after the attack", n)
	}

	// The guesses came from this machine too, so the owner may first be
	// told to wait a moment.
	testkit.WaitFor(t, 30*time.Second, "the code to be checked valid", func() bool {
		status, _, body = apiRequest(t, a, "GET", "/_matrix/client/v1/register/m.login.registration_token/validity?token="+code, "", "", nil)
		if status != http.StatusOK && status != http.StatusTooManyRequests || status == http.StatusOK && !strings.Contains(body, `"valid":true`) {
			t.Fatalf("validity of the code: %d %s", status, body)
		}
		return status == http.StatusOK
	})
	owner := a.client()
	resp, err := registerWithToken(ctx, owner, "alice", "a long password", code)
	if err != nil {
		t.Fatalf("the owner claims with the code: %v", err)
	}
	if !strings.HasPrefix(string(resp.UserID), "@alice:") {
		t.Fatalf("claimed as %s", resp.UserID)
	}
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("claim-code still there after the claim: %v", err)
	}
	if a.ClaimCode() != "" {
		t.Error("the node still has a claim code")
	}
	if _, err := registerWithToken(ctx, a.client(), "mallory", "a long password", code); !errors.Is(err, mautrix.MForbidden) {
		t.Errorf("the used code registered another account: %v", err)
	}
	if n, _ := a.api.AccountCount(); n != 1 {
		t.Errorf("%d accounts, want the owner's", n)
	}

	// Claimed, a restart makes no new code.
	a.Close()
	b2 := newTestNode(t, testOpts{dir: dir})
	if b2.ClaimCode() != "" {
		t.Error("a claimed node made a claim code at start")
	}
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("claim-code written for a claimed node: %v", err)
	}
}

// A scripted setup chooses the code; a symlink planted where the code is
// written is replaced, never written through.
func TestAChosenClaimCodeIsWrittenSafely(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	victim := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(victim, []byte("precious\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, filepath.Join(dir, "claim-code")); err != nil {
		t.Fatal(err)
	}
	n, err := New(Config{DataDir: dir, HTTPAddr: "127.0.0.1:0", ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, NoMDNS: true, ClaimCode: "scripted-setup-code"})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	a := &testNode{Node: n, t: t, dir: dir}

	if b, _ := os.ReadFile(victim); string(b) != "precious\n" {
		t.Errorf("the symlink's target was written: %q", b)
	}
	fi, err := os.Lstat(filepath.Join(dir, "claim-code"))
	if err != nil || !fi.Mode().IsRegular() {
		t.Fatalf("claim-code: %v, %v", fi, err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "claim-code")); strings.TrimSpace(string(b)) != "scripted-setup-code" {
		t.Errorf("claim-code holds %q", b)
	}
	if _, err := registerWithToken(ctx, a.client(), "alice", "a long password", "scripted-setup-code"); err != nil {
		t.Fatalf("claim with the chosen code: %v", err)
	}

	for _, bad := range []string{"short", "has/slash-in-it", "has space in it"} {
		n, err := New(Config{DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, NoMDNS: true, ClaimCode: bad})
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Start(); err == nil || !strings.Contains(err.Error(), "claim code") {
			t.Errorf("claim code %q: start gave %v", bad, err)
		}
		n.Close()
	}
}
