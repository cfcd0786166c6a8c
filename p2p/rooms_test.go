package p2p

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

const testRoom = "!room:test"

// meshOf starts n hosts, all connected to each other, and joins them to room,
// returning their inboxes. It waits until every host sees every other in the
// room, so that a publish reaches everyone directly.
func meshOf(t testing.TB, n int, room string) ([]*Host, []*inbox) {
	t.Helper()
	hosts := make([]*Host, n)
	boxes := make([]*inbox, n)
	for i := range hosts {
		hosts[i] = newTestHost(t)
		boxes[i] = newInbox(4096)
	}
	for i := range hosts {
		for j := i + 1; j < n; j++ {
			connect(t, hosts[i], hosts[j])
		}
	}
	for i, h := range hosts {
		if err := h.JoinRoom(room, testKeys(room), nil, boxes[i].take); err != nil {
			t.Fatal(err)
		}
	}
	for _, h := range hosts {
		for _, o := range hosts {
			if h != o {
				waitFor(t, 10*time.Second, "room membership to spread", inRoom(h, room, o.ID()))
			}
		}
	}
	return hosts, boxes
}

func TestPublishReachesTheOtherMembers(t *testing.T) {
	hosts, boxes := meshOf(t, 3, testRoom)
	a, b := hosts[0], hosts[1]
	ctx := context.Background()

	if err := a.Publish(ctx, testRoom, []byte("hello from A")); err != nil {
		t.Fatal(err)
	}
	// from is the peer that delivered a message: its author, or, in this
	// full mesh, the third member when its relayed copy arrives first.
	for i, box := range boxes[1:] {
		m := box.next(t, 5*time.Second)
		if m.data != "hello from A" || m.from == hosts[i+1].ID() {
			t.Errorf("host %d got %+v, want A's message from another member", i+1, m)
		}
	}
	// Our own publishes never come back: the first thing A receives is B's.
	if err := b.Publish(ctx, testRoom, []byte("hello from B")); err != nil {
		t.Fatal(err)
	}
	if m := boxes[0].next(t, 5*time.Second); m.data != "hello from B" || m.from == a.ID() {
		t.Errorf("A got %+v, want B's message from another member", m)
	}
	if m := boxes[2].next(t, 5*time.Second); m.data != "hello from B" || m.from == hosts[2].ID() {
		t.Errorf("C got %+v, want B's message from another member", m)
	}
	if got := len(a.RoomPeers(testRoom)); got != 2 {
		t.Errorf("A sees %d room peers, want 2", got)
	}
}

func TestRejectedMessagesAreNeitherDeliveredNorRelayed(t *testing.T) {
	// A chain A - B - C: A and C refuse each other, so whatever C receives
	// from A was relayed by B.
	gateA, gateC := newBlockGater(), newBlockGater()
	a := newTestHost(t, func(c *Config) { c.Gater = gateA })
	b := newTestHost(t)
	c := newTestHost(t, func(c *Config) { c.Gater = gateC })
	gateA.block(c.ID())
	gateC.block(a.ID())
	connect(t, a, b)
	connect(t, b, c)

	var rejected atomic.Int32
	rejectBad := func(_ context.Context, from peer.ID, data []byte) (Verdict, any) {
		if from != a.ID() {
			t.Errorf("validator saw author %s, want A", from)
		}
		if bytes.HasPrefix(data, []byte("bad")) {
			rejected.Add(1)
			return Reject, nil
		}
		return Accept, nil
	}
	boxB, boxC := newInbox(16), newInbox(16)
	if err := c.JoinRoom(testRoom, testKeys(testRoom), nil, boxC.take); err != nil {
		t.Fatal(err)
	}
	if err := b.JoinRoom(testRoom, testKeys(testRoom), rejectBad, boxB.take); err != nil {
		t.Fatal(err)
	}
	if err := a.JoinRoom(testRoom, testKeys(testRoom), nil, nil); err != nil {
		t.Fatal(err)
	}
	// A publishes straight to the members it knows of (B); B relays to its
	// mesh, which must include C by then.
	waitFor(t, 10*time.Second, "A to see B in the room", inRoom(a, testRoom, b.ID()))
	waitFor(t, 10*time.Second, "C in B's mesh", func() bool { return hasPeer(b.meshPeers(testRoom), c.ID()) })

	ctx := context.Background()
	for _, msg := range []string{"bad 1", "good 1", "bad 2", "good 2"} {
		if err := a.Publish(ctx, testRoom, []byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	// Per-sender order holds along the chain, so had B let a bad message
	// through, it would arrive before the good one that follows it. A
	// message names the peer that delivered it: A to B, B to C.
	for name, box := range map[string]*inbox{"B": boxB, "C": boxC} {
		via := map[string]peer.ID{"B": a.ID(), "C": b.ID()}[name]
		for _, want := range []string{"good 1", "good 2"} {
			select {
			case m := <-box.ch:
				if m.data != want || m.from != via {
					t.Fatalf("%s got %q from %s, want %q from %s", name, m.data, m.from, want, via)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("%s got nothing, want %q; B sees %v in the room, C sees %v, B connected to %v", name, want,
					b.RoomPeers(testRoom), c.RoomPeers(testRoom), b.ConnectedPeers())
			}
		}
	}
	if n := rejected.Load(); n != 2 {
		t.Errorf("B's validator rejected %d messages, want 2", n)
	}
	if connected(a, c)() {
		t.Error("A and C are connected: the test did not build a chain")
	}
}

func TestBurstOfPublishesAllArriveInOrder(t *testing.T) {
	const n = 2000
	hosts, boxes := meshOf(t, 3, testRoom)
	a := hosts[0]
	ctx := context.Background()
	published := make(chan error, 1)
	go func() {
		for i := range n {
			if err := a.Publish(ctx, testRoom, []byte(fmt.Sprintf("msg %d %s", i, strings.Repeat("x", 200)))); err != nil {
				published <- fmt.Errorf("publish %d: %w", i, err)
				return
			}
		}
		published <- nil
	}()
	for h, box := range boxes[1:] {
		for i := range n {
			m := box.next(t, 10*time.Second)
			if want := fmt.Sprintf("msg %d ", i); !strings.HasPrefix(m.data, want) {
				t.Fatalf("host %d: message %d is %.20q, want %q...", h+1, i, m.data, want)
			}
		}
	}
	if err := <-published; err != nil {
		t.Fatal(err)
	}
	for i, h := range hosts {
		if s := h.Stats(); s != (Stats{}) {
			t.Errorf("host %d dropped messages: %+v", i, s)
		}
	}
}

func TestJoinRoomIsIdempotentAndLeaveRoomStopsDelivery(t *testing.T) {
	hosts, boxes := meshOf(t, 2, testRoom)
	a, b := hosts[0], hosts[1]
	if err := b.JoinRoom(testRoom, testKeys(testRoom), nil, nil); err != nil {
		t.Fatalf("second JoinRoom: %v", err)
	}
	ctx := context.Background()
	if err := a.Publish(ctx, testRoom, []byte("one")); err != nil {
		t.Fatal(err)
	}
	if m := boxes[1].next(t, 5*time.Second); m.data != "one" {
		t.Fatalf("B got %+v, want \"one\" to the first receiver", m)
	}
	if err := b.LeaveRoom(testRoom); err != nil {
		t.Fatal(err)
	}
	if err := b.LeaveRoom(testRoom); err != nil {
		t.Fatalf("LeaveRoom of a room not joined: %v", err)
	}
	waitFor(t, 10*time.Second, "A to see B leave", func() bool { return !hasPeer(a.RoomPeers(testRoom), b.ID()) })
	if err := b.Publish(ctx, testRoom, []byte("x")); !errors.Is(err, ErrNotJoined) {
		t.Errorf("Publish after LeaveRoom = %v, want ErrNotJoined", err)
	}
	// Rejoining works, with the new receiver.
	box := newInbox(4)
	if err := b.JoinRoom(testRoom, testKeys(testRoom), nil, box.take); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "A to see B back", inRoom(a, testRoom, b.ID()))
	if err := a.Publish(ctx, testRoom, []byte("two")); err != nil {
		t.Fatal(err)
	}
	if m := box.next(t, 5*time.Second); m.data != "two" {
		t.Fatalf("B got %+v after rejoining", m)
	}
	select {
	case m := <-boxes[1].ch:
		t.Errorf("the receiver of the left room still got %+v", m)
	default:
	}
}

func TestPublishRefusesOversizedMessages(t *testing.T) {
	h := newTestHost(t)
	if err := h.JoinRoom(testRoom, testKeys(testRoom), nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := h.Publish(context.Background(), testRoom, make([]byte, MaxMessageSize+1)); err == nil {
		t.Fatal("Publish of an oversized message succeeded")
	}
}

func TestPanickingCallbacksDoNotKillTheHost(t *testing.T) {
	hosts, _ := meshOf(t, 2, "!other")
	a, b := hosts[0], hosts[1]
	box := newInbox(4)
	if err := b.JoinRoom(testRoom, testKeys(testRoom),
		func(_ context.Context, _ peer.ID, data []byte) (Verdict, any) {
			if string(data) == "panic in validator" {
				panic("validator")
			}
			return Accept, nil
		},
		func(from peer.ID, data []byte, _ any) {
			if string(data) == "panic in receiver" {
				panic("receiver")
			}
			box.receive(from, data)
		}); err != nil {
		t.Fatal(err)
	}
	if err := a.JoinRoom(testRoom, testKeys(testRoom), nil, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "A to see B in the room", inRoom(a, testRoom, b.ID()))
	for _, msg := range []string{"panic in validator", "panic in receiver", "fine"} {
		if err := a.Publish(context.Background(), testRoom, []byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	if m := box.next(t, 5*time.Second); m.data != "fine" {
		t.Fatalf("got %+v, want \"fine\"", m)
	}
}
