package node

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"

	"github.com/parley-p2p/parley/internal/testkit"
	"github.com/parley-p2p/parley/rooms"
)

// TestForgedGossipIsDroppedNotRelayedNotStored: A publishes two forged
// events on the room topic (a tampered body, and a signature by a key that
// is not the sender server's). B, A's only path to C, drops both in its
// validator, so C never even sees them; a genuine message sent right after
// goes through B to C.
func TestForgedGossipIsDroppedNotRelayedNotStored(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a, b, alice, bob, room := twoMembers(t, ctx, testOpts{}, testOpts{})
	c := newTestNode(t, testOpts{bootstrap: []*testNode{b}, shun: []peer.ID{a.PeerID()}})
	carol := c.register(ctx, "carol")
	joinThrough(t, ctx, room, bob, carol)
	r := a.getRoom(room.String())

	// Forgery 1: a real event of A's with its body changed afterwards.
	content, _ := rooms.MarshalCanonical(map[string]string{"msgtype": "m.text", "body": "genuine"})
	p, _ := a.dag.Proto(r.Room, alice.UserID.String(), "m.room.message", nil, content)
	ev, err := rooms.Build(p, r.Version, a.serverName, a.key)
	if err != nil {
		t.Fatal(err)
	}
	tampered := bytes.Replace(ev.JSON(), []byte(`"genuine"`), []byte(`"forged!"`), 1)
	// Forgery 2: A's server's signature replaced by one from another key.
	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
	p.Content, _ = rooms.MarshalCanonical(map[string]string{"msgtype": "m.text", "body": "impostor"})
	impostor, err := rooms.Build(p, r.Version, a.serverName, a.key)
	if err != nil {
		t.Fatal(err)
	}
	var pdu map[string]any
	json.Unmarshal(impostor.JSON(), &pdu)
	pdu["signatures"] = map[string]any{a.serverName: map[string]string{
		rooms.KeyID: base64.RawStdEncoding.EncodeToString(ed25519.Sign(otherKey, impostor.JSON())),
	}}
	impostorJSON, _ := rooms.MarshalCanonical(pdu)
	forged := map[string][]byte{"tampered": tampered, "impostor": impostorJSON}
	for name, data := range forged {
		if err := a.host.Publish(ctx, r.ID, data); err != nil {
			t.Fatalf("publish %s: %v", name, err)
		}
	}
	if _, err := alice.SendText(ctx, room, "after the forgeries"); err != nil {
		t.Fatal(err)
	}
	cs := testkit.NewSyncer(t, ctx, carol)
	cs.Until(t, 30*time.Second, "carol to receive the genuine message through bob", func(resp *mautrix.RespSync) bool {
		for _, e := range resp.Rooms.Join[room].Timeline.Events {
			e.Content.ParseRaw(e.Type)
			if e.Type == event.EventMessage {
				if body := e.Content.AsMessage().Body; body == "forged!" || body == "impostor" {
					t.Errorf("carol received forged message %q", body)
				} else if body == "after the forgeries" {
					return true
				}
			}
		}
		return false
	})
	if got := b.peers.GossipDropped(); got < 2 {
		t.Errorf("bob's validator dropped %d messages, want 2", got)
	}
	if got := c.peers.GossipDropped(); got != 0 {
		t.Errorf("carol's validator saw %d forged messages: bob relayed them", got)
	}
	for _, n := range []*testNode{b, c} {
		for _, id := range []string{ev.ID(), impostor.ID()} {
			if n.dag.Known(id) {
				t.Errorf("node %s stored forged event %s", n.serverName[:8], id)
			}
		}
	}
}

// apiCall makes a raw client API request and returns status and errcode.
func apiCall(t *testing.T, n *testNode, method, path, token string, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+n.HTTPAddr()+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var e struct {
		ErrCode string `json:"errcode"`
	}
	json.Unmarshal(b, &e)
	return resp.StatusCode, e.ErrCode
}

// TestBadClientInputChangesNothing: each bad request gets the right Matrix
// error and leaves the node's stream where it was.
func TestBadClientInputChangesNothing(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a := newTestNode(t, testOpts{regToken: "family"})
	alice := a.register(ctx, "alice")
	room := privateRoom(t, ctx, alice)
	// A second local user, not in the room.
	res, err := alice.MakeRequest(ctx, http.MethodPost, alice.BuildClientURL("v3", "register"), map[string]any{
		"username": "mallory", "password": "password-mallory", "auth": map[string]string{"type": "m.login.registration_token", "token": "family"},
	}, nil)
	if err != nil {
		t.Fatalf("register with token: %v", err)
	}
	var mallory struct {
		AccessToken string `json:"access_token"`
	}
	json.Unmarshal(res, &mallory)
	roomPath := "/_matrix/client/v3/rooms/" + strings.ReplaceAll(room.String(), "!", "%21")
	big := `{"msgtype":"m.text","body":"` + strings.Repeat("x", 65000) + `"}`
	cases := []struct {
		name, method, path, token string
		body                      string
		status                    int
		errcode                   string
	}{
		{"a malformed JSON body is M_NOT_JSON", "POST", "/_matrix/client/v3/createRoom", alice.AccessToken, `{"preset":`, 400, "M_NOT_JSON"},
		{"event content that is not an object is M_BAD_JSON", "PUT", roomPath + "/send/m.room.message/t1", alice.AccessToken, `[1,2]`, 400, "M_BAD_JSON"},
		{"event content with a float is M_BAD_JSON", "PUT", roomPath + "/send/m.room.message/t2", alice.AccessToken, `{"body":1.5}`, 400, "M_BAD_JSON"},
		{"an event over 65536 bytes is M_TOO_LARGE", "PUT", roomPath + "/send/m.room.message/t3", alice.AccessToken, big, 413, "M_TOO_LARGE"},
		{"a send to an unknown room is M_FORBIDDEN", "PUT", "/_matrix/client/v3/rooms/%21nope:example/send/m.room.message/t4", alice.AccessToken, `{"body":"x"}`, 403, "M_FORBIDDEN"},
		{"a send to a room the user is not in is M_FORBIDDEN", "PUT", roomPath + "/send/m.room.message/t5", mallory.AccessToken, `{"body":"x"}`, 403, "M_FORBIDDEN"},
		{"reading a room the user is not in is M_FORBIDDEN", "GET", roomPath + "/messages", mallory.AccessToken, ``, 403, "M_FORBIDDEN"},
		{"a state event the user has no power for is M_FORBIDDEN", "PUT", roomPath + "/state/m.room.power_levels", mallory.AccessToken, `{}`, 403, "M_FORBIDDEN"},
		{"joining an unknown room is M_NOT_FOUND", "POST", "/_matrix/client/v3/join/%21nope:example", mallory.AccessToken, `{}`, 404, "M_NOT_FOUND"},
		{"a bad since token is M_INVALID_PARAM", "GET", "/_matrix/client/v3/sync?since=garbage", alice.AccessToken, ``, 400, "M_INVALID_PARAM"},
		{"an unknown endpoint is M_UNRECOGNIZED", "GET", "/_matrix/client/v3/nonsense", alice.AccessToken, ``, 404, "M_UNRECOGNIZED"},
		{"a third registration without the token is refused", "POST", "/_matrix/client/v3/register", "", `{"username":"eve","password":"password-eve","auth":{"type":"m.login.dummy"}}`, 401, "M_FORBIDDEN"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := a.store.Pos()
			status, code := apiCall(t, a, tc.method, tc.path, tc.token, []byte(tc.body))
			if status != tc.status || code != tc.errcode {
				t.Errorf("got %d %s, want %d %s", status, code, tc.status, tc.errcode)
			}
			if after := a.store.Pos(); after != before {
				t.Errorf("stream moved from %d to %d", before, after)
			}
		})
	}
}
