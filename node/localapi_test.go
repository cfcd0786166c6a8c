package node

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
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
	if c, err := a.AccountCount(); err != nil || c != 0 {
		t.Fatalf("accounts after the attack: %d, %v", c, err)
	}
	for _, host := range []string{"127.0.0.1:" + port, "localhost:" + port} {
		if status, _, body := apiRequest(t, a, "GET", "/_parley/v1/status", host, "", nil); status != http.StatusOK {
			t.Errorf("status with Host %s: %d %s", host, status, body)
		}
	}
}
