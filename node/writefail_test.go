package node

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-p2p/parley/internal/testkit"
	"github.com/parley-p2p/parley/node/dag"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/rooms"
)

// faultyDisk fails the write of every event whose content holds a marker,
// as an I/O error would, and records which events it failed.
type faultyDisk struct {
	mu     sync.Mutex
	marker string
	failed []string
}

func (f *faultyDisk) fail(ev *rooms.Event, plain []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	// The marker is in what the user sent, which the event carries
	// encrypted: the engine's plain view of it is what the node's own
	// events are matched by.
	if f.marker == "" || !strings.Contains(string(ev.Content())+string(plain), f.marker) {
		return nil
	}
	if !slices.Contains(f.failed, ev.ID()) { // the store may retry a write alone
		f.failed = append(f.failed, ev.ID())
	}
	return errors.New("injected I/O error")
}

func (f *faultyDisk) failedIDs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.failed)
}

// bodiesAt lists the message bodies a user's node holds for a room.
func bodiesAt(t *testing.T, ctx context.Context, c *mautrix.Client, room id.RoomID) []string {
	t.Helper()
	msgs, err := c.Messages(ctx, room, "", "", mautrix.DirectionBackward, nil, 100)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, ev := range msgs.Chunk {
		if ev.Type == event.EventMessage {
			ev.Content.ParseRaw(ev.Type)
			out = append(out, ev.Content.AsMessage().Body)
		}
	}
	return out
}

// TestFailedSendsLeaveNoGhost: alice's node fails to store a message, once
// because its transaction ID is 70,000 bytes (over Badger's key limit
// before IDs were capped) and once through an injected I/O error. Each
// send is refused; bob's node never receives the message; alice's node
// holds nothing of it, in memory or on disk, and her next message does
// not build on it.
func TestFailedSendsLeaveNoGhost(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	disk := &faultyDisk{}
	a, b, alice, bob, room := twoMembers(t, ctx, testOpts{failWrite: disk.fail}, testOpts{})
	testkit.WaitFor(t, 30*time.Second, "alice's node to see bob joined", func() bool {
		got, err := joinedSet(ctx, alice, room)
		return err == nil && strings.Contains(got, bob.UserID.String())
	})

	// afterwards sends a message that must work, waits until bob's node
	// has it, and checks that it builds on none of the ghost events.
	afterwards := func(t *testing.T, body string, ghosts []string) {
		t.Helper()
		resp, err := alice.SendText(ctx, room, body)
		if err != nil {
			t.Fatalf("the send after the failure: %v", err)
		}
		testkit.WaitFor(t, 30*time.Second, "bob's node to receive "+body, func() bool { return b.dag.Known(resp.EventID.String()) })
		i, err := a.dag.Event(resp.EventID.String())
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range ghosts {
			if slices.Contains(i.Event.PrevEvents(), g) {
				t.Errorf("the next event lists the unstored event %s as a prev event", g)
			}
		}
		for _, c := range []*mautrix.Client{alice, bob} {
			if bodies := bodiesAt(t, ctx, c, room); slices.ContainsFunc(bodies, func(b string) bool { return strings.HasPrefix(b, "ghost") }) {
				t.Errorf("%s's node shows the failed message: %v", c.UserID, bodies)
			}
		}
	}

	t.Run("a 70,000-byte transaction ID is refused before anything is built", func(t *testing.T) {
		_, err := alice.SendMessageEvent(ctx, room, event.EventMessage,
			map[string]any{"msgtype": "m.text", "body": "ghost 1"},
			mautrix.ReqSendEvent{TransactionID: strings.Repeat("t", 70000)})
		var herr mautrix.HTTPError
		if !errors.As(err, &herr) || herr.Response == nil || herr.Response.StatusCode != 400 || herr.RespError == nil || herr.RespError.ErrCode != "M_INVALID_PARAM" {
			t.Errorf("send with a 70,000-byte transaction ID: %v, want 400 M_INVALID_PARAM", err)
		}
		afterwards(t, "after the long ID", nil)
	})

	t.Run("a write that fails reaches no peer and leaves no trace", func(t *testing.T) {
		disk.mu.Lock()
		disk.marker = "ghost 2"
		disk.mu.Unlock()
		_, err := alice.SendText(ctx, room, "ghost 2")
		var herr mautrix.HTTPError
		if !errors.As(err, &herr) || herr.Response == nil || herr.Response.StatusCode < 500 {
			t.Fatalf("send whose write fails: %v, want a 5xx", err)
		}
		ghosts := disk.failedIDs()
		if len(ghosts) != 1 {
			t.Fatalf("the fault hook failed %d writes, want 1", len(ghosts))
		}
		g := ghosts[0]
		r := a.getRoom(room.String())
		testkit.WaitFor(t, 10*time.Second, "alice's node to forget the failed event without further sends", func() bool {
			return !slices.Contains(r.Head().Ext, g) && !a.dag.Known(g)
		})
		afterwards(t, "after the failed write", ghosts)
		for _, n := range []*testNode{a, b} {
			if n.dag.Known(g) {
				t.Errorf("node %s holds the failed event %s", n.ServerName()[:8], g)
			}
			err := n.store.View(func(tx *store.Txn) error { _, err := tx.Event(g); return err })
			if !errors.Is(err, store.ErrNotFound) {
				t.Errorf("node %s: stored lookup of the failed event: %v, want not found", n.ServerName()[:8], err)
			}
		}
		ext := slices.Clone(r.Head().Ext)
		if slices.Contains(ext, g) {
			t.Errorf("the failed event is still an extremity of the room: %v", ext)
		}
	})
}

// TestTransactionIDsHeldInBoundedMemory: 5,000 sends, each with its own
// 255-byte transaction ID (the most allowed), leave at most
// maxTxnCacheBytes of IDs in memory, yet a retry of the very first
// transaction (long evicted) still returns its event instead of sending
// a second one. A 256-byte ID is refused.
func TestTransactionIDsHeldInBoundedMemory(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	a := newTestNode(t, testOpts{})
	alice := a.register(ctx, "alice")
	room := privateRoom(t, ctx, alice)
	const sends, senders = 5000, 8
	txnID := func(i int) string {
		p := strconv.Itoa(i) + "-"
		return p + strings.Repeat("x", dag.MaxTxnIDLen-len(p))
	}
	first := make(chan id.EventID, 1)
	var wg sync.WaitGroup
	errs := make(chan error, senders)
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := s; i < sends; i += senders {
				resp, err := alice.SendMessageEvent(ctx, room, event.EventMessage,
					map[string]any{"msgtype": "m.text", "body": "m"}, mautrix.ReqSendEvent{TransactionID: txnID(i)})
				if err != nil {
					errs <- err
					return
				}
				if i == 0 {
					first <- resp.EventID
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("send: %v", err)
	}
	entries, bytes, maxTxnCacheBytes := a.dag.TxnCacheSize()
	t.Logf("after %d sends: %d transactions in memory, %d bytes", sends, entries, bytes)
	if bytes > maxTxnCacheBytes {
		t.Errorf("transaction IDs hold %d bytes, want at most %d", bytes, maxTxnCacheBytes)
	}
	if entries >= sends {
		t.Errorf("all %d transactions are still in memory", entries)
	}
	again, err := alice.SendMessageEvent(ctx, room, event.EventMessage,
		map[string]any{"msgtype": "m.text", "body": "m"}, mautrix.ReqSendEvent{TransactionID: txnID(0)})
	if err != nil {
		t.Fatal(err)
	}
	if want := <-first; again.EventID != want {
		t.Errorf("retried transaction made event %s, want the original %s", again.EventID, want)
	}
	_, err = alice.SendMessageEvent(ctx, room, event.EventMessage,
		map[string]any{"msgtype": "m.text", "body": "m"}, mautrix.ReqSendEvent{TransactionID: strings.Repeat("y", dag.MaxTxnIDLen+1)})
	var herr mautrix.HTTPError
	if !errors.As(err, &herr) || herr.Response == nil || herr.Response.StatusCode != 400 {
		t.Errorf("a %d-byte transaction ID: %v, want 400", dag.MaxTxnIDLen+1, err)
	}
}
