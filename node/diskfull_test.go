package node

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"maunium.net/go/mautrix"

	"github.com/parley-p2p/parley/node/store"
)

// wantDiskFull checks that a request was refused as M_RESOURCE_LIMIT_EXCEEDED.
func wantDiskFull(t *testing.T, what string, err error) {
	t.Helper()
	var herr mautrix.HTTPError
	if !errors.As(err, &herr) || herr.RespError == nil || herr.RespError.ErrCode != "M_RESOURCE_LIMIT_EXCEEDED" || herr.Response.StatusCode != 507 {
		t.Errorf("%s on a full disk: %v, want 507 M_RESOURCE_LIMIT_EXCEEDED", what, err)
	}
}

// fullDiskChecks runs against a node whose disk is nearly full (fill) and
// then has room again (free): writes are refused and change nothing,
// reads keep working, and writes resume once space is freed.
func fullDiskChecks(t *testing.T, a *testNode, fill, free func()) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	alice := a.register(ctx, "alice")
	room := privateRoom(t, ctx, alice)
	if _, err := alice.SendText(ctx, room, "before"); err != nil {
		t.Fatal(err)
	}
	pos := a.store.Pos()

	fill()
	_, err := alice.SendText(ctx, room, "refused")
	wantDiskFull(t, "a message", err)
	_, err = alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat"})
	wantDiskFull(t, "createRoom", err)
	if got := a.store.Pos(); got != pos {
		t.Errorf("stream position moved from %d to %d while writes were refused", pos, got)
	}
	if _, err := alice.SyncRequest(ctx, 0, "", "", true, ""); err != nil {
		t.Errorf("/sync on a full disk: %v", err)
	}
	if got := bodiesAt(t, ctx, alice, room); !slices.Equal(got, []string{"before"}) {
		t.Errorf("history on a full disk = %v, want [before]", got)
	}

	free()
	if _, err := alice.SendText(ctx, room, "after"); err != nil {
		t.Fatalf("a message once space is freed: %v", err)
	}
	if got := bodiesAt(t, ctx, alice, room); !slices.Equal(got, []string{"after", "before"}) {
		t.Errorf("history = %v, want [after before]", got)
	}
	joined, err := alice.JoinedRooms(ctx)
	if err != nil || len(joined.JoinedRooms) != 1 || joined.JoinedRooms[0] != room {
		t.Errorf("joined rooms = %v, %v; want just the first room", joined, err)
	}
}

// closeWhileFull closes a node on a nearly full disk: the database is left
// open (Badger's flush on close would be a SIGBUS) and Close says so; once
// space is freed, closing the store again closes it.
func closeWhileFull(t *testing.T, a *testNode, free func()) {
	t.Helper()
	err := a.Close()
	if err == nil || !strings.Contains(err.Error(), "left open") {
		t.Errorf("close on a full disk: %v, want an error saying the database is left open", err)
	}
	free()
	if err := a.store.Close(); err != nil {
		t.Errorf("closing the store once space is freed: %v", err)
	}
}

// TestFullDiskRefusesWritesAndKeepsServing, with the free space faked:
// below the margin, sends and createRoom get 507 M_RESOURCE_LIMIT_EXCEEDED
// and store nothing; /sync and history still answer; once space is back,
// sends work. A node does not start on a full disk, and says why in one
// line. Closing on a full disk leaves the database to its log.
func TestFullDiskRefusesWritesAndKeepsServing(t *testing.T) {
	t.Parallel()
	var free atomic.Uint64
	free.Store(100 << 30)
	space := func(string) (uint64, error) { return free.Load(), nil }
	a := newTestNode(t, testOpts{freeSpace: space})
	fullDiskChecks(t, a, func() { free.Store(1 << 20) }, func() { free.Store(100 << 30) })

	free.Store(1 << 20)
	closeWhileFull(t, a, func() { free.Store(100 << 30) })
	free.Store(1 << 20)
	n, err := New(Config{DataDir: a.dir, HTTPAddr: "127.0.0.1:0", ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, NoMDNS: true, freeSpace: space})
	if err != nil {
		t.Fatal(err)
	}
	err = n.Start()
	n.Close()
	if err == nil || !strings.Contains(err.Error(), "free") || strings.Contains(err.Error(), "\n") {
		t.Errorf("start on a full disk: %v, want a one-line error about free space", err)
	}
}

// TestRealFullDisk does the same on a real 96 MiB tmpfs filled up with
// fallocate; it closes the node while the disk is full (Badger's flush on
// close killed the process with SIGBUS) and starts it again while it is
// full (root only: it mounts).
func TestRealFullDisk(t *testing.T) {
	// Not parallel: it mounts a tmpfs and fills it.
	needRoot(t)
	mnt := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=96m,mode=0700", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v: %s)", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount: %v: %s", err, out)
		}
	})
	filler := filepath.Join(mnt, "filler")
	fill := func() {
		t.Helper()
		avail, err := store.FreeSpace(mnt)
		if err != nil {
			t.Fatal(err)
		}
		f, err := os.OpenFile(filler, os.O_CREATE|os.O_WRONLY, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := syscall.Fallocate(int(f.Fd()), 0, 0, int64(avail)); err != nil {
			t.Fatal(err)
		}
	}
	remove := func() {
		t.Helper()
		if err := os.Remove(filler); err != nil {
			t.Fatal(err)
		}
	}
	dir := filepath.Join(mnt, "data")
	a := newTestNode(t, testOpts{dir: dir})
	fullDiskChecks(t, a, fill, remove)

	fill()
	closeWhileFull(t, a, remove)
	fill()
	n, err := New(Config{DataDir: dir, HTTPAddr: "127.0.0.1:0", ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, NoMDNS: true})
	if err != nil {
		t.Fatal(err)
	}
	err = n.Start()
	n.Close()
	if err == nil || !strings.Contains(err.Error(), "free") {
		t.Errorf("start on a full tmpfs: %v, want an error about free space", err)
	}
	remove()
}
