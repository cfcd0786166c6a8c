package node

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/parley-p2p/parley/internal/testkit"
)

// found is a user directory answer as user ID -> display name.
func found(t *testing.T, ctx context.Context, c *mautrix.Client, term string, limit int) (map[id.UserID]string, bool) {
	t.Helper()
	resp, err := c.SearchUserDirectory(ctx, term, limit)
	if err != nil {
		t.Fatalf("%s searches %q: %v", c.UserID, term, err)
	}
	out := map[id.UserID]string{}
	for _, u := range resp.Results {
		name, _ := u.Extra["display_name"].(string) // mautrix reads displayname
		out[u.UserID] = name
	}
	return out, resp.Limited
}

// A user finds the local users of their node and the users they share a
// room with, by user ID or display name, whatever the case; no one else.
func TestUserDirectory(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, b, alice, bob := twoNodes(t, ctx, testOpts{regToken: "dir"}, testOpts{regToken: "dir"})
	carol, eve := a.register(ctx, "carol"), b.register(ctx, "eve")
	if err := alice.SetDisplayName(ctx, "Alice Wonder"); err != nil {
		t.Fatal(err)
	}
	if err := bob.SetDisplayName(ctx, "Bobby Tables"); err != nil {
		t.Fatal(err)
	}
	room := privateRoom(t, ctx, alice)
	joinThrough(t, ctx, room, alice, bob)
	testkit.WaitFor(t, 20*time.Second, "bob's join to reach a", func() bool {
		return a.membership(a.getRoom(room.String()), bob.UserID.String()) == "join"
	})
	testkit.WaitFor(t, 20*time.Second, "alice's display name to be readable on b (its key comes after the join)", func() bool {
		m, err := bob.JoinedMembers(ctx, room)
		return err == nil && m.Joined[alice.UserID].DisplayName == "Alice Wonder"
	})

	for _, tc := range []struct {
		name     string
		searcher *mautrix.Client
		term     string
		want     map[id.UserID]string
	}{
		{"a local user by display name, in another case", carol, "wONDER", map[id.UserID]string{alice.UserID: "Alice Wonder"}},
		{"a local user by user ID", carol, "@caro", map[id.UserID]string{carol.UserID: "carol"}},
		{"a user of another node sharing no room is not found", carol, "bob", map[id.UserID]string{}},
		{"a user of another node sharing a room, by display name", alice, "tables", map[id.UserID]string{bob.UserID: "Bobby Tables"}},
		{"from the other node, by user ID", bob, "alice", map[id.UserID]string{alice.UserID: "Alice Wonder"}},
		{"not a user of another node sharing no room", eve, "alice", map[id.UserID]string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, limited := found(t, ctx, tc.searcher, tc.term, 10)
			if fmt.Sprint(got) != fmt.Sprint(tc.want) || limited {
				t.Fatalf("found %v (limited %v), want %v", got, limited, tc.want)
			}
		})
	}
	t.Run("the limit bounds the results and says so", func(t *testing.T) {
		all, limited := found(t, ctx, alice, "", 10)
		if len(all) != 3 || limited {
			t.Fatalf("all alice may find: %v (limited %v), want alice, bob and carol", all, limited)
		}
		one, limited := found(t, ctx, alice, "", 1)
		if len(one) != 1 || !limited {
			t.Fatalf("limit 1: %v (limited %v)", one, limited)
		}
	})
	t.Run("errors", func(t *testing.T) {
		search := func(body any) error {
			_, err := alice.MakeRequest(ctx, http.MethodPost, alice.BuildClientURL("v3", "user_directory", "search"), body, nil)
			return err
		}
		wantHTTP(t, "no search_term", search(map[string]any{"limit": 3}), 400, "M_MISSING_PARAM")
		wantHTTP(t, "a negative limit", search(map[string]any{"search_term": "a", "limit": -1}), 400, "M_INVALID_PARAM")
		wantHTTP(t, "a search_term too long", search(map[string]any{"search_term": strings.Repeat("a", 300)}), 400, "M_INVALID_PARAM")
		wantHTTP(t, "a search_term of the wrong type", search(map[string]any{"search_term": 5}), 400, "M_BAD_JSON")
		_, err := a.client().SearchUserDirectory(ctx, "alice", 10)
		wantHTTP(t, "no access token", err, 401, "M_MISSING_TOKEN")
	})
}
