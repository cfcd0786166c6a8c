package node

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// memberKeys are the users whose m.room.member events evs holds, sorted.
func memberKeys(evs []*event.Event) []string {
	var out []string
	for _, ev := range evs {
		if ev.Type == event.StateMember && ev.StateKey != nil {
			out = append(out, *ev.StateKey)
		}
	}
	slices.Sort(out)
	return out
}

func lazyFilter(t *testing.T, ctx context.Context, c *mautrix.Client, limit int, redundant bool) string {
	t.Helper()
	f, err := c.CreateFilter(ctx, &mautrix.Filter{Room: &mautrix.RoomFilter{
		State:    &mautrix.FilterPart{LazyLoadMembers: true, IncludeRedundantMembers: redundant},
		Timeline: &mautrix.FilterPart{Limit: limit},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return f.FilterID
}

func TestLazyLoadingMembers(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	n, alice, bob, carol := oneNode(t, ctx)
	dave := n.register(ctx, "dave")
	room := privateRoom(t, ctx, alice)
	if _, err := alice.SendStateEvent(ctx, room, event.StateRoomName, "", map[string]string{"name": "lazy"}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*mautrix.Client{bob, carol, dave} {
		joinThrough(t, ctx, room, alice, c)
	}
	sendText(t, ctx, bob, room, "b1")
	carolMsg := sendText(t, ctx, carol, room, "c1")
	sendText(t, ctx, alice, room, "a1")
	sendText(t, ctx, alice, room, "a2")
	lazy := lazyFilter(t, ctx, alice, 3, false)

	sync := func(since, filter string) *mautrix.RespSync {
		t.Helper()
		resp, err := alice.SyncRequest(ctx, 0, since, filter, false, "")
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	stateMembers := func(resp *mautrix.RespSync) string {
		t.Helper()
		jr := resp.Rooms.Join[room]
		if jr == nil {
			t.Fatalf("no section for the room in %+v", resp.Rooms)
		}
		return fmt.Sprint(memberKeys(jr.State.Events))
	}
	want := func(ids ...*mautrix.Client) string {
		var out []string
		for _, c := range ids {
			out = append(out, c.UserID.String())
		}
		slices.Sort(out)
		return fmt.Sprint(out)
	}

	first := sync("", lazy)
	if got := stateMembers(first); got != want(alice, carol) {
		t.Fatalf("initial lazy sync: state members %s, want %s (carol sent in the timeline, alice is the user)", got, want(alice, carol))
	}
	jr := first.Rooms.Join[room]
	var hasName bool
	for _, ev := range jr.State.Events {
		hasName = hasName || ev.Type == event.StateRoomName
	}
	if !hasName {
		t.Error("lazy-loading left out other state than members")
	}
	if s := jr.Summary; s.JoinedMemberCount == nil || *s.JoinedMemberCount != 4 || s.InvitedMemberCount == nil || *s.InvitedMemberCount != 0 {
		t.Errorf("summary counts %+v, want 4 joined and 0 invited", s)
	}
	if got := fmt.Sprint(jr.Summary.Heroes); got != fmt.Sprint([]id.UserID{bob.UserID, carol.UserID, dave.UserID}) {
		t.Errorf("heroes %s, want bob, carol, dave in the order they joined", got)
	}

	t.Run("a new sender's member event comes with their message", func(t *testing.T) {
		sendText(t, ctx, bob, room, "b2")
		next := sync(first.NextBatch, lazy)
		if got := stateMembers(next); got != want(bob) {
			t.Fatalf("state members %s, want bob's alone", got)
		}
		first = next
	})
	t.Run("a member event the device holds is not sent again", func(t *testing.T) {
		sendText(t, ctx, carol, room, "c2")
		next := sync(first.NextBatch, lazy)
		if got := stateMembers(next); got != "[]" {
			t.Fatalf("state members %s, want none: carol's was sent before", got)
		}
		first = next
	})
	t.Run("include_redundant_members sends it again", func(t *testing.T) {
		sendText(t, ctx, carol, room, "c3")
		next := sync(first.NextBatch, lazyFilter(t, ctx, alice, 3, true))
		if got := stateMembers(next); got != want(carol) {
			t.Fatalf("state members %s, want carol's", got)
		}
		first = next
	})
	t.Run("an answer the client never came back from is as if not sent", func(t *testing.T) {
		sendText(t, ctx, dave, room, "d1")
		lost := sync(first.NextBatch, lazy)
		if got := stateMembers(lost); got != want(dave) {
			t.Fatalf("state members %s, want dave's", got)
		}
		again := sync(first.NextBatch, lazy)
		if got := stateMembers(again); got != want(dave) {
			t.Fatalf("the same sync again: state members %s, want dave's again", got)
		}
		sendText(t, ctx, dave, room, "d2")
		if got := stateMembers(sync(again.NextBatch, lazy)); got != "[]" {
			t.Fatalf("after the client came back: state members %s, want none", got)
		}
	})
	t.Run("an initial sync starts the record anew", func(t *testing.T) {
		if got := stateMembers(sync("", lazy)); got != want(alice, carol, dave) {
			t.Fatalf("state members %s, want %s", got, want(alice, carol, dave))
		}
	})
	t.Run("without lazy-loading every member is sent", func(t *testing.T) {
		f, err := alice.CreateFilter(ctx, &mautrix.Filter{Room: &mautrix.RoomFilter{Timeline: &mautrix.FilterPart{Limit: 3}}})
		if err != nil {
			t.Fatal(err)
		}
		if got := stateMembers(sync("", f.FilterID)); got != want(alice, bob, carol, dave) {
			t.Fatalf("state members %s, want all four", got)
		}
	})
	t.Run("messages carries the senders' member events", func(t *testing.T) {
		back, err := alice.Messages(ctx, room, first.Rooms.Join[room].Timeline.PrevBatch, "", mautrix.DirectionBackward, &mautrix.FilterPart{LazyLoadMembers: true}, 3)
		if err != nil {
			t.Fatal(err)
		}
		var senders []string
		for _, ev := range back.Chunk {
			if !slices.Contains(senders, ev.Sender.String()) {
				senders = append(senders, ev.Sender.String())
			}
		}
		slices.Sort(senders)
		if got := fmt.Sprint(memberKeys(back.State)); got != fmt.Sprint(senders) || len(senders) == 0 {
			t.Fatalf("state members %s, want the chunk's senders %s", got, senders)
		}
		plain, err := alice.Messages(ctx, room, first.Rooms.Join[room].Timeline.PrevBatch, "", mautrix.DirectionBackward, nil, 3)
		if err != nil || len(plain.State) != 0 {
			t.Fatalf("without lazy-loading: state %v, %v; want none", plain.State, err)
		}
	})
	t.Run("context carries the senders' member events", func(t *testing.T) {
		// limit 1: carol's message and alice's after it.
		resp, err := alice.Context(ctx, room, carolMsg, &mautrix.FilterPart{LazyLoadMembers: true}, 1)
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(memberKeys(resp.State)); got != want(alice, carol) || len(resp.EventsAfter) != 1 {
			t.Fatalf("state members %s around %d events after, want alice's and carol's", got, len(resp.EventsAfter))
		}
		var hasCreate bool
		for _, ev := range resp.State {
			hasCreate = hasCreate || ev.Type == event.StateCreate
		}
		if !hasCreate {
			t.Error("no m.room.create in the state")
		}
		full, err := alice.Context(ctx, room, carolMsg, nil, 1)
		if err != nil || len(memberKeys(full.State)) != 4 {
			t.Fatalf("without lazy-loading: members %v, %v; want all four", memberKeys(full.State), err)
		}
	})
}

func TestLazyLoadingHeroes(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, alice, bob, carol := oneNode(t, ctx)
	room := privateRoom(t, ctx, alice)
	joinThrough(t, ctx, room, alice, bob)
	if _, err := alice.InviteUser(ctx, room, &mautrix.ReqInviteUser{UserID: carol.UserID}); err != nil {
		t.Fatal(err)
	}
	sendText(t, ctx, alice, room, "only alice speaks")
	lazy := lazyFilter(t, ctx, alice, 1, false)
	resp, err := alice.SyncRequest(ctx, 0, "", lazy, false, "")
	if err != nil {
		t.Fatal(err)
	}
	jr := resp.Rooms.Join[room]
	// An unnamed room is named after its heroes: their member events
	// come along, though they sent nothing in the timeline.
	if got, want := fmt.Sprint(memberKeys(jr.State.Events)), fmt.Sprint([]id.UserID{alice.UserID, bob.UserID, carol.UserID}); got != want {
		t.Errorf("state members %s, want %s", got, want)
	}
	if s := jr.Summary; *s.JoinedMemberCount != 2 || *s.InvitedMemberCount != 1 || fmt.Sprint(s.Heroes) != fmt.Sprint([]id.UserID{bob.UserID, carol.UserID}) {
		t.Errorf("summary %v %v %v, want 2 joined, 1 invited, heroes bob and carol", *s.JoinedMemberCount, *s.InvitedMemberCount, s.Heroes)
	}

	t.Run("with nobody else left, the heroes are those who left", func(t *testing.T) {
		if _, err := bob.LeaveRoom(ctx, room); err != nil {
			t.Fatal(err)
		}
		if _, err := alice.KickUser(ctx, room, &mautrix.ReqKickUser{UserID: carol.UserID}); err != nil {
			t.Fatal(err)
		}
		resp, err := alice.SyncRequest(ctx, 0, "", lazy, false, "")
		if err != nil {
			t.Fatal(err)
		}
		s := resp.Rooms.Join[room].Summary
		if *s.JoinedMemberCount != 1 || *s.InvitedMemberCount != 0 || fmt.Sprint(s.Heroes) != fmt.Sprint([]id.UserID{bob.UserID, carol.UserID}) {
			t.Errorf("summary %v %v %v, want 1 joined, 0 invited, heroes bob and carol", *s.JoinedMemberCount, *s.InvitedMemberCount, s.Heroes)
		}
	})
}
