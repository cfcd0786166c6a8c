package node

import (
	"context"
	"slices"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/parley-p2p/parley/internal/testkit"
	"github.com/parley-p2p/parley/node/peers"
	"github.com/parley-p2p/parley/node/store"
)

// Keys of a user of another node are asked for through that node, which
// answers only nodes sharing a room with the user.
func TestKeysOfUsersOnAnotherNode(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, b, alice, bob, _ := twoMembers(t, ctx, testOpts{regToken: "family"}, testOpts{})
	if _, err := bob.UploadKeys(ctx, &mautrix.ReqUploadKeys{DeviceKeys: deviceKeys(bob, "1"), OneTimeKeys: otks("b", 2)}); err != nil {
		t.Fatal(err)
	}
	if err := call(ctx, bob, "POST", map[string]any{"master_key": crossSigningKey(t, bob, id.XSUsageMaster, "masterbob", "")}, nil, "keys", "device_signing", "upload"); err != nil {
		t.Fatal(err)
	}

	q, err := alice.QueryKeys(ctx, &mautrix.ReqQueryKeys{DeviceKeys: mautrix.DeviceKeysRequest{bob.UserID: nil}})
	if err != nil {
		t.Fatal(err)
	}
	if dk, ok := q.DeviceKeys[bob.UserID][bob.DeviceID]; !ok || dk.UserID != bob.UserID {
		t.Fatalf("alice's query of bob: %+v, failures %v", q.DeviceKeys, q.Failures)
	}
	if firstKey(q.MasterKeys[bob.UserID]) != pk("masterbob") {
		t.Errorf("bob's master key as alice sees it: %+v", q.MasterKeys)
	}

	claimed := map[id.KeyID]bool{}
	for range 3 {
		cl, err := alice.ClaimKeys(ctx, &mautrix.ReqClaimKeys{OneTimeKeys: mautrix.OneTimeKeysRequest{bob.UserID: {bob.DeviceID: id.KeyAlgorithmSignedCurve25519}}})
		if err != nil {
			t.Fatal(err)
		}
		for kid := range cl.OneTimeKeys[bob.UserID][bob.DeviceID] {
			if claimed[kid] {
				t.Errorf("key %s claimed twice", kid)
			}
			claimed[kid] = true
		}
	}
	if len(claimed) != 2 {
		t.Errorf("claimed %v, want bob's two keys", claimed)
	}

	t.Run("a node sharing no room with the user learns nothing", func(t *testing.T) {
		// c knows b's address (not left to the DHT), so that b's silence
		// is its refusal, not a node it could not find.
		c := newTestNode(t, testOpts{bootstrap: []*testNode{a, b}})
		carol := c.register(ctx, "carol")
		q, err := carol.QueryKeys(ctx, &mautrix.ReqQueryKeys{DeviceKeys: mautrix.DeviceKeysRequest{bob.UserID: nil}})
		if err != nil {
			t.Fatal(err)
		}
		if _, failed := q.Failures[bob.UserID.Homeserver()]; failed {
			t.Fatalf("b did not answer carol: %v", q.Failures)
		}
		if len(q.DeviceKeys[bob.UserID]) != 0 || len(q.MasterKeys) != 0 {
			t.Errorf("carol sees bob's keys: %+v %+v", q.DeviceKeys, q.MasterKeys)
		}
	})
}

// A to-device message for a user of a node that is unreachable waits in
// the sender's outbox, and reaches the device once, when the node is
// back; a device list change reaches the other node's member.
func TestToDeviceToAnUnreachableNodeArrivesOnceWhenItIsBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fast := testOpts{reconnect: 200 * time.Millisecond}
	a, b, alice, bob, _ := twoMembers(t, ctx, fast, fast)
	first, err := bob.SyncRequest(ctx, 0, "", "", false, "")
	if err != nil {
		t.Fatal(err)
	}

	split(t, []*testNode{a}, []*testNode{b})
	req := map[string]any{"messages": map[string]any{bob.UserID.String(): map[string]any{"*": map[string]any{"body": "while away"}}}}
	if err := call(ctx, alice, "PUT", req, nil, "sendToDevice", "m.test", "t1"); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.UploadKeys(ctx, &mautrix.ReqUploadKeys{DeviceKeys: deviceKeys(alice, "1")}); err != nil {
		t.Fatal(err)
	}
	if n := outboxLen(t, a, b.ServerName()); n != 2 {
		t.Fatalf("a's outbox for b holds %d requests while b is away, want 2", n)
	}
	heal(a, b)

	var got []string
	var changed bool
	since := first.NextBatch
	testkit.WaitFor(t, 30*time.Second, "the message and alice's device change to reach bob", func() bool {
		resp, err := bob.SyncRequest(ctx, 1000, since, "", false, "")
		if err != nil {
			t.Fatal(err)
		}
		since = resp.NextBatch
		for _, ev := range resp.ToDevice.Events {
			got = append(got, ev.Content.Raw["body"].(string))
		}
		changed = changed || slices.Contains(resp.DeviceLists.Changed, alice.UserID)
		return len(got) > 0 && changed
	})
	testkit.WaitFor(t, 10*time.Second, "a's outbox for b to empty", func() bool { return outboxLen(t, a, b.ServerName()) == 0 })
	for range 2 {
		resp, err := bob.SyncRequest(ctx, 0, since, "", false, "")
		if err != nil {
			t.Fatal(err)
		}
		since = resp.NextBatch
		for _, ev := range resp.ToDevice.Events {
			got = append(got, ev.Content.Raw["body"].(string))
		}
	}
	if !slices.Equal(got, []string{"while away"}) {
		t.Errorf("bob got %q, want the message once", got)
	}

	t.Run("a message sent again after a lost answer is taken once", func(t *testing.T) {
		m := peers.ToDeviceReq{ID: "resent", Sender: alice.UserID.String(), Type: "m.test", UserID: bob.UserID.String(), DeviceID: bob.DeviceID.String(), Content: []byte(`{"body":"twice"}`)}
		for range 2 {
			if err := b.api.DeliverToDevice(a.ServerName(), m); err != nil {
				t.Fatal(err)
			}
		}
		resp, err := bob.SyncRequest(ctx, 0, since, "", false, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.ToDevice.Events) != 1 {
			t.Errorf("the same ID delivered twice gave %d messages", len(resp.ToDevice.Events))
		}
	})
}

func outboxLen(t *testing.T, n *testNode, server string) int {
	t.Helper()
	var l int
	if err := n.store.View(func(tx *store.Txn) error {
		var err error
		l, err = tx.OutboxLen(server)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return l
}
