package node

import (
	"context"
	"fmt"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// A space's hierarchy walks its m.space.child rooms depth first, in the
// spec's order, showing only rooms the user may see.
func TestSpaceHierarchy(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, alice, bob, carol := oneNode(t, ctx)
	create := func(c *mautrix.Client, name, preset string, space bool) id.RoomID {
		t.Helper()
		req := &mautrix.ReqCreateRoom{Name: name, Preset: preset}
		if space {
			req.CreationContent = map[string]any{"type": "m.space"}
		}
		resp, err := c.CreateRoom(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return resp.RoomID
	}
	via := []string{alice.UserID.Homeserver()}
	child := func(parent, child id.RoomID, content map[string]any) {
		t.Helper()
		if _, err := alice.SendStateEvent(ctx, parent, event.StateSpaceChild, child.String(), content); err != nil {
			t.Fatal(err)
		}
	}
	space := create(alice, "space", "private_chat", true)
	roomA := create(alice, "A", "private_chat", true)
	roomB := create(bob, "B", "public_chat", false)
	roomC := create(bob, "C", "private_chat", false)
	roomD := create(alice, "D", "private_chat", false)
	roomE := create(alice, "E", "private_chat", false)
	roomF := create(alice, "F", "private_chat", false)
	child(space, roomA, map[string]any{"via": via, "order": "b"})
	child(space, roomB, map[string]any{"via": via, "order": "a"})
	child(space, roomC, map[string]any{"via": via})
	child(space, roomD, map[string]any{"via": via, "suggested": true})
	child(space, roomF, map[string]any{}) // no via: not a child
	child(roomA, roomE, map[string]any{"via": via})
	child(roomA, space, map[string]any{"via": via}) // a cycle

	names := map[id.RoomID]string{space: "space", roomA: "A", roomB: "B", roomC: "C", roomD: "D", roomE: "E", roomF: "F"}
	walk := func(c *mautrix.Client, root id.RoomID, req *mautrix.ReqHierarchy) ([]string, *mautrix.RespHierarchy) {
		t.Helper()
		resp, err := c.Hierarchy(ctx, root, req)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range resp.Rooms {
			out = append(out, names[r.RoomID])
		}
		return out, resp
	}
	depth := func(n int) *int { return &n }

	got, resp := walk(alice, space, &mautrix.ReqHierarchy{})
	if fmt.Sprint(got) != "[space B A E D]" || resp.NextBatch != "" {
		t.Fatalf("walk %v (next %q), want [space B A E D]: ordered children first, C is bob's private room, F has no via", got, resp.NextBatch)
	}
	root := resp.Rooms[0]
	if root.RoomType != "m.space" || root.Name != "space" || root.NumJoinedMembers != 1 || len(root.ChildrenState) != 4 {
		t.Errorf("the root's entry: type %q name %q members %d children %d; want m.space, space, 1, 4", root.RoomType, root.Name, root.NumJoinedMembers, len(root.ChildrenState))
	}
	if b := resp.Rooms[1]; b.JoinRule != "public" {
		t.Errorf("B's join rule %q, want public", b.JoinRule)
	}

	for _, tc := range []struct {
		name string
		req  mautrix.ReqHierarchy
		want string
	}{
		{"max_depth 1 stays among the space's children", mautrix.ReqHierarchy{MaxDepth: depth(1)}, "[space B A D]"},
		{"max_depth 0 is the root alone", mautrix.ReqHierarchy{MaxDepth: depth(0)}, "[space]"},
		{"suggested_only keeps the suggested", mautrix.ReqHierarchy{SuggestedOnly: true}, "[space D]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, _ := walk(alice, space, &tc.req); fmt.Sprint(got) != tc.want {
				t.Fatalf("walk %v, want %s", got, tc.want)
			}
		})
	}
	t.Run("pages follow each other", func(t *testing.T) {
		var all []string
		req := &mautrix.ReqHierarchy{Limit: 2}
		for pages := 0; ; pages++ {
			got, resp := walk(alice, space, req)
			all = append(all, got...)
			if resp.NextBatch == "" {
				break
			}
			if pages > 5 {
				t.Fatal("no end to the pages")
			}
			req.From = resp.NextBatch
		}
		if fmt.Sprint(all) != "[space B A E D]" {
			t.Fatalf("pages give %v", all)
		}
	})
	t.Run("errors", func(t *testing.T) {
		_, resp := walk(alice, space, &mautrix.ReqHierarchy{Limit: 1})
		_, err := alice.Hierarchy(ctx, space, &mautrix.ReqHierarchy{From: resp.NextBatch, MaxDepth: depth(1)})
		wantHTTP(t, "max_depth changed between pages", err, 400, "M_INVALID_PARAM")
		_, err = alice.Hierarchy(ctx, space, &mautrix.ReqHierarchy{From: "nonsense"})
		wantHTTP(t, "an unknown from token", err, 400, "M_INVALID_PARAM")
		_, err = carol.Hierarchy(ctx, space, nil)
		wantHTTP(t, "a user who may not see the root", err, 403, "M_FORBIDDEN")
		_, err = alice.Hierarchy(ctx, "!nosuchroom:example.org", nil)
		wantHTTP(t, "a room the node does not hold", err, 403, "M_FORBIDDEN")
	})
	t.Run("a public room is seen by anyone", func(t *testing.T) {
		if got, _ := walk(carol, roomB, nil); fmt.Sprint(got) != "[B]" {
			t.Fatalf("carol's walk from B: %v", got)
		}
	})
}
