package p2p

import (
	"bytes"
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// exerciseNetwork runs a small network through everything the package does
// and closes it (twice) before returning.
func exerciseNetwork(t *testing.T) {
	hosts, boxes := meshOf(t, 3, testRoom)
	a, b := hosts[0], hosts[1]
	a.OnPeerConnected(func(peer.ID) {})
	b.Handle(testHandler)
	ctx := context.Background()
	if err := a.Publish(ctx, testRoom, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	boxes[1].next(t, 5*time.Second)
	if _, err := a.Request(ctx, b.ID(), "echo", []byte("x")); err != nil {
		t.Fatal(err)
	}
	// A request still in its handler when the host closes.
	hung, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	a.Request(hung, b.ID(), "hang", nil)
	for _, h := range hosts {
		for range 2 {
			if err := h.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// packageGoroutines returns the stacks of goroutines running this package's
// code, other than tests.
func packageGoroutines() []string {
	buf := make([]byte, 1<<22)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		s := string(g)
		if strings.Contains(s, "parley/p2p.") && !strings.Contains(s, "testing.tRunner") {
			out = append(out, s)
		}
	}
	return out
}

func TestCloseLeavesNoGoroutinesBehind(t *testing.T) {
	// The first network starts libp2p's process-wide helpers; count after it.
	t.Run("warm-up", exerciseNetwork)
	waitFor(t, 10*time.Second, "warm-up goroutines to end", func() bool { return len(packageGoroutines()) == 0 })
	base := runtime.NumGoroutine()

	t.Run("network", exerciseNetwork)

	deadline := time.Now().Add(10 * time.Second)
	for {
		ours, n := packageGoroutines(), runtime.NumGoroutine()
		if len(ours) == 0 && n <= base {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines running, %d before; still running package code:\n%s",
				n, base, strings.Join(ours, "\n\n"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}
