package node

import (
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-p2p/parley/internal/testkit"
)

// apiRequest sends one request to the node's API over 127.0.0.1, with the
// Host header given (empty: the bound address), and returns the status and
// body.
func apiRequest(t *testing.T, tn *testNode, method, path, host, body string, hdr map[string]string) (int, http.Header, string) {
	t.Helper()
	_, port, err := net.SplitHostPort(tn.HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, "http://127.0.0.1:"+port+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// A page on evil.example that rebinds its name to this machine reaches a
// node bound to all interfaces with Host: evil.example. It must learn
// nothing and claim nothing; the owner's own addresses still work.
func TestRebindingPageIsRefusedByANodeOnAllInterfaces(t *testing.T) {
	t.Parallel()
	a := newTestNode(t, testOpts{httpAddr: "0.0.0.0:0"})
	_, port, _ := net.SplitHostPort(a.HTTPAddr())
	register := `{"username":"mallory","password":"a long password","auth":{"type":"m.login.dummy"}}`
	for _, host := range []string{"evil.example:" + port, "evil.example", "evil.localhost:" + port} {
		status, _, body := apiRequest(t, a, "GET", "/_parley/v1/status", host, "", nil)
		if status != http.StatusMisdirectedRequest || strings.Contains(body, a.ServerName()) {
			t.Errorf("status read with Host %s: %d %s", host, status, body)
		}
		status, _, body = apiRequest(t, a, "POST", "/_matrix/client/v3/register", host, register, nil)
		if status != http.StatusMisdirectedRequest {
			t.Errorf("register with Host %s: %d %s", host, status, body)
		}
	}
	if c, err := a.api.AccountCount(); err != nil || c != 0 {
		t.Fatalf("accounts after the attack: %d, %v", c, err)
	}
	for _, host := range []string{"127.0.0.1:" + port, "localhost:" + port} {
		if status, _, body := apiRequest(t, a, "GET", "/_parley/v1/status", host, "", nil); status != http.StatusOK {
			t.Errorf("status with Host %s: %d %s", host, status, body)
		}
	}
}

// Right after a restart, before the node has loaded its rooms, a client
// that reconnects at once sends a message. It must be told to retry (503),
// never refused as a non-member (403); once ready, the send succeeds.
func TestSendsDuringStartAreRetriedNotRefused(t *testing.T) {
	// Not parallel: it closes a node and starts another on the same port, which another test could take in between.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	a := newTestNode(t, testOpts{dir: dir})
	alice := a.register(ctx, "alice")
	room := privateRoom(t, ctx, alice)
	addr := a.HTTPAddr()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}

	// The client hammers the old address while the node starts again.
	statuses := map[int]int{}
	var mu sync.Mutex
	done := make(chan struct{})
	stop := make(chan struct{})
	go func() {
		defer close(done)
		url := "http://" + addr + "/_matrix/client/v3/rooms/" + string(room) + "/send/m.room.message/"
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			req, _ := http.NewRequest("PUT", url+"t"+strconv.Itoa(i), strings.NewReader(`{"msgtype":"m.text","body":"early"}`))
			req.Header.Set("Authorization", "Bearer "+alice.AccessToken)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				continue // not listening yet
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			mu.Lock()
			statuses[resp.StatusCode]++
			mu.Unlock()
		}
	}()
	newTestNode(t, testOpts{dir: dir, httpAddr: addr})
	testkit.WaitFor(t, 30*time.Second, "a send to succeed after the start", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return statuses[http.StatusOK] > 0
	})
	close(stop)
	<-done
	t.Logf("answers during and after the start: %v", statuses)
	for status, n := range statuses {
		if status != http.StatusOK && status != http.StatusServiceUnavailable {
			t.Errorf("%d sends answered %d", n, status)
		}
	}
}

// A page of another origin asks the node, without a token, which users it
// has and whom it shares rooms with. It must not be able to read either
// answer (no CORS headers), and a remote user's profile needs a token even
// outside a browser. Alice's own client, with her token, still reads Bob's.
func TestOraclesAreNotReadableByOtherPages(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, _, alice, bob, _ := twoMembers(t, ctx, testOpts{}, testOpts{})

	page := map[string]string{"Origin": "https://evil.example"}
	for _, path := range []string{
		"/_matrix/client/v3/register/available?username=alice",
		"/_matrix/client/v3/register/available?username=nobody",
		"/_matrix/client/v3/profile/" + string(alice.UserID),
		"/_matrix/client/v3/profile/" + string(bob.UserID),
		"/_matrix/client/v3/profile/" + string(bob.UserID) + "/displayname",
	} {
		status, hdr, body := apiRequest(t, a, "GET", path, "", "", page)
		if hdr.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("%s is readable by any page: %d %s", path, status, body)
		}
		if strings.Contains(body, "bob") || strings.Contains(body, "available") {
			t.Errorf("%s answered a foreign page: %d %s", path, status, body)
		}
	}
	status, _, body := apiRequest(t, a, "GET", "/_matrix/client/v3/profile/"+string(bob.UserID), "", "", nil)
	if status != http.StatusUnauthorized || strings.Contains(body, "bob") {
		t.Errorf("anonymous remote profile: %d %s", status, body)
	}
	// bob's display name is ciphertext in his join until his node's
	// key share reaches a's node: wait for it rather than race it.
	testkit.WaitFor(t, 20*time.Second, "alice to read bob's profile", func() bool {
		p, err := alice.GetProfile(ctx, bob.UserID)
		return err == nil && p.DisplayName == "bob"
	})
}
