package node

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/parley-p2p/parley/internal/testkit"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
)

// TestRepeatedTxnIDReturnsTheSameEvent: a client retrying a send with the
// same transaction ID gets the first event back, and only the sending
// device sees the transaction ID in /sync.
func TestRepeatedTxnIDReturnsTheSameEvent(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a := newTestNode(t, testOpts{})
	alice := a.register(ctx, "alice")
	room := privateRoom(t, ctx, alice)
	content := map[string]string{"msgtype": "m.text", "body": "once"}
	first, err := alice.SendMessageEvent(ctx, room, event.EventMessage, content, mautrix.ReqSendEvent{TransactionID: "txn-1"})
	if err != nil {
		t.Fatal(err)
	}
	pos := a.store.Pos()
	again, err := alice.SendMessageEvent(ctx, room, event.EventMessage, content, mautrix.ReqSendEvent{TransactionID: "txn-1"})
	if err != nil {
		t.Fatal(err)
	}
	if again.EventID != first.EventID {
		t.Errorf("retry created %s, want the first event %s", again.EventID, first.EventID)
	}
	if a.store.Pos() != pos {
		t.Errorf("retry moved the stream from %d to %d", pos, a.store.Pos())
	}

	// A second login is another device: it sees the event without the
	// transaction ID.
	other := a.client()
	login, err := other.Login(ctx, &mautrix.ReqLogin{
		Type: mautrix.AuthTypePassword, Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "alice"},
		Password: testPassword("alice"), StoreCredentials: true,
	})
	if err != nil || login.DeviceID == "" {
		t.Fatalf("login: %v", err)
	}
	for _, tc := range []struct {
		name string
		c    *mautrix.Client
		want string
	}{{"the sending device sees its transaction ID", alice, "txn-1"}, {"another device does not", other, ""}} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := tc.c.SyncRequest(ctx, 0, "", "", false, "")
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, ev := range resp.Rooms.Join[room].Timeline.Events {
				if ev.ID == first.EventID {
					found = true
					if ev.Unsigned.TransactionID != tc.want {
						t.Errorf("transaction_id = %q, want %q", ev.Unsigned.TransactionID, tc.want)
					}
				}
			}
			if !found {
				t.Error("event not in the timeline")
			}
		})
	}
}

// TestStatusShowsIdentityAndAddresses checks /_parley/v1/status.
func TestStatusShowsIdentityAndAddresses(t *testing.T) {
	t.Parallel()
	a := newTestNode(t, testOpts{})
	b := newTestNode(t, testOpts{bootstrap: []*testNode{a}})
	testkit.WaitFor(t, 10*time.Second, "b to connect to a", func() bool { return len(b.host.ConnectedPeers()) > 0 })
	resp, err := http.Get("http://" + b.HTTPAddr() + "/_parley/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if cors := resp.Header.Get("Access-Control-Allow-Origin"); cors != "" {
		t.Errorf("status carries CORS header %q; other origins must not read it", cors)
	}
	var st struct {
		ServerName     string   `json:"server_name"`
		PeerID         string   `json:"peer_id"`
		Addrs          []string `json:"addrs"`
		ConnectedPeers int      `json:"connected_peers"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	if st.ServerName != b.ServerName() || st.PeerID != b.PeerID().String() {
		t.Errorf("status names %s/%s, want %s/%s", st.ServerName, st.PeerID, b.ServerName(), b.PeerID())
	}
	if len(st.Addrs) == 0 {
		t.Error("no addresses")
	}
	for _, addr := range st.Addrs {
		if !strings.HasSuffix(addr, "/p2p/"+st.PeerID) {
			t.Errorf("address %s does not end in /p2p/<peer id>", addr)
		}
	}
	if st.ConnectedPeers < 1 {
		t.Errorf("connected_peers = %d, want at least 1", st.ConnectedPeers)
	}
}

// TestCloseLeavesNoGoroutines: after a node has chatted and closed, twice,
// the goroutines it started are gone (testkit.CheckGoroutines, which
// newTestNode calls too, fails the test at its end if they are not).
func TestCloseLeavesNoGoroutines(t *testing.T) {
	t.Parallel()
	testkit.CheckGoroutines(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, b, _, bob, room := twoMembers(t, ctx, testOpts{}, testOpts{})
	if _, err := bob.SendText(ctx, room, "hi"); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("close b: %v", err)
	}
	if err := a.Close(); err != nil {
		t.Errorf("close a: %v", err)
	}
	if err := a.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
}
