package node

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/parley-p2p/parley/internal/testkit"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// send has c send a message event with content to the room.
func sendContent(t testing.TB, ctx context.Context, c *mautrix.Client, room id.RoomID, typ event.Type, content map[string]any) id.EventID {
	t.Helper()
	resp, err := c.SendMessageEvent(ctx, room, typ, content)
	if err != nil {
		t.Fatalf("%s sends %s: %v", c.UserID, typ.Type, err)
	}
	return resp.EventID
}

// editOf is the content of an edit of original to body.
func editOf(original id.EventID, body string) map[string]any {
	return map[string]any{
		"msgtype": "m.text", "body": "* " + body,
		"m.new_content": map[string]any{"msgtype": "m.text", "body": body},
		"m.relates_to":  map[string]any{"rel_type": "m.replace", "event_id": original},
	}
}

// threadReply is the content of a reply in the thread of root.
func threadReply(root id.EventID, body string) map[string]any {
	return map[string]any{
		"msgtype": "m.text", "body": body,
		"m.relates_to": map[string]any{"rel_type": "m.thread", "event_id": root},
	}
}

// reaction is the content of a reaction with key to target.
func reaction(target id.EventID, key string) map[string]any {
	return map[string]any{"m.relates_to": map[string]any{"rel_type": "m.annotation", "event_id": target, "key": key}}
}

// relationIDs lists a parent's children of relType as c gets them, all
// pages of limit followed.
func relationIDs(t testing.TB, ctx context.Context, c *mautrix.Client, room id.RoomID, parent id.EventID, req mautrix.ReqGetRelations) ([]id.EventID, int, error) {
	var out []id.EventID
	pages := 0
	for range 100 {
		resp, err := c.GetRelations(ctx, room, parent, &req)
		if err != nil {
			return nil, pages, err
		}
		pages++
		for _, ev := range resp.Chunk {
			out = append(out, ev.ID)
		}
		if resp.NextBatch == "" {
			return out, pages, nil
		}
		req.From = resp.NextBatch
	}
	return out, pages, fmt.Errorf("more than 100 pages")
}

// latestEdit is the edit bundled into an event, "" if none.
func latestEdit(ev *event.Event) id.EventID {
	if e := ev.Unsigned.Relations.GetLatestEdit(); e != nil {
		return e.ID
	}
	return ""
}

// bodyOf is an m.room.message's body.
func bodyOf(ev *event.Event) string {
	b, _ := ev.Content.Raw["body"].(string)
	return b
}

// TestEditsAreBundledAndRedactionsUndoThem: two edits of alice's message
// on a, seen on b: /relations lists them and bob's edit of her message
// (an edit by another sender, never bundled); /event, /messages and
// /sync on b bundle the later of alice's edits, and leave the original's
// content as it was. Redacting the latest edit bundles the one before;
// redacting the original bundles none. Reactions page through
// /relations/{id}/m.annotation both ways.
func TestEditsAreBundledAndRedactionsUndoThem(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, _, alice, bob, room := twoMembers(t, ctx, testOpts{}, testOpts{})

	original := sendContent(t, ctx, alice, room, event.EventMessage, map[string]any{"msgtype": "m.text", "body": "helo"})
	first := sendContent(t, ctx, alice, room, event.EventMessage, editOf(original, "hello"))
	second := sendContent(t, ctx, alice, room, event.EventMessage, editOf(original, "hello!"))
	forged := sendContent(t, ctx, bob, room, event.EventMessage, editOf(original, "bob was here"))

	var edits []id.EventID
	testkit.WaitFor(t, 30*time.Second, "the three edits to reach b", func() bool {
		edits, _, _ = relationIDs(t, ctx, bob, room, original, mautrix.ReqGetRelations{RelationType: event.RelReplace})
		return len(edits) == 3
	})
	// In b's timeline order, newest first: alice's second after her
	// first; bob's, sent on b, may come before both.
	pos := map[id.EventID]int{}
	for i, e := range edits {
		pos[e] = i + 1
	}
	if pos[first] == 0 || pos[second] == 0 || pos[forged] == 0 || pos[second] > pos[first] {
		t.Errorf("edits listed %v, want %s, %s (in that order) and %s", edits, second, first, forged)
	}
	// The later by origin_server_ts, then by event ID.
	latest := func(ids ...id.EventID) id.EventID {
		var best *event.Event
		for _, e := range ids {
			ev, err := bob.GetEvent(ctx, room, e)
			if err != nil {
				t.Fatal(err)
			}
			if best == nil || ev.Timestamp > best.Timestamp || (ev.Timestamp == best.Timestamp && ev.ID > best.ID) {
				best = ev
			}
		}
		return best.ID
	}
	want := latest(first, second)

	t.Run("event, messages and sync bundle alice's latest edit", func(t *testing.T) {
		ev, err := bob.GetEvent(ctx, room, original)
		if err != nil {
			t.Fatal(err)
		}
		if got := latestEdit(ev); got != want {
			t.Errorf("/event bundles %q, want %q", got, want)
		}
		if body := bodyOf(ev); body != "helo" {
			t.Errorf("the original's body is %q: the server rewrote it", body)
		}
		if e := ev.Unsigned.Relations.GetLatestEdit(); e != nil && e.Content.Raw["m.new_content"] == nil {
			t.Errorf("the bundled edit lacks its m.new_content: %v", e.Content.Raw)
		}
		msgs, err := bob.Messages(ctx, room, "", "", mautrix.DirectionBackward, nil, 20)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, m := range msgs.Chunk {
			if m.ID == original {
				found = true
				if got := latestEdit(m); got != want {
					t.Errorf("/messages bundles %q, want %q", got, want)
				}
			}
		}
		if !found {
			t.Error("the original is not in /messages")
		}
		resp, err := bob.FullSyncRequest(ctx, mautrix.ReqSync{})
		if err != nil {
			t.Fatal(err)
		}
		found = false
		for _, m := range resp.Rooms.Join[room].Timeline.Events {
			if m.ID == original {
				found = true
				if got := latestEdit(m); got != want {
					t.Errorf("/sync bundles %q, want %q", got, want)
				}
			}
		}
		if !found {
			t.Error("the original is not in bob's initial /sync")
		}
	})

	t.Run("reactions page both ways", func(t *testing.T) {
		var sent []id.EventID
		for i := range 25 {
			sent = append(sent, sendContent(t, ctx, alice, room, event.EventReaction, reaction(original, fmt.Sprintf("r%02d", i))))
		}
		var got []id.EventID
		var pages int
		testkit.WaitFor(t, 30*time.Second, "25 reactions on b", func() bool {
			var err error
			got, pages, err = relationIDs(t, ctx, bob, room, original, mautrix.ReqGetRelations{RelationType: event.RelAnnotation, Limit: 10})
			return err == nil && len(got) == 25
		})
		if pages != 3 {
			t.Errorf("25 reactions in %d pages of 10, want 3", pages)
		}
		for i := range got {
			if got[i] != sent[len(sent)-1-i] {
				t.Fatalf("reactions backwards %v, want the reverse of %v", got, sent)
			}
		}
		fwd, _, err := relationIDs(t, ctx, bob, room, original, mautrix.ReqGetRelations{RelationType: event.RelAnnotation, Dir: mautrix.DirectionForward, Limit: 7})
		if err != nil || fmt.Sprint(fwd) != fmt.Sprint(sent) {
			t.Errorf("reactions forwards %v (%v), want %v", fwd, err, sent)
		}
		typed, _, err := relationIDs(t, ctx, bob, room, original, mautrix.ReqGetRelations{RelationType: event.RelAnnotation, EventType: event.EventMessage})
		if err != nil || len(typed) != 0 {
			t.Errorf("reactions of type m.room.message: %v (%v), want none", typed, err)
		}
		all, _, err := relationIDs(t, ctx, bob, room, original, mautrix.ReqGetRelations{})
		if err != nil || len(all) != 28 {
			t.Errorf("all relations: %d (%v), want 28", len(all), err)
		}
	})

	t.Run("redacting the latest edit bundles the one before", func(t *testing.T) {
		other := first
		if want == first {
			other = second
		}
		if _, err := alice.RedactEvent(ctx, room, want); err != nil {
			t.Fatal(err)
		}
		testkit.WaitFor(t, 30*time.Second, "b to bundle the edit before", func() bool {
			ev, err := bob.GetEvent(ctx, room, original)
			return err == nil && latestEdit(ev) == other
		})
		edits, _, err := relationIDs(t, ctx, bob, room, original, mautrix.ReqGetRelations{RelationType: event.RelReplace})
		if err != nil || len(edits) != 2 {
			t.Errorf("edits after the redaction: %v (%v), want two", edits, err)
		}
	})

	t.Run("redacting the original hides its edits", func(t *testing.T) {
		if _, err := alice.RedactEvent(ctx, room, original); err != nil {
			t.Fatal(err)
		}
		testkit.WaitFor(t, 30*time.Second, "b to hide the edits", func() bool {
			ev, err := bob.GetEvent(ctx, room, original)
			return err == nil && ev.Unsigned.RedactedBecause != nil && latestEdit(ev) == ""
		})
	})
}

// threadsPage is GET /threads as c asks for it.
type threadsPage struct {
	Chunk     []*event.Event `json:"chunk"`
	NextBatch string         `json:"next_batch"`
}

func getThreads(ctx context.Context, c *mautrix.Client, room id.RoomID, query map[string]string) (*threadsPage, error) {
	var resp threadsPage
	_, err := c.MakeRequest(ctx, "GET", c.BuildURLWithQuery(mautrix.ClientURLPath{"v1", "rooms", room, "threads"}, query), nil, &resp)
	return &resp, err
}

// rootIDs are the IDs of a page of thread roots.
func rootIDs(p *threadsPage) []id.EventID {
	var out []id.EventID
	for _, ev := range p.Chunk {
		out = append(out, ev.ID)
	}
	return out
}

// TestThreadsAcrossThreeNodes: replies in two threads from three nodes
// are counted on each, with the latest reply and whether each user took
// part; /threads lists them by latest activity, and include=participated
// keeps a user's own; recurse follows a thread reply's own relations.
func TestThreadsAcrossThreeNodes(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, cs, room := threeNodeRoom(t, ctx)
	alice, bob, carol := cs[0], cs[1], cs[2]

	older := sendContent(t, ctx, alice, room, event.EventMessage, map[string]any{"msgtype": "m.text", "body": "first topic"})
	newer := sendContent(t, ctx, bob, room, event.EventMessage, map[string]any{"msgtype": "m.text", "body": "second topic"})
	r1 := sendContent(t, ctx, bob, room, event.EventMessage, threadReply(older, "bob on the first"))
	r2 := sendContent(t, ctx, carol, room, event.EventMessage, threadReply(newer, "carol on the second"))
	// Each wait keeps the next reply after the last one everywhere, so
	// that every node has the same latest.
	waitThread := func(root, latest id.EventID, count int) {
		t.Helper()
		for _, c := range cs {
			testkit.WaitFor(t, 30*time.Second, fmt.Sprintf("%s to see %d replies to %s", c.UserID, count, root), func() bool {
				ev, err := c.GetEvent(ctx, room, root)
				if err != nil {
					return false
				}
				th := ev.Unsigned.Relations.GetThread()
				return th != nil && th.Count == count && th.LatestEvent != nil && th.LatestEvent.ID == latest
			})
		}
	}
	waitThread(older, r1, 1)
	waitThread(newer, r2, 1)
	r3 := sendContent(t, ctx, carol, room, event.EventMessage, threadReply(older, "carol on the first"))
	waitThread(older, r3, 2)
	reactToReply := sendContent(t, ctx, alice, room, event.EventReaction, reaction(r3, "👍"))

	t.Run("participation is per user", func(t *testing.T) {
		for _, tc := range []struct {
			c    *mautrix.Client
			root id.EventID
			want bool
		}{
			{alice, older, true}, // she sent the root
			{bob, older, true},
			{carol, older, true},
			{alice, newer, false},
			{bob, newer, true}, // he sent the root
			{carol, newer, true},
		} {
			ev, err := tc.c.GetEvent(ctx, room, tc.root)
			if err != nil {
				t.Fatal(err)
			}
			if got := ev.Unsigned.Relations.GetThread().CurrentUserParticipated; got != tc.want {
				t.Errorf("%s participated in the thread of %s: %v, want %v", tc.c.UserID, tc.root, got, tc.want)
			}
		}
	})

	t.Run("threads by latest activity", func(t *testing.T) {
		for _, c := range cs {
			p, err := getThreads(ctx, c, room, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := rootIDs(p), []id.EventID{older, newer}; fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("%s's threads %v, want %v", c.UserID, got, want)
			}
			if len(p.Chunk) > 0 && p.Chunk[0].Unsigned.Relations.GetThread().Count != 2 {
				t.Errorf("%s's first thread root bundles no count of 2", c.UserID)
			}
		}
		p, err := getThreads(ctx, alice, room, map[string]string{"include": "participated"})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := rootIDs(p), []id.EventID{older}; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("alice's participated threads %v, want %v", got, want)
		}
		first, err := getThreads(ctx, bob, room, map[string]string{"limit": "1"})
		if err != nil || len(first.Chunk) != 1 || first.NextBatch == "" {
			t.Fatalf("a page of one thread: %+v (%v), want one and a next_batch", first, err)
		}
		second, err := getThreads(ctx, bob, room, map[string]string{"limit": "1", "from": first.NextBatch})
		if err != nil || fmt.Sprint(rootIDs(second)) != fmt.Sprint([]id.EventID{newer}) {
			t.Errorf("the second page: %v (%v), want %v", rootIDs(second), err, newer)
		}
	})

	t.Run("recurse follows a reply's relations", func(t *testing.T) {
		var resp *mautrix.RespGetRelations
		testkit.WaitFor(t, 30*time.Second, "the reaction to reach bob", func() bool {
			var err error
			resp, err = bob.GetRelations(ctx, room, older, &mautrix.ReqGetRelations{Recurse: true})
			return err == nil && len(resp.Chunk) == 3
		})
		if resp.RecursionDepth != 2 {
			t.Errorf("recursion_depth %d, want 2", resp.RecursionDepth)
		}
		if resp.Chunk[0].ID != reactToReply {
			t.Errorf("the newest of the recursion is %s, want the reaction %s", resp.Chunk[0].ID, reactToReply)
		}
		flat, err := bob.GetRelations(ctx, room, older, &mautrix.ReqGetRelations{})
		if err != nil || len(flat.Chunk) != 2 {
			t.Errorf("without recurse: %d (%v), want the two replies", len(flat.Chunk), err)
		}
	})
}

// TestAJoinersHistoryHasItsRelations: relations sent before bob's node
// joined reach it as backfilled history whose keys come after it (the
// relation is inside the ciphertext, read from the plain view once
// decrypted), the children often before their parent; bob's node lists
// and bundles them as a's does, and still does after a restart.
func TestAJoinersHistoryHasItsRelations(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bdir := t.TempDir()
	a, b, alice, bob := twoNodes(t, ctx, testOpts{}, testOpts{dir: bdir})
	room := privateRoom(t, ctx, alice)
	original := sendContent(t, ctx, alice, room, event.EventMessage, map[string]any{"msgtype": "m.text", "body": "before you came"})
	edit := sendContent(t, ctx, alice, room, event.EventMessage, editOf(original, "before you joined"))
	reply := sendContent(t, ctx, alice, room, event.EventMessage, threadReply(original, "a thread of old"))
	react := sendContent(t, ctx, alice, room, event.EventReaction, reaction(original, "🎉"))
	for i := range 5 {
		sendContent(t, ctx, alice, room, event.EventMessage, map[string]any{"msgtype": "m.text", "body": fmt.Sprintf("filler %d", i)})
	}
	joinThrough(t, ctx, room, alice, bob)

	check := func(c *mautrix.Client, what string) {
		t.Helper()
		testkit.WaitFor(t, 60*time.Second, what, func() bool {
			if _, waiting := readTimeline(t, ctx, c, room); waiting > 0 {
				return false // history still to fetch or to decrypt
			}
			ev, err := c.GetEvent(ctx, room, original)
			if err != nil {
				return false
			}
			th := ev.Unsigned.Relations.GetThread()
			return latestEdit(ev) == edit && th != nil && th.Count == 1 && th.LatestEvent.ID == reply
		})
		got, _, err := relationIDs(t, ctx, c, room, original, mautrix.ReqGetRelations{})
		if want := []id.EventID{react, reply, edit}; err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: relations %v (%v), want %v", what, got, err, want)
		}
		p, err := getThreads(ctx, c, room, nil)
		if err != nil || fmt.Sprint(rootIDs(p)) != fmt.Sprint([]id.EventID{original}) {
			t.Errorf("%s: threads %v (%v), want %v", what, rootIDs(p), err, original)
		}
	}
	check(bob, "bob's node to bundle the history's edit and thread")

	// Restarted, bob's node has them still.
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = newTestNode(t, testOpts{dir: bdir, bootstrap: []*testNode{a}})
	again := b.client()
	again.SetCredentials(bob.UserID, bob.AccessToken)
	check(again, "the relations to survive a restart of bob's node")
}

// TestRelationsRefuseWhatTheUserMayNotSee: /relations answers 404 for an
// event that does not exist, one of another room and one in a room the
// user is not in, and leaves out the children a user who left may not
// see (though another user of the node, still there, sees them); a relation to an event of another room relates to nothing.
// /threads answers 403 to a user not in the room. Bad parameters are 400
// M_INVALID_PARAM.
func TestRelationsRefuseWhatTheUserMayNotSee(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, b, alice, bob, room := twoMembers(t, ctx, testOpts{}, testOpts{regToken: "relations-token"})
	// bobby keeps b in the room once bob has left it.
	bobby := b.register(ctx, "bobby")
	if _, err := alice.InviteUser(ctx, room, &mautrix.ReqInviteUser{UserID: bobby.UserID}); err != nil {
		t.Fatal(err)
	}
	// b holds the room already: the invite reaches bobby at once (it is
	// delivered to his node directly), the room's own copy of it with
	// gossip, and the join needs that.
	testkit.WaitFor(t, 30*time.Second, "the invite in b's room", func() bool {
		return b.membership(b.getRoom(room.String()), bobby.UserID.String()) == "invite"
	})
	if _, err := bobby.JoinRoomByID(ctx, room); err != nil {
		t.Fatal(err)
	}
	root := sendContent(t, ctx, alice, room, event.EventMessage, map[string]any{"msgtype": "m.text", "body": "root"})
	before := sendContent(t, ctx, alice, room, event.EventReaction, reaction(root, "1"))
	elsewhere := privateRoom(t, ctx, alice)
	sendContent(t, ctx, alice, elsewhere, event.EventReaction, reaction(root, "from another room"))
	testkit.WaitFor(t, 30*time.Second, "the reaction to reach bob", func() bool {
		got, _, err := relationIDs(t, ctx, bob, room, root, mautrix.ReqGetRelations{})
		return err == nil && len(got) == 1 && got[0] == before
	})
	if got, _, err := relationIDs(t, ctx, alice, room, root, mautrix.ReqGetRelations{}); err != nil || fmt.Sprint(got) != fmt.Sprint([]id.EventID{before}) {
		t.Errorf("alice's relations of the root: %v (%v), want only %s (not the other room's)", got, err, before)
	}

	t.Run("errors", func(t *testing.T) {
		raw := func(c *mautrix.Client, path mautrix.ClientURLPath, query map[string]string) error {
			_, err := c.MakeRequest(ctx, "GET", c.BuildURLWithQuery(path, query), nil, nil)
			return err
		}
		rel := mautrix.ClientURLPath{"v1", "rooms", room, "relations", root}
		threads := mautrix.ClientURLPath{"v1", "rooms", room, "threads"}
		for _, tc := range []struct {
			name   string
			c      *mautrix.Client
			path   mautrix.ClientURLPath
			query  map[string]string
			status int
			code   string
		}{
			{"an event that does not exist is not found", bob, mautrix.ClientURLPath{"v1", "rooms", room, "relations", "$nothing"}, nil, 404, "M_NOT_FOUND"},
			{"an event of another room is not found", alice, mautrix.ClientURLPath{"v1", "rooms", elsewhere, "relations", root}, nil, 404, "M_NOT_FOUND"},
			{"a room the user is not in is not found", bob, mautrix.ClientURLPath{"v1", "rooms", elsewhere, "relations", root}, nil, 404, "M_NOT_FOUND"},
			{"dir other than b or f", bob, rel, map[string]string{"dir": "up"}, 400, "M_INVALID_PARAM"},
			{"a limit of 0", bob, rel, map[string]string{"limit": "0"}, 400, "M_INVALID_PARAM"},
			{"a limit that is no number", bob, rel, map[string]string{"limit": "ten"}, 400, "M_INVALID_PARAM"},
			{"a from that is no token", bob, rel, map[string]string{"from": "yesterday"}, 400, "M_INVALID_PARAM"},
			{"a to that is no token", bob, rel, map[string]string{"to": "x1"}, 400, "M_INVALID_PARAM"},
			{"recurse other than true or false", bob, rel, map[string]string{"recurse": "deep"}, 400, "M_INVALID_PARAM"},
			{"threads of a room the user is not in", bob, mautrix.ClientURLPath{"v1", "rooms", elsewhere, "threads"}, nil, 403, "M_FORBIDDEN"},
			{"threads with include other than all or participated", bob, threads, map[string]string{"include": "mine"}, 400, "M_INVALID_PARAM"},
			{"threads with a from that is no token", bob, threads, map[string]string{"from": "yesterday"}, 400, "M_INVALID_PARAM"},
			{"threads with a negative limit", bob, threads, map[string]string{"limit": "-1"}, 400, "M_INVALID_PARAM"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				err := raw(tc.c, tc.path, tc.query)
				var he mautrix.HTTPError
				if !errors.As(err, &he) || he.Response == nil || he.Response.StatusCode != tc.status || he.RespError == nil || he.RespError.ErrCode != tc.code {
					t.Errorf("got %v, want %d %s", err, tc.status, tc.code)
				}
			})
		}
	})

	t.Run("a user who left sees no children after", func(t *testing.T) {
		if _, err := bob.LeaveRoom(ctx, room); err != nil {
			t.Fatal(err)
		}
		testkit.WaitFor(t, 30*time.Second, "bob's leave to reach alice", func() bool {
			m, err := alice.JoinedMembers(ctx, room)
			return err == nil && len(m.Joined) == 2
		})
		after := sendContent(t, ctx, alice, room, event.EventReaction, reaction(root, "2"))
		testkit.WaitFor(t, 30*time.Second, "bobby, on bob's node, to list both reactions", func() bool {
			got, _, err := relationIDs(t, ctx, bobby, room, root, mautrix.ReqGetRelations{})
			return err == nil && len(got) == 2 && got[0] == after
		})
		got, _, err := relationIDs(t, ctx, bob, room, root, mautrix.ReqGetRelations{})
		if err != nil || fmt.Sprint(got) != fmt.Sprint([]id.EventID{before}) {
			t.Errorf("bob, gone, lists %v (%v), want only %s", got, err, before)
		}
	})
}
