package node

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"
)

// sendMany sends n messages from each client concurrently.
func sendMany(t testing.TB, ctx context.Context, room id.RoomID, n int, senders ...*mautrix.Client) []string {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var bodies []string
	for _, c := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n {
				body := fmt.Sprintf("%s %03d", c.UserID.Localpart(), i)
				if _, err := c.SendText(ctx, room, body); err != nil {
					t.Errorf("%s send: %v", c.UserID, err)
					return
				}
				mu.Lock()
				bodies = append(bodies, body)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return bodies
}

// hasAll waits until the client's /messages shows every body.
func hasAll(t testing.TB, ctx context.Context, c *mautrix.Client, room id.RoomID, bodies []string, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	waitFor(t, within, fmt.Sprintf("%s to have all %d messages", c.UserID, len(bodies)), func() bool {
		got := map[string]bool{}
		for _, b := range readAll(t, ctx, c, room) {
			got[b] = true
		}
		for _, b := range bodies {
			if !got[b] {
				return false
			}
		}
		return true
	})
	return time.Since(start)
}

// TestCutOffNodeCatchesUp: C loses every connection while alice and bob
// send 200 messages; when the network comes back, C has all 200 without
// anyone resending.
func TestCutOffNodeCatchesUp(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	gaters := map[*testNode]*splitGater{}
	mk := func(boot ...*testNode) *testNode {
		g := &splitGater{}
		n := newTestNode(t, testOpts{bootstrap: boot, gater: g, reconnect: 200 * time.Millisecond})
		gaters[n] = g
		return n
	}
	a := mk()
	b, c := mk(a), mk(a)
	alice, bob, carol := a.register(ctx, "alice"), b.register(ctx, "bob"), c.register(ctx, "carol")
	room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat"})
	if err != nil {
		t.Fatal(err)
	}
	joinThrough(t, ctx, room.RoomID, alice, bob)
	joinThrough(t, ctx, room.RoomID, alice, carol)

	split(t, gaters, []*testNode{a, b}, []*testNode{c})
	bodies := sendMany(t, ctx, room.RoomID, 100, alice, bob)
	for _, g := range gaters {
		g.set(nil)
	}
	took := hasAll(t, ctx, carol, room.RoomID, bodies, 30*time.Second)
	t.Logf("carol had all %d messages %v after the network came back", len(bodies), took.Round(time.Millisecond))
}

// TestRestartedNodeCatchesUp: C is shut down while alice and bob send 200
// messages, and comes back on new ports; it finds the others and fetches
// all 200.
func TestRestartedNodeCatchesUp(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a := newTestNode(t, testOpts{})
	b := newTestNode(t, testOpts{bootstrap: []*testNode{a}})
	cdir := t.TempDir()
	c := newTestNode(t, testOpts{dir: cdir, bootstrap: []*testNode{a}})
	alice, bob, carol := a.register(ctx, "alice"), b.register(ctx, "bob"), c.register(ctx, "carol")
	room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat"})
	if err != nil {
		t.Fatal(err)
	}
	joinThrough(t, ctx, room.RoomID, alice, bob)
	joinThrough(t, ctx, room.RoomID, alice, carol)

	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	bodies := sendMany(t, ctx, room.RoomID, 100, alice, bob)
	start := time.Now()
	c = newTestNode(t, testOpts{dir: cdir, bootstrap: []*testNode{a}})
	carol2 := c.client()
	carol2.SetCredentials(carol.UserID, carol.AccessToken)
	hasAll(t, ctx, carol2, room.RoomID, bodies, 30*time.Second)
	t.Logf("carol had all %d messages %v after her node started again", len(bodies), time.Since(start).Round(time.Millisecond))
}

// TestStoreAndForward: bob's and carol's devices are never online at the
// same time; alice's always-on node carries 50 messages each way.
func TestStoreAndForward(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a := newTestNode(t, testOpts{})
	bdir, cdir := t.TempDir(), t.TempDir()
	b := newTestNode(t, testOpts{dir: bdir, bootstrap: []*testNode{a}})
	c := newTestNode(t, testOpts{dir: cdir, bootstrap: []*testNode{a}})
	alice, bob, carol := a.register(ctx, "alice"), b.register(ctx, "bob"), c.register(ctx, "carol")
	room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat"})
	if err != nil {
		t.Fatal(err)
	}
	joinThrough(t, ctx, room.RoomID, alice, bob)
	joinThrough(t, ctx, room.RoomID, alice, carol)
	c.Close()

	fromBob := sendMany(t, ctx, room.RoomID, 50, bob)
	// Bob's messages are safe at alice's node before bob goes away.
	hasAll(t, ctx, alice, room.RoomID, fromBob, 30*time.Second)
	b.Close()

	c = newTestNode(t, testOpts{dir: cdir, bootstrap: []*testNode{a}})
	carolC := c.client()
	carolC.SetCredentials(carol.UserID, carol.AccessToken)
	hasAll(t, ctx, carolC, room.RoomID, fromBob, 30*time.Second)
	fromCarol := sendMany(t, ctx, room.RoomID, 50, carolC)
	hasAll(t, ctx, alice, room.RoomID, fromCarol, 30*time.Second)
	c.Close()

	b = newTestNode(t, testOpts{dir: bdir, bootstrap: []*testNode{a}})
	bobB := b.client()
	bobB.SetCredentials(bob.UserID, bob.AccessToken)
	hasAll(t, ctx, bobB, room.RoomID, fromCarol, 30*time.Second)
}
