package node

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/parley-p2p/parley/internal/testkit"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// TestThreeNodesChat is the walking skeleton end to end: three nodes on
// loopback, one user each, driven by mautrix-go. Alice creates a private
// room and invites Bob and Carol by user ID; they see the invite in /sync
// and join; each sends 10 messages; everyone receives all 30 through /sync
// and /messages, and every node agrees on the members.
func TestThreeNodesChat(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a := newTestNode(t, testOpts{})
	b := newTestNode(t, testOpts{bootstrap: []*testNode{a}})
	c := newTestNode(t, testOpts{bootstrap: []*testNode{a}})

	alice, bob, carol := a.register(ctx, "alice"), b.register(ctx, "bob"), c.register(ctx, "carol")
	room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Name: "Three devices", Topic: "walking skeleton"})
	if err != nil {
		t.Fatalf("createRoom: %v", err)
	}
	for _, u := range []*mautrix.Client{bob, carol} {
		if _, err := alice.InviteUser(ctx, room.RoomID, &mautrix.ReqInviteUser{UserID: u.UserID}); err != nil {
			t.Fatalf("invite %s: %v", u.UserID, err)
		}
	}

	syncers := map[id.UserID]*testkit.Syncer{}
	for _, u := range []*mautrix.Client{alice, bob, carol} {
		syncers[u.UserID] = testkit.NewSyncer(t, ctx, u)
	}
	for _, u := range []*mautrix.Client{bob, carol} {
		syncers[u.UserID].Until(t, 30*time.Second, string(u.UserID)+"'s invite", func(r *mautrix.RespSync) bool {
			_, ok := r.Rooms.Invite[room.RoomID]
			return ok
		})
		if _, err := u.JoinRoomByID(ctx, room.RoomID); err != nil {
			t.Fatalf("%s join: %v", u.UserID, err)
		}
	}
	want := fmt.Sprint(sortStrings([]string{alice.UserID.String(), bob.UserID.String(), carol.UserID.String()}))
	for _, u := range []*mautrix.Client{alice, bob, carol} {
		testkit.WaitFor(t, 30*time.Second, string(u.UserID)+" to see all three joined", func() bool {
			got, err := joinedSet(ctx, u, room.RoomID)
			return err == nil && got == want
		})
	}

	// Bring every sync stream up to now, so the messages below arrive as
	// increments rather than as one limited initial timeline.
	for _, s := range syncers {
		if _, err := s.Next(ctx, 0); err != nil {
			t.Fatal(err)
		}
	}

	// Everyone sends 10 messages at once.
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for _, u := range []*mautrix.Client{alice, bob, carol} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 10 {
				if _, err := u.SendText(ctx, room.RoomID, fmt.Sprintf("%s #%d", u.UserID.Localpart(), i)); err != nil {
					errs <- fmt.Errorf("%s send: %w", u.UserID, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	expected := map[string]bool{}
	for _, u := range []*mautrix.Client{alice, bob, carol} {
		for i := range 10 {
			expected[fmt.Sprintf("%s #%d", u.UserID.Localpart(), i)] = true
		}
	}
	for _, u := range []*mautrix.Client{alice, bob, carol} {
		got := map[string]bool{}
		syncers[u.UserID].Until(t, 30*time.Second, string(u.UserID)+" to receive all 30 messages", func(r *mautrix.RespSync) bool {
			if jr, ok := r.Rooms.Join[room.RoomID]; ok {
				for _, ev := range jr.Timeline.Events {
					if ev.Type == event.EventMessage {
						ev.Content.ParseRaw(ev.Type)
						got[ev.Content.AsMessage().Body] = true
					}
				}
			}
			return len(got) == len(expected)
		})
		for body := range got {
			if !expected[body] {
				t.Errorf("%s received unexpected message %q", u.UserID, body)
			}
		}

		// And through /messages, paging back.
		paged := map[string]bool{}
		from := ""
		for range 20 {
			resp, err := u.Messages(ctx, room.RoomID, from, "", mautrix.DirectionBackward, nil, 7)
			if err != nil {
				t.Fatalf("%s /messages: %v", u.UserID, err)
			}
			for _, ev := range resp.Chunk {
				if ev.Type == event.EventMessage {
					ev.Content.ParseRaw(ev.Type)
					paged[ev.Content.AsMessage().Body] = true
				}
			}
			if resp.End == "" {
				break
			}
			from = resp.End
		}
		if len(paged) != 30 {
			t.Errorf("%s read %d of 30 messages through /messages", u.UserID, len(paged))
		}
		got2, err := joinedSet(ctx, u, room.RoomID)
		if err != nil || got2 != want {
			t.Errorf("%s members = %s (%v), want %s", u.UserID, got2, err, want)
		}
	}
}
