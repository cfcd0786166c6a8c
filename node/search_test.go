package node

import (
	"context"
	"slices"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/parley-p2p/parley/internal/testkit"
)

// searchIDs searches as c and lists the event IDs found (first page).
func searchIDs(t testing.TB, ctx context.Context, c *mautrix.Client, req mautrix.ReqSearch) []id.EventID {
	t.Helper()
	resp, err := c.Search(ctx, &req)
	if err != nil {
		t.Fatalf("%s searches %q: %v", c.UserID, req.SearchTerm, err)
	}
	var out []id.EventID
	for _, r := range resp.Results {
		out = append(out, r.Event.ID)
	}
	return out
}

// waitFound waits until c's search for term finds want (all of them, in
// any order) and nothing else.
func waitFound(t testing.TB, ctx context.Context, c *mautrix.Client, term string, want ...id.EventID) {
	t.Helper()
	var got []id.EventID
	testkit.WaitFor(t, 20*time.Second, string(c.UserID)+" finds "+term, func() bool {
		got = searchIDs(t, ctx, c, mautrix.ReqSearch{SearchTerm: term})
		return len(got) == len(want) && !slices.ContainsFunc(want, func(e id.EventID) bool { return !slices.Contains(got, e) })
	})
}

// TestSearchAcrossNodes: a message alice sends in an encrypted room is
// found by bob on his own node, by rank and by recency, with its context
// and the senders' profiles, within one room, and page by page.
func TestSearchAcrossNodes(t *testing.T) {
	ctx := context.Background()
	_, _, alice, bob, room := twoMembers(t, ctx, testOpts{}, testOpts{})
	if err := alice.SetDisplayName(ctx, "Alice A."); err != nil {
		t.Fatal(err)
	}
	other := privateRoom(t, ctx, bob)
	first := sendText(t, ctx, alice, room, "Shall we meet for lunch at the café?")
	second := sendText(t, ctx, alice, room, "lunch lunch lunch, I am hungry")
	waitFound(t, ctx, bob, "lunch", first, second) // recency is the order bob's node placed them in
	third := sendText(t, ctx, bob, other, "lunch is served in the other room")
	sendText(t, ctx, alice, room, "see you there")
	waitFound(t, ctx, bob, "lunch", first, second, third)

	t.Run("rank puts the best match first", func(t *testing.T) {
		got := searchIDs(t, ctx, bob, mautrix.ReqSearch{SearchTerm: "lunch", OrderBy: "rank"})
		if got[0] != second {
			t.Errorf("by rank: %v; want %s (lunch three times) first", got, second)
		}
	})
	t.Run("recent puts the newest first", func(t *testing.T) {
		got := searchIDs(t, ctx, bob, mautrix.ReqSearch{SearchTerm: "lunch", OrderBy: "recent"})
		if !slices.Equal(got, []id.EventID{third, second, first}) {
			t.Errorf("by recency: %v; want %v", got, []id.EventID{third, second, first})
		}
	})
	t.Run("a filter keeps to one room", func(t *testing.T) {
		got := searchIDs(t, ctx, bob, mautrix.ReqSearch{SearchTerm: "lunch", Filter: &mautrix.FilterPart{Rooms: []id.RoomID{other}}})
		if !slices.Equal(got, []id.EventID{third}) {
			t.Errorf("in %s: %v; want %s", other, got, third)
		}
		got = searchIDs(t, ctx, bob, mautrix.ReqSearch{SearchTerm: "lunch", Filter: &mautrix.FilterPart{NotSenders: []id.UserID{alice.UserID}}})
		if !slices.Equal(got, []id.EventID{third}) {
			t.Errorf("not alice's: %v; want %s", got, third)
		}
	})
	t.Run("every term must match", func(t *testing.T) {
		if got := searchIDs(t, ctx, bob, mautrix.ReqSearch{SearchTerm: "lunch hungry"}); !slices.Equal(got, []id.EventID{second}) {
			t.Errorf("lunch hungry: %v; want %s", got, second)
		}
		if got := searchIDs(t, ctx, bob, mautrix.ReqSearch{SearchTerm: "lunch nowhere "}); len(got) != 0 {
			t.Errorf("lunch nowhere: %v; want nothing", got)
		}
	})
	t.Run("a result comes with its context and profiles", func(t *testing.T) {
		resp, err := bob.Search(ctx, &mautrix.ReqSearch{SearchTerm: "hungry", EventContext: mautrix.SearchEventContext{BeforeLimit: 1, AfterLimit: 1, IncludeProfile: true}})
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Results) != 1 || resp.Count != 1 {
			t.Fatalf("hungry: %d results, count %d; want 1", len(resp.Results), resp.Count)
		}
		r := resp.Results[0]
		if r.Event.Content.Raw["body"] != "lunch lunch lunch, I am hungry" || r.Event.RoomID != room {
			t.Errorf("result %+v; want the decrypted message, with its room", r.Event)
		}
		c := r.Context
		if c == nil || len(c.EventsBefore) != 1 || len(c.EventsAfter) != 1 || c.EventsBefore[0].ID != first {
			t.Fatalf("context %+v; want one event each side, %s before", c, first)
		}
		var raw struct {
			SearchCategories struct {
				RoomEvents struct {
					Results []struct {
						Context struct {
							ProfileInfo map[string]struct {
								DisplayName string `json:"displayname"`
							} `json:"profile_info"`
						} `json:"context"`
					} `json:"results"`
					Highlights []string `json:"highlights"`
				} `json:"room_events"`
			} `json:"search_categories"`
		}
		body := map[string]any{"search_categories": map[string]any{"room_events": map[string]any{
			"search_term": "hungr", "event_context": map[string]any{"include_profile": true}}}}
		if _, err := bob.MakeRequest(ctx, "POST", bob.BuildClientURL("v3", "search"), body, &raw); err != nil {
			t.Fatal(err)
		}
		re := raw.SearchCategories.RoomEvents
		if len(re.Results) != 1 || re.Results[0].Context.ProfileInfo[alice.UserID.String()].DisplayName != "Alice A." {
			t.Errorf("profile_info %+v; want alice's display name", re.Results)
		}
		if !slices.Contains(re.Highlights, "hungry") {
			t.Errorf("highlights %v; want the prefix's expansion hungry", re.Highlights)
		}
	})
	t.Run("next_batch walks every result once", func(t *testing.T) {
		var seen []id.EventID
		req := mautrix.ReqSearch{SearchTerm: "lunch", Filter: &mautrix.FilterPart{Limit: 1}}
		for range 5 {
			resp, err := bob.Search(ctx, &req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.Count != 3 {
				t.Errorf("count %d; want 3", resp.Count)
			}
			for _, r := range resp.Results {
				seen = append(seen, r.Event.ID)
			}
			if resp.NextBatch == "" {
				break
			}
			req.NextBatch = resp.NextBatch
		}
		if len(seen) != 3 || slices.Compact(slices.Sorted(slices.Values(seen))) == nil || len(slices.Compact(slices.Sorted(slices.Values(seen)))) != 3 {
			t.Errorf("pages gave %v; want the 3 results once each", seen)
		}
		req.SearchTerm = "other"
		if _, err := bob.Search(ctx, &req); err == nil {
			t.Error("a token was taken by another search")
		}
	})
	t.Run("groups by room", func(t *testing.T) {
		resp, err := bob.Search(ctx, &mautrix.ReqSearch{SearchTerm: "lunch", Groupings: mautrix.SearchGroupings{GroupBy: []mautrix.SearchGroup{{Key: "room_id"}}}, IncludeState: true})
		if err != nil {
			t.Fatal(err)
		}
		g := resp.Groups["room_id"]
		if len(g[room.String()].Results) != 2 || len(g[other.String()].Results) != 1 {
			t.Errorf("groups %+v; want 2 in %s and 1 in %s", g, room, other)
		}
		if len(resp.State[room]) == 0 || len(resp.State[other]) == 0 {
			t.Errorf("state of %d rooms; want both rooms'", len(resp.State))
		}
	})
	t.Run("alice finds the same on her node", func(t *testing.T) {
		waitFound(t, ctx, alice, "lunch", first, second)
	})
}
