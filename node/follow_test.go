package node

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/parley-p2p/parley/internal/testkit"
	"github.com/parley-p2p/parley/p2p"
)

// A node whose users all left a room (by leaving, being kicked or banned,
// or declining) leaves its topic and stops its worker; joining again
// restores chat. Bob's node B holds one room, so its worker count is the
// room's.
func TestLeavingARoomStopsFollowingIt(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	a, b, alice, bob := twoNodes(t, ctx, testOpts{}, testOpts{regToken: "family"})
	dave := b.registerWithToken(ctx, "dave", "family")
	created, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Name: "comings and goings"})
	if err != nil {
		t.Fatal(err)
	}
	room := created.RoomID
	bobSync, aliceSync, daveSync := testkit.NewSyncer(t, ctx, bob), testkit.NewSyncer(t, ctx, alice), testkit.NewSyncer(t, ctx, dave)
	for _, s := range []*testkit.Syncer{bobSync, aliceSync, daveSync} {
		if _, err := s.Next(ctx, 0); err != nil {
			t.Fatal(err)
		}
	}

	following := func(want bool) {
		t.Helper()
		what := "B to follow the room again"
		if !want {
			what = "B to stop following the room"
		}
		testkit.WaitFor(t, 30*time.Second, what, func() bool {
			subscribed := slices.Contains(a.Host().RoomPeers(string(room)), b.PeerID())
			workers := b.peers.RoomWorkers()
			return subscribed == want && (workers == 1) == want && (workers == 0) != want &&
				b.getRoom(string(room)).Followed() == want
		})
		// Only a node that left may publish junk here: a member's junk
		// would count against it in A's peer score (graylisted after
		// three), and A would stop sending it the room.
		if !want {
			err := b.Host().Publish(ctx, string(room), []byte("{}"))
			if !errors.Is(err, p2p.ErrNotJoined) {
				t.Fatalf("B publishing to a room it left: %v, want ErrNotJoined", err)
			}
		}
	}
	invite := func(c *mautrix.Client, s *testkit.Syncer) {
		t.Helper()
		if _, err := alice.InviteUser(ctx, room, &mautrix.ReqInviteUser{UserID: c.UserID}); err != nil {
			t.Fatalf("invite %s: %v", c.UserID, err)
		}
		s.Until(t, 30*time.Second, string(c.UserID)+"'s invite", func(r *mautrix.RespSync) bool {
			_, ok := r.Rooms.Invite[room]
			return ok
		})
	}
	join := func(c *mautrix.Client) {
		t.Helper()
		if _, err := c.JoinRoomByID(ctx, room); err != nil {
			t.Fatalf("%s joins: %v", c.UserID, err)
		}
	}
	chat := func(round string) {
		t.Helper()
		for _, m := range []struct {
			from *mautrix.Client
			to   *testkit.Syncer
		}{{alice, bobSync}, {bob, aliceSync}} {
			body := round + " from " + m.from.UserID.Localpart()
			if _, err := m.from.SendText(ctx, room, body); err != nil {
				t.Fatalf("%s sends: %v", m.from.UserID, err)
			}
			m.to.Until(t, 30*time.Second, "message "+body, hasBody(room, body))
		}
	}

	invite(bob, bobSync)
	join(bob)
	following(true)
	chat("first")

	if _, err := bob.LeaveRoom(ctx, room); err != nil {
		t.Fatal(err)
	}
	following(false)
	// The leave was published before B left the topic: A hears of it.
	testkit.WaitFor(t, 30*time.Second, "A to see Bob's leave", func() bool {
		return a.membership(a.getRoom(string(room)), bob.UserID.String()) == "leave"
	})

	invite(bob, bobSync)
	join(bob)
	following(true)
	chat("after leaving")

	if _, err := alice.KickUser(ctx, room, &mautrix.ReqKickUser{UserID: bob.UserID}); err != nil {
		t.Fatal(err)
	}
	following(false)

	invite(bob, bobSync)
	join(bob)
	following(true)
	chat("after the kick")

	// Dave, on B too, is invited: B keeps following when Bob leaves, and
	// stops once Dave declines.
	invite(dave, daveSync)
	if _, err := bob.LeaveRoom(ctx, room); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 30*time.Second, "A to see Bob leave", func() bool {
		got, err := joinedSet(ctx, alice, room)
		return err == nil && got == "["+alice.UserID.String()+"]"
	})
	if !b.getRoom(string(room)).Followed() || b.peers.RoomWorkers() != 1 {
		t.Fatalf("B stopped following the room while Dave is invited: followed %v, workers %d", b.getRoom(string(room)).Followed(), b.peers.RoomWorkers())
	}
	if _, err := dave.LeaveRoom(ctx, room); err != nil {
		t.Fatal(err)
	}
	following(false)

	invite(bob, bobSync)
	join(bob)
	following(true)
	chat("after declining")
	if _, err := alice.BanUser(ctx, room, &mautrix.ReqBanUser{UserID: bob.UserID}); err != nil {
		t.Fatal(err)
	}
	following(false)

	// After a restart B still does not follow the room, and still holds
	// its history.
	b.Close()
	b2 := newTestNode(t, testOpts{dir: b.dir, bootstrap: []*testNode{a}})
	if r := b2.getRoom(string(room)); r == nil || r.Followed() || b2.peers.RoomWorkers() != 0 {
		t.Fatalf("after a restart B holds the room: %v, follows it or runs %d workers", r != nil, b2.peers.RoomWorkers())
	}
}

// hasBody is a sync condition: a message with this body in the room.
func hasBody(room id.RoomID, body string) func(*mautrix.RespSync) bool {
	return func(r *mautrix.RespSync) bool {
		jr, ok := r.Rooms.Join[room]
		if !ok {
			return false
		}
		for _, ev := range jr.Timeline.Events {
			if ev.Type == event.EventMessage {
				ev.Content.ParseRaw(ev.Type)
				if ev.Content.AsMessage().Body == body {
					return true
				}
			}
		}
		return false
	}
}

// registerWithToken creates a further user on a node that has its owner.
func (tn *testNode) registerWithToken(ctx context.Context, name, token string) *mautrix.Client {
	tn.t.Helper()
	c := tn.client()
	res, err := c.MakeRequest(ctx, http.MethodPost, c.BuildClientURL("v3", "register"), map[string]any{
		"username": name, "password": "long enough password for " + name,
		"auth": map[string]string{"type": "m.login.registration_token", "token": token},
	}, nil)
	if err != nil {
		tn.t.Fatalf("register %s with a token: %v", name, err)
	}
	var r mautrix.RespRegister
	if err := json.Unmarshal(res, &r); err != nil {
		tn.t.Fatal(err)
	}
	c.SetCredentials(r.UserID, r.AccessToken)
	c.DeviceID = r.DeviceID
	return c
}

// A kick that reaches B through catch-up rather than gossip (B missed
// it) still makes B stop following the room.
func TestAKickLearnedThroughCatchUpStopsFollowing(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, b, alice, bob, room := twoMembers(t, ctx, testOpts{}, testOpts{reconnect: 200 * time.Millisecond})
	br := b.getRoom(string(room))
	testkit.WaitFor(t, 10*time.Second, "B to follow the room", br.Followed)

	// B misses the room's gossip from here on.
	if err := b.Host().LeaveRoom(string(room)); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.KickUser(ctx, room, &mautrix.ReqKickUser{UserID: bob.UserID}); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 30*time.Second, "B to learn of the kick and stop following", func() bool {
		return b.membership(br, bob.UserID.String()) == "leave" && !br.Followed() && b.peers.RoomWorkers() == 0
	})
}
