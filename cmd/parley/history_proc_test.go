//go:build unix

package main

import (
	"context"
	"testing"
	"time"

	"maunium.net/go/mautrix"

	"github.com/parley-p2p/parley/internal/testkit"
)

// TestLateJoinerReadsHistoryAcrossProcesses: bob's node joins after 500
// messages; with the room's history shared, bob reads all 500 through
// /messages, fetched from alice's node.
func TestLateJoinerReadsHistoryAcrossProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two parley processes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a := startParley(t, "A", nodeArgs(t.TempDir())...)
	infoA := a.waitStarted()
	b := startParley(t, "B", append(nodeArgs(t.TempDir()), "--bootstrap", infoA.Addrs[0])...)
	infoB := b.waitStarted()
	alice, bob := register(t, ctx, infoA, "alice"), register(t, ctx, infoB, "bob")
	room := shareRoom(t, ctx, alice)
	sent := sendAtOnce(t, ctx, room, 500, alice)
	if _, err := alice.InviteUser(ctx, room, &mautrix.ReqInviteUser{UserID: bob.UserID}); err != nil {
		t.Fatal(err)
	}
	testkit.NewSyncer(t, ctx, bob).Until(t, 30*time.Second, "bob's invite", func(r *mautrix.RespSync) bool {
		_, ok := r.Rooms.Invite[room]
		return ok
	})
	if _, err := bob.JoinRoomByID(ctx, room); err != nil {
		t.Fatal(err)
	}
	took := waitForMessages(t, ctx, bob, room, sent)
	checkHistory(t, ctx, bob, room, sent)
	t.Logf("bob read all %d messages from before his join in %v", len(sent), took.Round(time.Millisecond))
}

// TestStoreAndForwardAcrossProcesses: bob's and carol's nodes are never
// running at the same time; alice's always-on node carries 50 messages
// each way.
func TestStoreAndForwardAcrossProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts parley processes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a := startParley(t, "A", nodeArgs(t.TempDir())...)
	infoA := a.waitStarted()
	dirB, dirC := t.TempDir(), t.TempDir()
	b := startParley(t, "B", append(nodeArgs(dirB), "--bootstrap", infoA.Addrs[0])...)
	c := startParley(t, "C", append(nodeArgs(dirC), "--bootstrap", infoA.Addrs[0])...)
	infoB, infoC := b.waitStarted(), c.waitStarted()
	alice, bob, carol := register(t, ctx, infoA, "alice"), register(t, ctx, infoB, "bob"), register(t, ctx, infoC, "carol")
	room := shareRoom(t, ctx, alice, bob, carol)

	c.stopAndCheck()
	fromBob := sendAtOnce(t, ctx, room, 50, bob)
	waitForMessages(t, ctx, alice, room, fromBob)
	b.stopAndCheck()

	c2 := startParley(t, "C again", append(restartArgs(dirC, infoC), "--bootstrap", infoA.Addrs[0])...)
	c2.waitStarted()
	waitForMessages(t, ctx, carol, room, fromBob)
	fromCarol := sendAtOnce(t, ctx, room, 50, carol)
	waitForMessages(t, ctx, alice, room, fromCarol)
	c2.stopAndCheck()

	b2 := startParley(t, "B again", append(restartArgs(dirB, infoB), "--bootstrap", infoA.Addrs[0])...)
	b2.waitStarted()
	waitForMessages(t, ctx, bob, room, fromCarol)
}
