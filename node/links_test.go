package node

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/parley-p2p/parley/internal/testkit"
)

func makeLink(t *testing.T, ctx context.Context, c *mautrix.Client, room id.RoomID, body map[string]any) map[string]any {
	t.Helper()
	var out map[string]any
	_, err := c.MakeRequest(ctx, http.MethodPost, c.BuildURL(mautrix.BaseURLPath{"_parley", "v1", "rooms", room.String(), "links"}), body, &out)
	if err != nil {
		t.Fatalf("make link: %v", err)
	}
	return out
}

// useLink posts a link to /join_link and returns the room ID or the
// Matrix error code.
func useLink(ctx context.Context, c *mautrix.Client, link string) (string, string, error) {
	var out struct {
		RoomID string `json:"room_id"`
	}
	_, err := c.MakeRequest(ctx, http.MethodPost, c.BuildURL(mautrix.BaseURLPath{"_parley", "v1", "join_link"}), map[string]string{"link": link}, &out)
	var herr mautrix.HTTPError
	if errors.As(err, &herr) && herr.RespError != nil {
		return "", herr.RespError.ErrCode, err
	}
	return out.RoomID, "", err
}

// TestInviteLinks: a link with max_uses 3 admits three users on three
// nodes, who then chat; the fourth use is refused; a revoked or expired
// link admits no one; a link still works when its maker's node is off;
// a damaged link is refused before anything is sent.
func TestInviteLinks(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a := newTestNode(t, testOpts{})
	nodes := []*testNode{a}
	for range 5 {
		nodes = append(nodes, newTestNode(t, testOpts{bootstrap: []*testNode{a}}))
	}
	names := []string{"alice", "bob", "carol", "dave", "erin", "frank"}
	users := make([]*mautrix.Client, len(nodes))
	for i, n := range nodes {
		users[i] = n.register(ctx, names[i])
	}
	alice := users[0]
	room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Name: "linked"})
	if err != nil {
		t.Fatal(err)
	}
	link := makeLink(t, ctx, alice, room.RoomID, map[string]any{"max_uses": 3})
	l := link["link"].(string)
	if !strings.HasPrefix(l, "parley:join/") || !strings.Contains(link["web_link"].(string), "/#/join/") {
		t.Fatalf("link %v has the wrong forms", link)
	}

	t.Run("three users join through a link of three uses and chat", func(t *testing.T) {
		for _, u := range users[1:4] {
			got, code, err := useLink(ctx, u, l)
			if err != nil || got != room.RoomID.String() {
				t.Fatalf("%s join_link: %v %s", u.UserID, err, code)
			}
		}
		sent, err := users[3].SendText(ctx, room.RoomID, "dave says hi")
		if err != nil {
			t.Fatal(err)
		}
		seen := func(u int) bool {
			for _, b := range readAll(t, ctx, users[u], room.RoomID) {
				if b == "dave says hi" {
					return true
				}
			}
			return false
		}
		ok := testkit.Eventually(20*time.Second, func() bool {
			for u := range users[:4] {
				if !seen(u) {
					return false
				}
			}
			return true
		})
		if !ok {
			// Say, for each node, where dave's message stands.
			for i, n := range nodes[:4] {
				state := "not held"
				if info, err := n.dag.Event(sent.EventID.String()); err == nil {
					state = fmt.Sprintf("held (outlier %v, soft-failed %q, plain %d bytes)", info.Rec.Outlier, info.Rec.SoftFailed, len(info.Rec.Plain))
				}
				t.Logf("%s: shown %v; %s", names[i], seen(i), state)
			}
			t.Fatal("timed out after 20s waiting for everyone to have dave's message")
		}
	})
	t.Run("the fourth use is refused", func(t *testing.T) {
		_, code, err := useLink(ctx, users[4], l)
		if err == nil || code != "M_FORBIDDEN" || !strings.Contains(err.Error(), "used up") {
			t.Errorf("fourth use: %v (%s), want used up", err, code)
		}
	})
	t.Run("a revoked link is refused", func(t *testing.T) {
		rl := makeLink(t, ctx, alice, room.RoomID, nil)
		_, err := alice.MakeRequest(ctx, http.MethodDelete, alice.BuildURL(mautrix.BaseURLPath{"_parley", "v1", "rooms", room.RoomID.String(), "links", rl["id"].(string)}), nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, code, err := useLink(ctx, users[4], rl["link"].(string))
		if err == nil || code != "M_FORBIDDEN" || !strings.Contains(err.Error(), "revoked") {
			t.Errorf("revoked link: %v (%s)", err, code)
		}
	})
	t.Run("an expired link is refused", func(t *testing.T) {
		el := makeLink(t, ctx, alice, room.RoomID, map[string]any{"expires_in_ms": 1})
		testkit.WaitFor(t, time.Second, "the link to expire", func() bool { return nowMS() > int64(el["expires_ts"].(float64)) })
		_, code, err := useLink(ctx, users[4], el["link"].(string))
		if err == nil || code != "M_FORBIDDEN" || !strings.Contains(err.Error(), "expired") {
			t.Errorf("expired link: %v (%s)", err, code)
		}
	})
	t.Run("live links are listed and revoked ones are not", func(t *testing.T) {
		var out struct {
			Links []map[string]any `json:"links"`
		}
		if _, err := alice.MakeRequest(ctx, http.MethodGet, alice.BuildURL(mautrix.BaseURLPath{"_parley", "v1", "rooms", room.RoomID.String(), "links"}), nil, &out); err != nil {
			t.Fatal(err)
		}
		if len(out.Links) != 0 {
			t.Errorf("links listed: %v (the used-up, revoked and expired links are not live)", out.Links)
		}
	})
	t.Run("damaged links are refused and change nothing", func(t *testing.T) {
		fresh := makeLink(t, ctx, alice, room.RoomID, nil)["link"].(string)
		for _, bad := range []string{
			"", "hello", "parley:join/", fresh[:len(fresh)/2],
			fresh[:len(fresh)-3] + "AAA", "parley:join/" + strings.Repeat("A", 400),
		} {
			before := nodes[4].store.Pos()
			_, code, err := useLink(ctx, users[4], bad)
			if err == nil || (code != "M_INVALID_PARAM" && code != "M_MISSING_PARAM") {
				t.Errorf("link %.30q: %v (%s), want a clear refusal", bad, err, code)
			}
			if nodes[4].store.Pos() != before {
				t.Errorf("link %.30q changed erin's node", bad)
			}
		}
	})
	t.Run("a link is honoured by another member when its maker's node is off", func(t *testing.T) {
		made := makeLink(t, ctx, alice, room.RoomID, nil)
		ol := made["link"].(string)
		// The link names alice's node and up to two other members' nodes,
		// whichever they are: every member's node must hold the link.
		testkit.WaitFor(t, 20*time.Second, "the members' nodes to see the new link", func() bool {
			for _, n := range nodes[1:4] {
				r := n.getRoom(room.RoomID.String())
				if _, ok := n.peers.LinkStates(r)[made["id"].(string)]; !ok {
					return false
				}
			}
			return true
		})
		a.Close()
		got, code, err := useLink(ctx, users[5], ol)
		if err != nil || got != room.RoomID.String() {
			t.Fatalf("frank via bob while alice is off: %v %s", err, code)
		}
	})
}
