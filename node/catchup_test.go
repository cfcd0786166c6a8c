package node

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/parley-p2p/parley/internal/testkit"
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
	testkit.WaitFor(t, within, fmt.Sprintf("%s to have all %d messages", c.UserID, len(bodies)), func() bool {
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
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	fast := testOpts{reconnect: 200 * time.Millisecond}
	nodes, users, room := threeNodeRoom(t, ctx, fast, fast, fast)
	alice, bob, carol := users[0], users[1], users[2]

	split(t, nodes[:2], nodes[2:])
	bodies := sendMany(t, ctx, room, 100, alice, bob)
	heal(nodes...)
	took := hasAll(t, ctx, carol, room, bodies, 30*time.Second)
	t.Logf("carol had all %d messages %v after the network came back", len(bodies), took.Round(time.Millisecond))
}

// TestRestartedNodeCatchesUp: C is shut down while alice and bob send 200
// messages, and comes back on new ports; it finds the others and fetches
// all 200.
func TestRestartedNodeCatchesUp(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cdir := t.TempDir()
	nodes, users, room := threeNodeRoom(t, ctx, testOpts{}, testOpts{}, testOpts{dir: cdir})
	a, c := nodes[0], nodes[2]
	alice, bob, carol := users[0], users[1], users[2]

	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	bodies := sendMany(t, ctx, room, 100, alice, bob)
	start := time.Now()
	c = newTestNode(t, testOpts{dir: cdir, bootstrap: []*testNode{a}})
	carol2 := c.client()
	carol2.SetCredentials(carol.UserID, carol.AccessToken)
	hasAll(t, ctx, carol2, room, bodies, 30*time.Second)
	t.Logf("carol had all %d messages %v after her node started again", len(bodies), time.Since(start).Round(time.Millisecond))
}

// TestStoreAndForward: bob's and carol's devices are never online at the
// same time; alice's always-on node carries 50 messages each way.
func TestStoreAndForward(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bdir, cdir := t.TempDir(), t.TempDir()
	nodes, users, room := threeNodeRoom(t, ctx, testOpts{}, testOpts{dir: bdir}, testOpts{dir: cdir})
	a, b, c := nodes[0], nodes[1], nodes[2]
	alice, bob, carol := users[0], users[1], users[2]
	c.Close()

	fromBob := sendMany(t, ctx, room, 50, bob)
	// Bob's messages are safe at alice's node before bob goes away.
	hasAll(t, ctx, alice, room, fromBob, 30*time.Second)
	b.Close()

	c = newTestNode(t, testOpts{dir: cdir, bootstrap: []*testNode{a}})
	carolC := c.client()
	carolC.SetCredentials(carol.UserID, carol.AccessToken)
	hasAll(t, ctx, carolC, room, fromBob, 30*time.Second)
	fromCarol := sendMany(t, ctx, room, 50, carolC)
	hasAll(t, ctx, alice, room, fromCarol, 30*time.Second)
	c.Close()

	b = newTestNode(t, testOpts{dir: bdir, bootstrap: []*testNode{a}})
	bobB := b.client()
	bobB.SetCredentials(bob.UserID, bob.AccessToken)
	hasAll(t, ctx, bobB, room, fromCarol, 30*time.Second)
}
