package node

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	"maunium.net/go/mautrix/pushrules"
)

// TestCountsAreKeptWhenEventsAreStored: a user's push rules are
// evaluated when an event is stored, not at /sync. An initial sync
// counts every room at once; a change of the rules applies to the events
// stored after it; rooms the user left stop counting; and after a
// restart the counts are the same, with no evaluation at all.
func TestCountsAreKeptWhenEventsAreStored(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	a := newTestNode(t, testOpts{regToken: "let-me-in", dir: dir})
	alice := a.register(ctx, "alice")
	bob := a.register(ctx, "bob")
	const nRooms = 4
	var rooms []id.RoomID
	firsts := map[id.RoomID]id.EventID{}
	for range nRooms {
		room := privateRoom(t, ctx, bob)
		if _, err := bob.InviteUser(ctx, room, &mautrix.ReqInviteUser{UserID: alice.UserID}); err != nil {
			t.Fatal(err)
		}
		if _, err := alice.JoinRoomByID(ctx, room); err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			ev := send(t, ctx, bob, room, map[string]any{"msgtype": "m.text", "body": fmt.Sprint("unread ", i)})
			if i == 0 {
				firsts[room] = ev
			}
		}
		rooms = append(rooms, room)
	}
	counts := func(c *mautrix.Client) map[id.RoomID]int {
		t.Helper()
		resp, err := c.SyncRequest(ctx, 0, "", "", false, "")
		if err != nil {
			t.Fatal(err)
		}
		out := map[id.RoomID]int{}
		for room, jr := range resp.Rooms.Join {
			if jr.UnreadNotifications == nil {
				t.Fatalf("room %s has no unread_notifications", room)
			}
			out[room] = jr.UnreadNotifications.NotificationCount
		}
		return out
	}
	want := func(c *mautrix.Client, want map[id.RoomID]int) {
		t.Helper()
		got := counts(c)
		if len(got) != len(want) {
			t.Fatalf("counts of %d rooms (%v), want %d (%v)", len(got), got, len(want), want)
		}
		for room, n := range want {
			if got[room] != n {
				t.Errorf("room %s: %d notifications, want %d", room, got[room], n)
			}
		}
	}
	all := map[id.RoomID]int{}
	for _, room := range rooms {
		all[room] = 3
	}

	t.Run("an initial sync counts every room", func(t *testing.T) {
		want(alice, all)
	})
	t.Run("a change of the rules applies to the events stored after it", func(t *testing.T) {
		if err := alice.SetPushRuleEnabled(ctx, "global", pushrules.OverrideRule, ".m.rule.master", true); err != nil {
			t.Fatal(err)
		}
		send(t, ctx, bob, rooms[0], map[string]any{"msgtype": "m.text", "body": "after the master rule"})
		want(alice, all)
		if err := alice.SetPushRuleEnabled(ctx, "global", pushrules.OverrideRule, ".m.rule.master", false); err != nil {
			t.Fatal(err)
		}
		send(t, ctx, bob, rooms[0], map[string]any{"msgtype": "m.text", "body": "after the master rule is off"})
		all[rooms[0]] = 4
		want(alice, all)
	})
	t.Run("a room the user left stops counting, and counts from the join again", func(t *testing.T) {
		if err := alice.SendReceipt(ctx, rooms[1], firsts[rooms[1]], event.ReceiptTypeRead, nil); err != nil {
			t.Fatal(err)
		}
		all[rooms[1]] = 2
		want(alice, all)
		send(t, ctx, bob, rooms[1], map[string]any{"msgtype": "m.text", "body": "in a thread",
			"m.relates_to": map[string]any{"rel_type": "m.thread", "event_id": firsts[rooms[1]]}})
		if got := threadCounts(t, ctx, alice, rooms[1]); got[firsts[rooms[1]]] != 1 {
			t.Fatalf("thread counts %v, want 1 in the thread", got)
		}
		if _, err := alice.LeaveRoom(ctx, rooms[1]); err != nil {
			t.Fatal(err)
		}
		send(t, ctx, bob, rooms[1], map[string]any{"msgtype": "m.text", "body": "after alice left"})
		delete(all, rooms[1])
		want(alice, all)
		var page struct {
			Notifications []struct {
				RoomID string `json:"room_id"`
			} `json:"notifications"`
		}
		if _, err := alice.MakeRequest(ctx, http.MethodGet, alice.BuildClientURL("v3", "notifications"), nil, &page); err != nil {
			t.Fatal(err)
		}
		if len(page.Notifications) == 0 {
			t.Fatal("no notifications listed")
		}
		for _, n := range page.Notifications {
			if n.RoomID == rooms[1].String() {
				t.Fatalf("a notification of the room alice left: %+v", page.Notifications)
			}
		}
		// Back in: what came before the join (read or not, while in the
		// room before or away) no longer counts; what comes after does.
		joinThrough(t, ctx, rooms[1], bob, alice)
		all[rooms[1]] = 0
		want(alice, all)
		if got := threadCounts(t, ctx, alice, rooms[1]); len(got) != 0 {
			t.Fatalf("thread counts after the join again: %v, want none", got)
		}
		send(t, ctx, bob, rooms[1], map[string]any{"msgtype": "m.text", "body": "welcome back"})
		all[rooms[1]] = 1
		want(alice, all)
	})
	t.Run("counts survive a restart without evaluating the rules again", func(t *testing.T) {
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
		b := newTestNode(t, testOpts{dir: dir})
		c := b.client()
		c.SetCredentials(alice.UserID, alice.AccessToken)
		want(c, all)
		if n := b.api.PushEvaluations(); n != 0 {
			t.Fatalf("the restarted node evaluated push rules %d times, want 0", n)
		}
	})
}

// threadCounts are a room's unread_thread_notifications (notification
// counts per thread root, none listed at 0) in an initial sync that asks
// for them (mautrix does not read them: the JSON is read here).
func threadCounts(t *testing.T, ctx context.Context, c *mautrix.Client, room id.RoomID) map[id.EventID]int {
	t.Helper()
	f, err := c.CreateFilter(ctx, &mautrix.Filter{Room: &mautrix.RoomFilter{Timeline: &mautrix.FilterPart{UnreadThreadNotifications: true}}})
	if err != nil {
		t.Fatal(err)
	}
	var resp struct {
		Rooms struct {
			Join map[id.RoomID]struct {
				UnreadThreadNotifications map[id.EventID]*mautrix.UnreadNotificationCounts `json:"unread_thread_notifications"`
			} `json:"join"`
		} `json:"rooms"`
	}
	u := c.BuildURLWithQuery(mautrix.ClientURLPath{"v3", "sync"}, map[string]string{"filter": f.FilterID})
	if _, err := c.MakeRequest(ctx, http.MethodGet, u, nil, &resp); err != nil {
		t.Fatal(err)
	}
	out := map[id.EventID]int{}
	for root, n := range resp.Rooms.Join[room].UnreadThreadNotifications {
		if n != nil && n.NotificationCount > 0 {
			out[root] = n.NotificationCount
		}
	}
	return out
}
