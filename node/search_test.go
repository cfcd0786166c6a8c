package node

import (
	"context"
	"slices"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/parley-p2p/parley/internal/testkit"
	"github.com/parley-p2p/parley/node/store"
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
	last := sendText(t, ctx, alice, room, "see you there")
	waitFound(t, ctx, bob, "lunch", first, second, third)
	// Every message is on bob's node before the subtests read context
	// and pages (a new document changes the ranking's corpus, so the
	// scores a rank cursor holds).
	waitFound(t, ctx, bob, "there", last)

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

// sendEdit has c replace an event's text (m.replace).
func sendEdit(t testing.TB, ctx context.Context, c *mautrix.Client, room id.RoomID, orig id.EventID, body string) id.EventID {
	t.Helper()
	content := map[string]any{
		"msgtype": "m.text", "body": "* " + body,
		"m.new_content": map[string]any{"msgtype": "m.text", "body": body},
		"m.relates_to":  map[string]any{"rel_type": "m.replace", "event_id": orig},
	}
	resp, err := c.SendMessageEvent(ctx, room, event.EventMessage, content)
	if err != nil {
		t.Fatalf("%s edits %s: %v", c.UserID, orig, err)
	}
	return resp.EventID
}

// TestSearchFollowsRedactionsAndEdits: a redacted message is found no
// more on either node; an edited one is found by its new text, as the
// original, and no longer by its old text, until the edit is redacted.
func TestSearchFollowsRedactionsAndEdits(t *testing.T) {
	ctx := context.Background()
	_, _, alice, bob, room := twoMembers(t, ctx, testOpts{}, testOpts{})
	gone := sendText(t, ctx, alice, room, "a regrettable remark")
	orig := sendText(t, ctx, alice, room, "the meeting is on monday")
	waitFound(t, ctx, bob, "regrettable", gone)
	waitFound(t, ctx, bob, "monday", orig)

	t.Run("a redaction removes the hit on both nodes", func(t *testing.T) {
		if _, err := alice.RedactEvent(ctx, room, gone); err != nil {
			t.Fatal(err)
		}
		waitFound(t, ctx, alice, "regrettable")
		waitFound(t, ctx, bob, "regrettable")
	})
	edit := sendEdit(t, ctx, alice, room, orig, "the meeting is on tuesday")
	t.Run("an edit's text is found as the original", func(t *testing.T) {
		waitFound(t, ctx, bob, "tuesday", orig)
		waitFound(t, ctx, bob, "monday")
		waitFound(t, ctx, alice, "tuesday", orig)
	})
	t.Run("an edit by someone else is not applied", func(t *testing.T) {
		sendEdit(t, ctx, bob, room, orig, "the meeting is on friday")
		marker := sendText(t, ctx, bob, room, "marker friday") // after the edit, on every node
		waitFound(t, ctx, alice, "marker", marker)
		if got := searchIDs(t, ctx, alice, mautrix.ReqSearch{SearchTerm: "tuesday"}); !slices.Equal(got, []id.EventID{orig}) {
			t.Errorf("tuesday after bob's edit: %v; want alice's edit still, as %s", got, orig)
		}
		if got := searchIDs(t, ctx, alice, mautrix.ReqSearch{SearchTerm: "friday"}); len(got) != 1 || got[0] == orig {
			t.Errorf("friday: %v; want only bob's marker", got)
		}
	})
	t.Run("redacting the edit brings the original's text back", func(t *testing.T) {
		if _, err := alice.RedactEvent(ctx, room, edit); err != nil {
			t.Fatal(err)
		}
		waitFound(t, ctx, bob, "monday", orig)
		waitFound(t, ctx, bob, "tuesday")
	})
	t.Run("redacting the original removes it", func(t *testing.T) {
		if _, err := alice.RedactEvent(ctx, room, orig); err != nil {
			t.Fatal(err)
		}
		waitFound(t, ctx, bob, "meeting")
		sendEdit(t, ctx, alice, room, orig, "the meeting is back")
		marker := sendText(t, ctx, alice, room, "marker two")
		waitFound(t, ctx, bob, "marker two", marker)
		if got := searchIDs(t, ctx, bob, mautrix.ReqSearch{SearchTerm: "meeting"}); len(got) != 0 {
			t.Errorf("an edit of a redacted message is found: %v", got)
		}
	})
}

// TestSearchHonoursVisibilityAndForget: on one node, a user who joins a
// room with history visibility "joined" does not find what was said
// before; a user who forgot a room finds nothing of it while another
// local member still does; once every local member forgot it, the
// room's index is gone.
func TestSearchHonoursVisibilityAndForget(t *testing.T) {
	ctx := context.Background()
	a := newTestNode(t, testOpts{regToken: "letmein"})
	alice := a.register(ctx, "alice")
	dave := a.register(ctx, "dave")
	room := privateRoom(t, ctx, alice)
	setVisibility(t, ctx, alice, room, "joined")
	early := sendText(t, ctx, alice, room, "early plans")
	waitFound(t, ctx, alice, "plans", early)
	joinThrough(t, ctx, room, alice, dave)
	late := sendText(t, ctx, alice, room, "late plans")
	waitFound(t, ctx, alice, "plans", early, late)

	t.Run("a later joiner does not find what came before", func(t *testing.T) {
		waitFound(t, ctx, dave, "plans", late)
	})
	t.Run("a forgotten room is not searched", func(t *testing.T) {
		if _, err := dave.LeaveRoom(ctx, room); err != nil {
			t.Fatal(err)
		}
		if _, err := dave.ForgetRoom(ctx, room); err != nil {
			t.Fatal(err)
		}
		if got := searchIDs(t, ctx, dave, mautrix.ReqSearch{SearchTerm: "plans"}); len(got) != 0 {
			t.Errorf("dave finds %v in a room he forgot", got)
		}
		waitFound(t, ctx, alice, "plans", early, late)
		if n := a.searchPostings(t, room.String(), "plans"); n != 2 {
			t.Errorf("%d postings of plans while alice may read the room; want 2", n)
		}
	})
	t.Run("the index goes when every local member forgot the room", func(t *testing.T) {
		if _, err := alice.LeaveRoom(ctx, room); err != nil {
			t.Fatal(err)
		}
		if _, err := alice.ForgetRoom(ctx, room); err != nil {
			t.Fatal(err)
		}
		if n := a.searchPostings(t, room.String(), "plans"); n != 0 {
			t.Errorf("%d postings of plans left in a room nobody here may read", n)
		}
	})
}

// TestSearchText: accents, case, Japanese and the prefix of the last
// word.
func TestSearchText(t *testing.T) {
	ctx := context.Background()
	a := newTestNode(t, testOpts{})
	alice := a.register(ctx, "alice")
	room := privateRoom(t, ctx, alice)
	cafe := sendText(t, ctx, alice, room, "Rendez-vous au CAFÉ")
	ja := sendText(t, ctx, alice, room, "明日の会議は十時からです")
	meeting := sendText(t, ctx, alice, room, "Meetings all day")
	waitFound(t, ctx, alice, "cafe", cafe)
	tests := []struct {
		term string
		want []id.EventID
	}{
		{"café", []id.EventID{cafe}},
		{"Cafe ", []id.EventID{cafe}},
		{"会議", []id.EventID{ja}},
		{"十時", []id.EventID{ja}},
		{"会議室", nil},
		{"meet", []id.EventID{meeting}},
		{"meet ", nil},
		{"MEETINGS", []id.EventID{meeting}},
		{"all mee", []id.EventID{meeting}},
		{"x", nil},
	}
	for _, tt := range tests {
		if got := searchIDs(t, ctx, alice, mautrix.ReqSearch{SearchTerm: tt.term}); !slices.Equal(got, tt.want) {
			t.Errorf("%q finds %v; want %v", tt.term, got, tt.want)
		}
	}
	if got := searchIDs(t, ctx, alice, mautrix.ReqSearch{SearchTerm: "meet", Keys: []string{"content.topic"}}); len(got) != 0 {
		t.Errorf("meet in topics finds %v; want nothing", got)
	}
}

// TestSearchReindexesAfterRestart: the index survives a restart; a node
// whose index was lost (as one indexed before this version) walks its
// rooms again at its next start and finds the old messages.
func TestSearchReindexesAfterRestart(t *testing.T) {
	ctx := context.Background()
	a, b, alice, bob, room := twoMembers(t, ctx, testOpts{}, testOpts{})
	var sent []id.EventID
	for i := range 5 {
		sent = append(sent, sendText(t, ctx, alice, room, "archive entry "+string(rune('a'+i))))
	}
	waitFound(t, ctx, bob, "archive", sent...)
	restart := func(clear bool) *mautrix.Client {
		t.Helper()
		dir := b.dir
		b.Close()
		if clear {
			s, err := store.Open(dir, store.Options{})
			if err != nil {
				t.Fatal(err)
			}
			err = s.Update(func(tx *store.Txn) error {
				if _, err := tx.DeleteSearchRoom(room.String(), 1<<20); err != nil {
					return err
				}
				return tx.DeleteIndexProgress(room.String())
			})
			if cerr := s.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		b = newTestNode(t, testOpts{dir: dir, bootstrap: []*testNode{a}})
		c := b.client()
		c.SetCredentials(bob.UserID, bob.AccessToken)
		return c
	}
	t.Run("the index survives a restart", func(t *testing.T) {
		bob = restart(false)
		waitFound(t, ctx, bob, "archive", sent...)
	})
	t.Run("a lost index is rebuilt at the next start", func(t *testing.T) {
		bob = restart(true)
		waitFound(t, ctx, bob, "archive", sent...)
		testkit.WaitFor(t, 20*time.Second, "the room marked done", func() bool { return b.api.ReindexDone(room.String()) })
	})
}
