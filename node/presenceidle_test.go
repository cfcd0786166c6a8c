package node

import (
	"context"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"

	"github.com/parley-p2p/parley/internal/testkit"
)

// An online user with no activity for the idle time turns unavailable,
// in GET /presence and in the /sync of those who share a room with
// them, with last_active_ago kept and currently_active false; their
// next /sync makes them online again. A presence the user set stays.
func TestPresenceGoesIdle(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const idle = 3 * time.Second // long enough for a sync and a GET under load
	n := newTestNode(t, testOpts{regToken: "idle", presenceIdle: idle})
	alice, bob := n.register(ctx, "alice"), n.register(ctx, "bob")
	room := privateRoom(t, ctx, alice)
	joinThrough(t, ctx, room, alice, bob)

	first, err := bob.SyncRequest(ctx, 0, "", "", false, "")
	if err != nil {
		t.Fatal(err)
	}
	own, err := alice.SyncRequest(ctx, 0, "", "", false, "")
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := presenceIn(own, alice.UserID); !ok || c["presence"] != "online" {
		t.Fatalf("alice's presence right after her sync: %v, want online", c)
	}
	var p *mautrix.RespPresence
	testkit.WaitFor(t, 20*time.Second, "alice to go idle", func() bool {
		p, err = bob.GetPresence(ctx, alice.UserID)
		return err == nil && p.Presence == event.PresenceUnavailable
	})
	if p.CurrentlyActive || int64(p.LastActiveAgo) < idle.Milliseconds() {
		t.Fatalf("idle presence %+v: want currently_active false and last_active_ago at least %d", p, idle.Milliseconds())
	}
	next, err := bob.SyncRequest(ctx, 0, first.NextBatch, "", false, "")
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := presenceIn(next, alice.UserID); !ok || c["presence"] != "unavailable" || c["currently_active"] == true {
		t.Fatalf("bob's incremental sync: alice's presence %v, want unavailable and not currently active", c)
	}

	if _, err := alice.SyncRequest(ctx, 0, own.NextBatch, "", false, ""); err != nil {
		t.Fatal(err)
	}
	if p, err := alice.GetOwnPresence(ctx); err != nil || p.Presence != event.PresenceOnline {
		t.Fatalf("after alice's next sync: %+v, %v; want online", p, err)
	}

	t.Run("a presence the user set is not undone", func(t *testing.T) {
		if err := alice.SetPresence(ctx, mautrix.ReqPresence{Presence: event.PresenceUnavailable, StatusMsg: "away"}); err != nil {
			t.Fatal(err)
		}
		if _, err := alice.SyncRequest(ctx, 0, "", "", false, ""); err != nil {
			t.Fatal(err)
		}
		if p, err := alice.GetOwnPresence(ctx); err != nil || p.Presence != event.PresenceUnavailable || p.StatusMsg != "away" {
			t.Fatalf("after a sync: %+v, %v; want the unavailable alice set", p, err)
		}
	})
}
