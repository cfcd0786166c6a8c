package node

import (
	"context"
	"net/http"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/parley-p2p/parley/internal/testkit"
)

// upgradeRoom asks c's node to upgrade room (mautrix-go has no call for
// it).
func upgradeRoom(ctx context.Context, c *mautrix.Client, room id.RoomID, body map[string]any) (id.RoomID, error) {
	var resp struct {
		ReplacementRoom id.RoomID `json:"replacement_room"`
	}
	_, err := c.MakeRequest(ctx, http.MethodPost, c.BuildClientURL("v3", "rooms", room, "upgrade"), body, &resp)
	return resp.ReplacementRoom, err
}

// TestRoomUpgrade: alice upgrades a version 11 room that bob, on another
// node, is in. Both see the tombstone; the new room (version 12) names
// its predecessor and has the name, topic, join rule, bans and alias of
// the old one; bob is invited and joins; in the old room bob may no longer
// talk. Each documented error in its place.
func TestRoomUpgrade(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a, b, alice, bob := twoNodes(t, ctx, testOpts{}, testOpts{})
	created, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{
		Preset: "private_chat", RoomVersion: "11", Name: "the old room", Topic: "before the upgrade", RoomAliasName: "upgraded",
	})
	if err != nil {
		t.Fatal(err)
	}
	old := created.RoomID
	alias := localAlias(a, "upgraded")
	mallory := id.UserID("@mallory:" + b.ServerName())
	if _, err := alice.BanUser(ctx, old, &mautrix.ReqBanUser{UserID: mallory, Reason: "spam"}); err != nil {
		t.Fatalf("ban mallory: %v", err)
	}
	joinThrough(t, ctx, old, alice, bob)
	testkit.WaitFor(t, 20*time.Second, "bob's join to reach a", func() bool {
		return a.membership(a.getRoom(old.String()), bob.UserID.String()) == "join"
	})

	t.Run("an unknown room version is 400 M_UNSUPPORTED_ROOM_VERSION", func(t *testing.T) {
		_, err := upgradeRoom(ctx, alice, old, map[string]any{"new_version": "9"})
		wantErr(t, "upgrade to version 9", err, http.StatusBadRequest, "M_UNSUPPORTED_ROOM_VERSION")
		_, err = upgradeRoom(ctx, alice, old, map[string]any{})
		wantErr(t, "upgrade without new_version", err, http.StatusBadRequest, "M_MISSING_PARAM")
	})
	t.Run("a member without the power to send a tombstone is 403", func(t *testing.T) {
		_, err := upgradeRoom(ctx, bob, old, map[string]any{"new_version": "12"})
		wantErr(t, "bob upgrades", err, http.StatusForbidden, "M_FORBIDDEN")
	})
	t.Run("a room unknown here is 404", func(t *testing.T) {
		_, err := upgradeRoom(ctx, alice, id.RoomID("!nowhere:"+a.ServerName()), map[string]any{"new_version": "12"})
		wantErr(t, "upgrade an unknown room", err, http.StatusNotFound, "M_NOT_FOUND")
	})

	repl, err := upgradeRoom(ctx, alice, old, map[string]any{"new_version": "12"})
	if err != nil {
		t.Fatalf("alice upgrades: %v", err)
	}
	if repl == "" || repl == old {
		t.Fatalf("replacement_room = %q", repl)
	}
	// A retry, or a second request, gets the same replacement, not a
	// third room.
	if again, err := upgradeRoom(ctx, alice, old, map[string]any{"new_version": "12"}); err != nil || again != repl {
		t.Fatalf("upgrading again: %q, %v; want the first replacement %q", again, err, repl)
	}

	for _, c := range []*mautrix.Client{alice, bob} {
		var tomb event.TombstoneEventContent
		testkit.WaitFor(t, 20*time.Second, string(c.UserID)+" to see the tombstone", func() bool {
			return c.StateEvent(ctx, old, event.StateTombstone, "", &tomb) == nil
		})
		if tomb.ReplacementRoom != repl || tomb.Body == "" {
			t.Errorf("%s sees the tombstone %+v, want replacement %s and a body", c.UserID, tomb, repl)
		}
	}

	var create event.CreateEventContent
	if err := alice.StateEvent(ctx, repl, event.StateCreate, "", &create); err != nil {
		t.Fatal(err)
	}
	if create.Predecessor == nil || create.Predecessor.RoomID != old || create.RoomVersion != "12" {
		t.Errorf("the new room's create content is %+v, want version 12 and predecessor %s", create, old)
	}
	copied := []struct {
		typ  event.Type
		key  string
		want map[string]any
	}{
		{event.StateRoomName, "", map[string]any{"name": "the old room"}},
		{event.StateTopic, "", map[string]any{"topic": "before the upgrade"}},
		{event.StateJoinRules, "", map[string]any{"join_rule": "invite"}},
		{event.StateMember, mallory.String(), map[string]any{"membership": "ban"}},
		{event.StateCanonicalAlias, "", map[string]any{"alias": alias.String()}},
	}
	for _, c := range copied {
		var got map[string]any
		if err := alice.StateEvent(ctx, repl, c.typ, c.key, &got); err != nil {
			t.Errorf("the new room has no %s %q: %v", c.typ.Type, c.key, err)
			continue
		}
		for k, v := range c.want {
			if got[k] != v {
				t.Errorf("the new room's %s: %s = %v, want %v", c.typ.Type, k, got[k], v)
			}
		}
	}
	if got, err := alice.ResolveAlias(ctx, alias); err != nil || got.RoomID != repl {
		t.Errorf("%s resolves to %+v (%v), want the new room %s", alias, got, err, repl)
	}
	var pl event.PowerLevelsEventContent
	if err := alice.StateEvent(ctx, repl, event.StatePowerLevels, "", &pl); err != nil {
		t.Fatal(err)
	}
	if _, listed := pl.Users[alice.UserID]; listed {
		t.Errorf("alice, a creator of the version 12 room, is listed in its power levels: %v", pl.Users)
	}

	s := &testkit.Syncer{Client: bob}
	s.Until(t, 30*time.Second, "bob's invite to the new room", func(r *mautrix.RespSync) bool {
		_, ok := r.Rooms.Invite[repl]
		return ok
	})
	if _, err := bob.JoinRoomByID(ctx, repl); err != nil {
		t.Fatalf("bob joins the new room: %v", err)
	}
	sent, err := bob.SendText(ctx, repl, "moved in")
	if err != nil {
		t.Fatalf("bob talks in the new room: %v", err)
	}
	testkit.WaitFor(t, 20*time.Second, "alice to see bob's message in the new room", func() bool {
		_, err := alice.GetEvent(ctx, repl, sent.EventID)
		return err == nil
	})

	t.Run("the old room refuses ordinary members' messages", func(t *testing.T) {
		testkit.WaitFor(t, 20*time.Second, "the old room's new power levels to reach bob", func() bool {
			var pl event.PowerLevelsEventContent
			return bob.StateEvent(ctx, old, event.StatePowerLevels, "", &pl) == nil && pl.EventsDefault >= 50
		})
		_, err := bob.SendText(ctx, old, "anyone here?")
		wantErr(t, "bob talks in the old room", err, http.StatusForbidden, "M_FORBIDDEN")
		if _, err := alice.SendText(ctx, old, "see you in the new room"); err != nil {
			t.Errorf("alice, an admin, talks in the old room: %v", err)
		}
	})
}

// TestRoomUpgradeToVersion10: an upgrade to version 10 names the
// upgrader as creator and the last event of the old room as the
// predecessor's event_id, and lifts the upgrader only as far as needed.
func TestRoomUpgradeToVersion10(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a := newTestNode(t, testOpts{})
	alice := a.register(ctx, "alice")
	old := privateRoom(t, ctx, alice)
	repl, err := upgradeRoom(ctx, alice, old, map[string]any{"new_version": "10"})
	if err != nil {
		t.Fatalf("upgrade to 10: %v", err)
	}
	var create struct {
		Creator     string `json:"creator"`
		RoomVersion string `json:"room_version"`
		Predecessor struct {
			RoomID  string `json:"room_id"`
			EventID string `json:"event_id"`
		} `json:"predecessor"`
	}
	if err := alice.StateEvent(ctx, repl, event.StateCreate, "", &create); err != nil {
		t.Fatal(err)
	}
	if create.Creator != alice.UserID.String() || create.RoomVersion != "10" || create.Predecessor.RoomID != old.String() || create.Predecessor.EventID == "" {
		t.Errorf("create content %+v, want creator %s, version 10, predecessor %s with an event ID", create, alice.UserID, old)
	}
	if _, err := alice.GetEvent(ctx, old, id.EventID(create.Predecessor.EventID)); err != nil {
		t.Errorf("the predecessor's event_id %s is not an event of the old room: %v", create.Predecessor.EventID, err)
	}
	var pl event.PowerLevelsEventContent
	if err := alice.StateEvent(ctx, repl, event.StatePowerLevels, "", &pl); err != nil {
		t.Fatal(err)
	}
	// Alice was a creator of the version 12 room: in version 10 she needs
	// a number, the highest the levels name.
	if got := pl.Users[alice.UserID]; got != 100 {
		t.Errorf("alice's level in the new room is %d, want 100", got)
	}
	if _, err := alice.SendText(ctx, repl, "hello, version 10"); err != nil {
		t.Errorf("alice talks in the new room: %v", err)
	}
}
