package main

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
)

// TestInviteAndJoinFromTheCommandLine: `parley invite` makes a link through
// A's running daemon, `parley join` uses it through B's, and bob is then
// in alice's room; without a running daemon both say so in one line.
func TestInviteAndJoinFromTheCommandLine(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two parley processes")
	}
	if runtime.GOOS == "windows" {
		t.Skip("stops the processes with SIGTERM")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dirA, dirB := t.TempDir(), t.TempDir()
	a := startParley(t, "A", nodeArgs(dirA)...)
	infoA := a.waitStarted()
	b := startParley(t, "B", append(nodeArgs(dirB), "--bootstrap", infoA.Addrs[0])...)
	infoB := b.waitStarted()
	alice, bob := register(t, ctx, infoA, "alice"), register(t, ctx, infoB, "bob")
	room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Name: "from the shell"})
	if err != nil {
		t.Fatal(err)
	}

	inv := runParley(t, "invite", "--data", dirA, "--max-uses", "1", room.RoomID.String())
	if inv.code != 0 {
		t.Fatalf("parley invite exited %d: %s", inv.code, inv.stderr)
	}
	lines := strings.Split(strings.TrimSpace(inv.stdout), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "parley:join/") || !strings.Contains(lines[1], "/#/join/") {
		t.Fatalf("parley invite printed %q, want the link and its web form", inv.stdout)
	}
	join := runParley(t, "join", "--data", dirB, lines[0])
	if join.code != 0 || strings.TrimSpace(join.stdout) != "joined "+room.RoomID.String() {
		t.Fatalf("parley join exited %d: %s %s", join.code, join.stdout, join.stderr)
	}
	joined, err := bob.JoinedRooms(ctx)
	if err != nil || len(joined.JoinedRooms) != 1 || joined.JoinedRooms[0] != room.RoomID {
		t.Errorf("bob's rooms after parley join: %v (%v)", joined, err)
	}
	again := runParley(t, "join", "--data", t.TempDir(), lines[0])
	if again.code != 1 || !strings.Contains(again.stderr, "no running parley") || strings.Count(strings.TrimSpace(again.stderr), "\n") != 0 {
		t.Errorf("join without a daemon: exit %d, stderr %q", again.code, again.stderr)
	}
}
