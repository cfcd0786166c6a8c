package p2p

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// TestAPeerNotAllowedInARoomGetsNoneOfItsMessagesUntilAllowed: a peer
// that knows a room's topic and key, but that the room's members filter
// refuses, gets none of our messages (its subscription is dropped, so
// flood publishing skips it) and what it sends is ignored unread. Once
// the filter allows it, it is asked to announce itself again, and from
// then on it gets the room's messages.
func TestAPeerNotAllowedInARoomGetsNoneOfItsMessagesUntilAllowed(t *testing.T) {
	ctx := context.Background()
	a, b := newTestHost(t), newTestHost(t)
	var allowB atomic.Bool
	a.SetRoomMembers(testRoom, func(p peer.ID) bool { return p == b.ID() && allowB.Load() })
	boxA, boxB := newInbox(16), newInbox(16)
	if err := a.JoinRoom(testRoom, testKeys(testRoom), nil, boxA.take); err != nil {
		t.Fatal(err)
	}
	if err := b.JoinRoom(testRoom, testKeys(testRoom), nil, boxB.take); err != nil {
		t.Fatal(err)
	}
	connect(t, a, b)
	// b sees a's subscription; a drops b's.
	waitFor(t, 10*time.Second, "b to see a in the room", inRoom(b, testRoom, a.ID()))
	if err := b.Publish(ctx, testRoom, []byte("from b, refused")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "a to ignore b's message", func() bool { return a.Stats().Strangers > 0 })
	if err := a.Publish(ctx, testRoom, []byte("not for b")); err != nil {
		t.Fatal(err)
	}
	if hasPeer(a.RoomPeers(testRoom), b.ID()) {
		t.Fatal("a keeps the subscription of a peer its filter refuses")
	}

	allowB.Store(true)
	a.RoomMembersChanged(testRoom)
	waitFor(t, 20*time.Second, "a to take b's subscription once b is allowed", inRoom(a, testRoom, b.ID()))
	if err := a.Publish(ctx, testRoom, []byte("for b")); err != nil {
		t.Fatal(err)
	}
	got := boxB.next(t, 10*time.Second)
	if got.data != "for b" {
		t.Errorf("b's first message from a is %q, want the one sent once it was allowed", got.data)
	}
	select {
	case m := <-boxA.ch:
		t.Errorf("a delivered %q, a message from a peer it refused", m.data)
	default:
	}
	// Asking b to announce itself again did not make b forget a's
	// subscription: b's messages reach a.
	waitFor(t, 5*time.Second, "b to see a in the room", inRoom(b, testRoom, a.ID()))
	if err := b.Publish(ctx, testRoom, []byte("from b, allowed")); err != nil {
		t.Fatal(err)
	}
	if got := boxA.next(t, 5*time.Second); got.data != "from b, allowed" {
		t.Errorf("a's first message from b is %q, want the one sent once b was allowed", got.data)
	}
	if a.PathStats().Resyncs == 0 {
		t.Error("no resync counted for the rehello")
	}
}
