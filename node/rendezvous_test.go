package node

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/parley-p2p/parley/internal/testkit"
)

// TestMembersFindEachOtherAfterRestartingOnNewPorts: alice's and bob's
// nodes know only a bootstrap node that is not in their room. Both restart
// on new ports; through the DHT they find each other again and chat.
func TestMembersFindEachOtherAfterRestartingOnNewPorts(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	x := newTestNode(t, testOpts{})
	adir, bdir := t.TempDir(), t.TempDir()
	opts := func(dir string) testOpts {
		return testOpts{dir: dir, bootstrap: []*testNode{x}, reconnect: 200 * time.Millisecond}
	}
	a, b := newTestNode(t, opts(adir)), newTestNode(t, opts(bdir))
	alice, bob := a.register(ctx, "alice"), b.register(ctx, "bob")
	room := privateRoom(t, ctx, alice)
	joinThrough(t, ctx, room, alice, bob)
	oldA, oldB := a.Addrs(), b.Addrs()
	a.Close()
	b.Close()

	a, b = newTestNode(t, opts(adir)), newTestNode(t, opts(bdir))
	if a.Addrs()[0] == oldA[0] || b.Addrs()[0] == oldB[0] {
		t.Fatalf("a node came back on its old address")
	}
	testkit.WaitFor(t, 30*time.Second, "a and b to find each other", func() bool {
		return a.host.LibP2P().Network().Connectedness(b.PeerID()) == network.Connected
	})
	alice2, bob2 := a.client(), b.client()
	alice2.SetCredentials(alice.UserID, alice.AccessToken)
	bob2.SetCredentials(bob.UserID, bob.AccessToken)
	if _, err := alice2.SendText(ctx, room, "found you"); err != nil {
		t.Fatal(err)
	}
	hasAll(t, ctx, bob2, room, []string{"found you"}, 20*time.Second)
}
