package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/parley-p2p/parley/internal/testkit"
	"github.com/parley-p2p/parley/node"
	"github.com/parley-p2p/parley/node/links"
	"github.com/parley-p2p/parley/webui"
)

// Two real nodes: Alice's makes a room and an invite link, Bob joins with
// it. Each sees the other's safety number, the same on both sides, and
// its own user as this device. Bob's first join is with a link whose
// maker field was changed, which verifies nobody; the genuine link taken
// in person verifies Alice's server for Bob only. Alice verifies Bob's
// by hand and withdraws it.
func TestSafetyNumbersAreTheSameOnBothNodes(t *testing.T) {
	testkit.CheckGoroutines(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a := startNode(t)
	b := startNode(t, a.Addrs()...)
	alice := register(ctx, t, a, "alice")
	bob := register(ctx, t, b, "bob")

	created, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Name: "numbers", Preset: "private_chat"})
	if err != nil {
		t.Fatal(err)
	}
	roomID := created.RoomID.String()
	e2eePath := "/_parley/v1/rooms/" + url.PathEscape(roomID) + "/e2ee"

	if code := call(t, b, bob, "GET", e2eePath, nil, nil); code != http.StatusForbidden {
		t.Errorf("bob, not yet in the room, reads its encryption panel: status %d, want 403", code)
	}

	var link webui.LinkInfo
	if code := call(t, a, alice, "POST", "/_parley/v1/rooms/"+url.PathEscape(roomID)+"/links", map[string]any{}, &link); code != http.StatusOK {
		t.Fatalf("making a link: status %d", code)
	}
	p, err := links.Parse(link.Link)
	if err != nil || p.Maker != alice.UserID.String() {
		t.Fatalf("the link's maker is %q (err %v), want %s", p.Maker, err, alice.UserID)
	}
	forged := *p
	forged.Maker = "@mallory:" + fmt.Sprintf("%064x", 9)
	var joined struct {
		RoomID         string `json:"room_id"`
		VerifiedServer string `json:"verified_server"`
		VerifyError    string `json:"verify_error"`
	}
	if code := call(t, b, bob, "POST", "/_parley/v1/join_link", map[string]any{"link": links.Encode(forged), "in_person": true}, &joined); code != http.StatusOK || joined.RoomID != roomID {
		t.Fatalf("joining with the link: status %d, %+v", code, joined)
	}
	if joined.VerifiedServer != "" || joined.VerifyError == "" {
		t.Errorf("a link with a changed maker verified %q (error %q)", joined.VerifiedServer, joined.VerifyError)
	}

	panel := func(n *node.Node, c *mautrix.Client) webui.RoomE2EE {
		t.Helper()
		var info webui.RoomE2EE
		if code := call(t, n, c, "GET", e2eePath, nil, &info); code != http.StatusOK {
			t.Fatalf("%s reads the encryption panel: status %d", c.UserID, code)
		}
		return info
	}
	member := func(info webui.RoomE2EE, user id.UserID) *webui.E2EEMember {
		for i := range info.Members {
			if info.Members[i].UserID == user.String() {
				return &info.Members[i]
			}
		}
		return nil
	}
	testkit.WaitFor(t, 30*time.Second, "alice's node to see bob joined", func() bool {
		m := member(panel(a, alice), bob.UserID)
		return m != nil && m.Membership == "join"
	})
	pa, pb := panel(a, alice), panel(b, bob)
	if !pa.Encrypted || pa.Algorithm != "m.megolm.v1.aes-sha2" || pa.KEM == "" {
		t.Errorf("alice's panel: %+v", pa)
	}
	bobOnA, aliceOnB := member(pa, bob.UserID), member(pb, alice.UserID)
	aliceOnA, bobOnB := member(pa, alice.UserID), member(pb, bob.UserID)
	if bobOnA == nil || aliceOnB == nil || aliceOnA == nil || bobOnB == nil {
		t.Fatalf("panels: alice's %+v, bob's %+v", pa, pb)
	}
	grouped := regexp.MustCompile(`^\d{5}( \d{5}){11}$`)
	if !grouped.MatchString(bobOnA.SafetyNumber) {
		t.Errorf("alice sees bob's safety number as %q, want 12 groups of 5 digits", bobOnA.SafetyNumber)
	}
	if bobOnA.SafetyNumber != aliceOnB.SafetyNumber {
		t.Errorf("alice sees %q for bob, bob sees %q for alice: not the same number", bobOnA.SafetyNumber, aliceOnB.SafetyNumber)
	}
	if !aliceOnA.ThisDevice || aliceOnA.SafetyNumber != "" || !bobOnB.ThisDevice || bobOnA.ThisDevice {
		t.Errorf("this device: alice on A %+v, bob on B %+v, bob on A %+v", aliceOnA, bobOnB, bobOnA)
	}
	if bobOnA.Server != b.ServerName() || aliceOnB.Verified != nil {
		t.Errorf("bob on A %+v; alice on B %+v, verified by a forged link", bobOnA, aliceOnB)
	}

	// The genuine link, taken in person: Bob is already in, and only the
	// verification is new.
	if code := call(t, b, bob, "POST", "/_parley/v1/join_link", map[string]any{"link": link.Link, "in_person": true}, &joined); code != http.StatusOK || joined.VerifiedServer != a.ServerName() {
		t.Fatalf("joining with the genuine link in person: status %d, %+v", code, joined)
	}
	if v := member(panel(b, bob), alice.UserID).Verified; v == nil || v.Via != "link" {
		t.Errorf("after the in-person link, bob sees alice's server verified as %+v", v)
	}
	if v := member(panel(a, alice), bob.UserID).Verified; v != nil {
		t.Errorf("bob's check verified bob's server for alice: %+v", v)
	}

	// Alice checks Bob's number by hand, then withdraws it.
	verify := e2eePath + "/verify"
	if code := call(t, a, alice, "POST", verify, map[string]any{"server": a.ServerName(), "via": "manual"}, nil); code != http.StatusBadRequest {
		t.Errorf("verifying this device's own server: status %d, want 400", code)
	}
	if code := call(t, a, alice, "POST", verify, map[string]any{"server": fmt.Sprintf("%064x", 7), "via": "manual"}, nil); code != http.StatusNotFound {
		t.Errorf("verifying a server with no member in the room: status %d, want 404", code)
	}
	if code := call(t, a, alice, "POST", verify, map[string]any{"server": b.ServerName(), "via": "manual"}, nil); code != http.StatusOK {
		t.Fatalf("verifying bob's server: status %d", code)
	}
	if v := member(panel(a, alice), bob.UserID).Verified; v == nil || v.Via != "manual" || v.TS == 0 {
		t.Errorf("after verifying, alice sees bob's server as %+v", v)
	}
	if code := call(t, a, alice, "DELETE", verify+"/"+b.ServerName(), nil, nil); code != http.StatusOK {
		t.Fatalf("unverifying bob's server: status %d", code)
	}
	if v := member(panel(a, alice), bob.UserID).Verified; v != nil {
		t.Errorf("after unverifying, alice sees bob's server as %+v", v)
	}
}

func startNode(t *testing.T, bootstrap ...string) *node.Node {
	t.Helper()
	n, err := node.New(node.Config{
		DataDir:     t.TempDir(),
		HTTPAddr:    "127.0.0.1:0",
		ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"},
		Bootstrap:   bootstrap,
		NoMDNS:      true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// register claims the node for its first user, as a Matrix client does:
// it answers the registration-token stage with the claim code.
func register(ctx context.Context, t *testing.T, n *node.Node, name string) *mautrix.Client {
	t.Helper()
	c, err := mautrix.NewClient("http://"+n.HTTPAddr(), "", "")
	if err != nil {
		t.Fatal(err)
	}
	req := &mautrix.ReqRegister[any]{Username: name, Password: "a long password"}
	_, uia, err := c.Register(ctx, req)
	if uia == nil {
		t.Fatalf("register %s: no user-interactive auth offered: %v", name, err)
	}
	req.Auth = map[string]any{"type": "m.login.registration_token", "token": n.ClaimCode(), "session": uia.Session}
	resp, _, err := c.Register(ctx, req)
	if err != nil {
		t.Fatalf("register %s: %v", name, err)
	}
	c.SetCredentials(resp.UserID, resp.AccessToken)
	return c
}

// call sends a request to parley's own API as c, decodes a 200 answer
// into out, and returns the status.
func call(t *testing.T, n *node.Node, c *mautrix.Client, method, path string, body, out any) int {
	t.Helper()
	var rd bytes.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd.Reset(b)
	}
	req, err := http.NewRequest(method, "http://"+n.HTTPAddr()+path, &rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.AccessToken)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode == http.StatusOK && out != nil {
		if err := json.NewDecoder(res.Body).Decode(out); err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
	}
	return res.StatusCode
}
