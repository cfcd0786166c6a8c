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

// matrixStatus is the HTTP status of a failed mautrix call; 0 if none.
func matrixStatus(err error) int {
	var he mautrix.HTTPError
	if errors.As(err, &he) && he.Response != nil {
		return he.Response.StatusCode
	}
	return 0
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
