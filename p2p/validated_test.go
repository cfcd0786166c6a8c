package p2p

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// take is inbox.receive as a Receiver: it drops the validated value.
func (b *inbox) take(from peer.ID, data []byte, _ any) { b.receive(from, data) }

// parsed stands for what a real validator learns about a message (a parsed,
// verified event); the test checks that the Receiver gets that very value.
type parsed struct {
	text string
	n    int // which call of the validator made it
}

// TestReceiverGetsTheValidatorsValue: over real hosts on loopback, the
// Receiver gets, with each message, the pointer the Validator returned for
// that message, and nil when the Validator returned nil or the room has no
// Validator.
func TestReceiverGetsTheValidatorsValue(t *testing.T) {
	a, b, c := newTestHost(t), newTestHost(t), newTestHost(t)
	connect(t, a, b)
	connect(t, b, c)
	connect(t, a, c)

	type got struct {
		from      peer.ID
		data      string
		validated any
	}
	gotB := make(chan got, 64)
	gotC := make(chan got, 64)
	returned := make(chan *parsed, 64) // what B's validator handed out, in order
	var calls atomic.Int32
	validate := func(_ context.Context, _ peer.ID, data []byte) (Verdict, any) {
		n := int(calls.Add(1))
		if strings.HasPrefix(string(data), "plain") {
			return Accept, nil
		}
		if strings.HasPrefix(string(data), "ignore") {
			return Ignore, &parsed{text: "never delivered"}
		}
		p := &parsed{text: string(data), n: n}
		returned <- p
		return Accept, p
	}
	if err := b.JoinRoom(testRoom, testKeys(testRoom), validate, func(from peer.ID, data []byte, v any) {
		gotB <- got{from, string(data), v}
	}); err != nil {
		t.Fatal(err)
	}
	if err := c.JoinRoom(testRoom, testKeys(testRoom), nil, func(from peer.ID, data []byte, v any) {
		gotC <- got{from, string(data), v}
	}); err != nil {
		t.Fatal(err)
	}
	aGot := newInbox(64)
	if err := a.JoinRoom(testRoom, testKeys(testRoom), nil, aGot.take); err != nil {
		t.Fatal(err)
	}
	for _, h := range []*Host{b, c} {
		waitFor(t, 10*time.Second, "A to see the others in the room", inRoom(a, testRoom, h.ID()))
	}

	ctx := context.Background()
	msgs := []string{"event 1", "plain 2", "ignore 3", "event 4", "event 5"}
	for _, m := range msgs {
		if err := a.Publish(ctx, testRoom, []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	next := func(ch chan got, who string) got {
		t.Helper()
		select {
		case g := <-ch:
			return g
		case <-time.After(10 * time.Second):
			t.Fatalf("%s received nothing", who)
			return got{}
		}
	}
	for _, m := range msgs {
		if strings.HasPrefix(m, "ignore") {
			continue
		}
		g := next(gotB, "B")
		// from is the peer that handed the message on: A, or C when C
		// forwarded it first.
		if (g.from != a.ID() && g.from != c.ID()) || g.data != m {
			t.Fatalf("B got %q from %s, want %q from A or C", g.data, g.from.ShortString(), m)
		}
		if strings.HasPrefix(m, "plain") {
			if g.validated != nil {
				t.Errorf("B got %#v with %q, want nil (the validator returned nil)", g.validated, m)
			}
			continue
		}
		want := <-returned
		if p, ok := g.validated.(*parsed); !ok || p != want {
			t.Errorf("B got %#v with %q, want the validator's %p %+v", g.validated, m, want, *want)
		}
	}
	for _, m := range msgs {
		g := next(gotC, "C")
		if g.data != m || g.validated != nil {
			t.Errorf("C (no validator) got %q with %#v, want %q with nil", g.data, g.validated, m)
		}
	}
	select {
	case p := <-returned:
		t.Errorf("the validator returned %+v that no message carried", *p)
	default:
	}
	if calls := calls.Load(); calls != 5 {
		t.Errorf("B's validator ran %d times for 5 messages, want once each", calls)
	}
	// Our own publishes never come back to us, with or without a value.
	select {
	case m := <-aGot.ch:
		t.Errorf("A received its own message %+v", m)
	default:
	}
}
