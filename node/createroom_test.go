package node

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/parley-p2p/parley/internal/testkit"
	"github.com/parley-p2p/parley/node/store"
)

// storedRooms counts the rooms a node's store holds.
func storedRooms(t *testing.T, n *testNode) int {
	t.Helper()
	var recs []*store.RoomRecord
	if err := n.store.View(func(tx *store.Txn) error {
		var err error
		recs, err = tx.Rooms()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return len(recs)
}

// TestCreateRoomIsAllOrNothing: a createRoom that fails part-way, once
// because an initial state event is refused by the auth rules (a second
// someone else's join) and once because the write of its name fails, leaves no
// room: not in /sync, not in the store, not in memory. The next
// createRoom works.
func TestCreateRoomIsAllOrNothing(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	disk := &faultyDisk{marker: "unwritable name"}
	a := newTestNode(t, testOpts{failWrite: disk.fail})
	alice := a.register(ctx, "alice")

	noRoomLeft := func(t *testing.T) {
		t.Helper()
		resp, err := alice.SyncRequest(ctx, 0, "", "", true, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Rooms.Join) != 0 || len(resp.Rooms.Invite) != 0 {
			t.Errorf("/sync shows %d joined and %d invited rooms after the failed createRoom, want none", len(resp.Rooms.Join), len(resp.Rooms.Invite))
		}
		if got := storedRooms(t, a); got != 0 {
			t.Errorf("the store holds %d rooms, want none", got)
		}
		inMemory := a.dag.RoomCount()
		if inMemory != 0 {
			t.Errorf("%d rooms in memory, want none", inMemory)
		}
	}

	t.Run("an initial state event the auth rules refuse", func(t *testing.T) {
		mallory := "@mallory:" + a.ServerName()
		_, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Name: "half made",
			InitialState: []*event.Event{{Type: event.StateMember, StateKey: &mallory, Content: event.Content{Raw: map[string]any{"membership": "join"}}}}})
		var herr mautrix.HTTPError
		if !errors.As(err, &herr) || herr.Response == nil || herr.Response.StatusCode != 403 {
			t.Fatalf("createRoom joining someone else in its initial state: %v, want 403", err)
		}
		noRoomLeft(t)
	})
	t.Run("a write that fails", func(t *testing.T) {
		_, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Name: "unwritable name"})
		var herr mautrix.HTTPError
		if !errors.As(err, &herr) || herr.Response == nil || herr.Response.StatusCode < 500 {
			t.Fatalf("createRoom whose name cannot be written: %v, want a 5xx", err)
		}
		if len(disk.failedIDs()) == 0 {
			t.Fatal("the fault hook failed no write")
		}
		noRoomLeft(t)
	})
	t.Run("the next createRoom works", func(t *testing.T) {
		room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Name: "whole"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := alice.SendText(ctx, room.RoomID, "hello"); err != nil {
			t.Fatal(err)
		}
	})
}

// TestConcurrentCreateRoomsAreDistinct: 20 createRooms by one user at
// once, with identical requests, make 20 different rooms, each whole.
func TestConcurrentCreateRoomsAreDistinct(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a := newTestNode(t, testOpts{})
	alice := a.register(ctx, "alice")
	const n = 20
	ids := make([]id.RoomID, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			resp, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat"})
			if err == nil {
				ids[i] = resp.RoomID
			}
			errs[i] = err
		}()
	}
	close(start)
	wg.Wait()
	seen := map[id.RoomID]bool{}
	for i, err := range errs {
		if err != nil {
			t.Errorf("createRoom %d: %v", i, err)
			continue
		}
		if seen[ids[i]] {
			t.Errorf("room %s was returned twice", ids[i])
		}
		seen[ids[i]] = true
	}
	joined, err := alice.JoinedRooms(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(joined.JoinedRooms) != n || len(seen) != n {
		t.Errorf("%d distinct rooms returned, alice is in %d, want %d", len(seen), len(joined.JoinedRooms), n)
	}
	for r := range seen {
		var pl json.RawMessage
		if err := alice.StateEvent(ctx, r, event.StatePowerLevels, "", &pl); err != nil {
			t.Errorf("room %s has no power levels: %v", r, err)
		}
	}
}

// TestCreateRoomTopicIsRich: createRoom's topic is set with the rich
// topic block of spec v1.15 (m.topic, a text/plain representation)
// beside the plain topic, and a member on another node reads both.
func TestCreateRoomTopicIsRich(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, _, alice, bob := twoNodes(t, ctx, testOpts{}, testOpts{})
	resp, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Topic: "plans for sunday"})
	if err != nil {
		t.Fatal(err)
	}
	joinThrough(t, ctx, resp.RoomID, alice, bob)
	type topic struct {
		Topic string `json:"topic"`
		Rich  struct {
			Text []struct {
				MimeType string `json:"mimetype"`
				Body     string `json:"body"`
			} `json:"m.text"`
		} `json:"m.topic"`
	}
	for name, c := range map[string]*mautrix.Client{"alice": alice, "bob": bob} {
		var got topic
		testkit.WaitFor(t, 20*time.Second, name+" to read the topic", func() bool {
			got = topic{}
			return c.StateEvent(ctx, resp.RoomID, event.StateTopic, "", &got) == nil && got.Topic != ""
		})
		if got.Topic != "plans for sunday" || len(got.Rich.Text) != 1 ||
			got.Rich.Text[0].MimeType != "text/plain" || got.Rich.Text[0].Body != "plans for sunday" {
			t.Errorf("%s reads the topic as %+v", name, got)
		}
	}
}

// TestADirectChatsInvitesSayIsDirect: createRoom with is_direct marks
// each invite it sends (to a user of this node and of another) with
// is_direct, so the invitee's client can file the room as a direct chat.
func TestADirectChatsInvitesSayIsDirect(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, _, alice, bob := twoNodes(t, ctx, testOpts{regToken: "direct"}, testOpts{})
	carol := a.register(ctx, "carol")
	for _, invitee := range []*mautrix.Client{bob, carol} {
		resp, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "trusted_private_chat", IsDirect: true, Invite: []id.UserID{invitee.UserID}})
		if err != nil {
			t.Fatal(err)
		}
		s := &testkit.Syncer{Client: invitee}
		s.Until(t, 30*time.Second, string(invitee.UserID)+"'s invite, marked direct", func(r *mautrix.RespSync) bool {
			inv, ok := r.Rooms.Invite[resp.RoomID]
			if !ok {
				return false
			}
			for _, ev := range inv.State.Events {
				if ev.Type == event.StateMember && ev.GetStateKey() == invitee.UserID.String() {
					direct, _ := ev.Content.Raw["is_direct"].(bool)
					return direct
				}
			}
			return false
		})
	}
}
