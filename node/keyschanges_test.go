package node

import (
	"context"
	"fmt"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"
)

// /keys/changes lists as left the users who shared a room with the user
// at from and share none at to.
func TestKeyChangesListsThoseWhoLeft(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, alice, bob, carol := oneNode(t, ctx)
	both := privateRoom(t, ctx, alice)
	joinThrough(t, ctx, both, alice, bob)
	three := privateRoom(t, ctx, alice)
	joinThrough(t, ctx, three, alice, bob)
	joinThrough(t, ctx, three, alice, carol)
	token := func() string {
		t.Helper()
		resp, err := bob.SyncRequest(ctx, 0, "", "", false, "")
		if err != nil {
			t.Fatal(err)
		}
		return resp.NextBatch
	}
	left := func(from, to string) string {
		t.Helper()
		ch, err := bob.GetKeyChanges(ctx, from, to)
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprint(ch.Left)
	}
	t0 := token()
	for _, c := range []*mautrix.Client{carol, alice} {
		if _, err := c.LeaveRoom(ctx, three); err != nil {
			t.Fatal(err)
		}
	}
	t1 := token()
	if got, want := left(t0, t1), fmt.Sprint([]id.UserID{carol.UserID}); got != want {
		t.Fatalf("left = %s, want %s: alice still shares a room with bob", got, want)
	}
	if _, err := bob.LeaveRoom(ctx, both); err != nil {
		t.Fatal(err)
	}
	t2 := token()
	if got, want := left(t1, t2), fmt.Sprint([]id.UserID{alice.UserID}); got != want {
		t.Fatalf("after bob left the last room he shared with alice: left = %s, want %s", got, want)
	}
	if got, want := left(t0, t1), fmt.Sprint([]id.UserID{carol.UserID}); got != want {
		t.Fatalf("the first span asked again later: left = %s, want %s (to bounds it)", got, want)
	}
	if got := left(t2, t2); got != "[]" {
		t.Fatalf("an empty span: left = %s", got)
	}
}
