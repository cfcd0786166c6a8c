package node

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"maunium.net/go/mautrix"

	"github.com/parley-p2p/parley/internal/testkit"
	"github.com/parley-p2p/parley/node/store"
)

// TestRoomPeersAreTheMembersServers: the relay's member set holds the
// node of every server joined to a followed room, not a stranger's
// connected node, and loses a server once its users left.
func TestRoomPeersAreTheMembersServers(t *testing.T) {
	ctx := context.Background()
	a, b, _, bob, room := twoMembers(t, ctx, testOpts{}, testOpts{})
	stranger := newTestNode(t, testOpts{bootstrap: []*testNode{a}})
	testkit.WaitFor(t, 10*time.Second, "a to count b's node as a room peer", func() bool { return a.peers.IsRoomPeer(b.host.ID()) })
	if got := a.peers.RoomPeers(); !slices.Equal(got, []peer.ID{b.host.ID()}) {
		t.Errorf("a's room peers: %v, want only b's node", got)
	}
	testkit.WaitFor(t, 10*time.Second, "the stranger to connect to a", func() bool {
		return slices.Contains(a.host.ConnectedPeers(), stranger.host.ID())
	})
	if a.peers.IsRoomPeer(stranger.host.ID()) || a.peers.IsRoomPeer(a.host.ID()) {
		t.Error("a counts a stranger's node, or its own, as a room peer")
	}
	if _, err := bob.LeaveRoom(ctx, room); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 20*time.Second, "a to drop b's node once bob left", func() bool { return !a.peers.IsRoomPeer(b.host.ID()) })
}

// TestRestartedNodeRedialsItsRoomPeerWithoutWaitingTheInterval: b, whose
// only way to a is the address it stored when it last reached it (no
// bootstrap, no mDNS), restarts while a is unreachable for it; once a is
// reachable again b reconnects within the redial ramp, long before its
// reconnect interval (10 minutes here) would redial.
func TestRestartedNodeRedialsItsRoomPeerWithoutWaitingTheInterval(t *testing.T) {
	ctx := context.Background()
	const interval = 10 * time.Minute
	dir := t.TempDir()
	a, b, alice, bob, room := twoMembers(t, ctx, testOpts{reconnect: interval}, testOpts{dir: dir, reconnect: interval})
	aID := a.host.ID()
	aAddrs := a.host.Addrs()
	stored := func(n *testNode) []string {
		var out []string
		if err := n.store.View(func(tx *store.Txn) error {
			as, err := tx.PeerAddrs(aID.String(), time.Now())
			for _, x := range as {
				out = append(out, x.Addr)
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	// b notes where it reached a once a counts as a room peer, and
	// stores it (at the latest) as it closes.
	testkit.WaitFor(t, 10*time.Second, "b to count a as a room peer", func() bool { return b.peers.IsRoomPeer(aID) })
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	b2 := newTestNode(t, testOpts{dir: dir, reconnect: interval, shun: []peer.ID{aID}})
	got := stored(b2)
	if !slices.ContainsFunc(got, func(s string) bool {
		return slices.ContainsFunc(aAddrs, func(x string) bool { return strings.HasPrefix(x, s) })
	}) {
		t.Fatalf("b stored %v for a, none of a's addresses %v", got, aAddrs)
	}
	known := b2.host.LibP2P().Peerstore().Addrs(aID)
	if len(known) == 0 {
		t.Fatal("b restarted knows no address of a: the stored ones were not loaded")
	}
	testkit.WaitFor(t, 10*time.Second, "b's first dials to a to fail", func() bool { return b2.peers.DialFailures(aID) > 0 })
	b2.gate.Unblock(aID)
	unblocked := time.Now()
	testkit.WaitFor(t, interval/4, "b to reconnect to a", func() bool {
		return slices.Contains(b2.host.ConnectedPeers(), aID)
	})
	t.Logf("b reconnected %v after its restart, %v after a became reachable", time.Since(start).Round(time.Millisecond), time.Since(unblocked).Round(time.Millisecond))
	if time.Since(start) >= interval {
		t.Fatal("reconnected only after the interval")
	}
	// The room works again across the restart.
	bob2 := b2.client()
	bob2.SetCredentials(bob.UserID, bob.AccessToken)
	sy := testkit.NewSyncer(t, ctx, bob2)
	if _, err := sy.Next(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.SendText(ctx, room, "after b's restart"); err != nil {
		t.Fatal(err)
	}
	sy.Until(t, 20*time.Second, "bob to see alice's message after the restart", func(r *mautrix.RespSync) bool {
		return hasText(r, room, "after b's restart")
	})
}

// TestALostRoomPeerIsRedialledAtOnce: when the connection between two
// members drops, they are connected again within the redial ramp, not
// after the reconnect interval (10 minutes here).
func TestALostRoomPeerIsRedialledAtOnce(t *testing.T) {
	ctx := context.Background()
	const interval = 10 * time.Minute
	a, b, _, _, _ := twoMembers(t, ctx, testOpts{reconnect: interval}, testOpts{reconnect: interval})
	testkit.WaitFor(t, 10*time.Second, "each to count the other as a room peer", func() bool {
		return a.peers.IsRoomPeer(b.host.ID()) && b.peers.IsRoomPeer(a.host.ID())
	})
	lost := time.Now()
	if err := a.host.LibP2P().Network().ClosePeer(b.host.ID()); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, interval/4, "a and b to connect again", func() bool {
		return slices.Contains(a.host.ConnectedPeers(), b.host.ID())
	})
	t.Logf("connected again %v after the connection was closed", time.Since(lost).Round(time.Millisecond))
}
