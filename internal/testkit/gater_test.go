package testkit

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

func newGatedHost(t *testing.T) Gated {
	t.Helper()
	g := &Gater{}
	h, err := libp2p.New(
		libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"),
		libp2p.ConnectionGater(g),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := h.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return Gated{Host: h, Gater: g}
}

func dial(a, b Gated) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return a.Host.Connect(ctx, peer.AddrInfo{ID: b.Host.ID(), Addrs: b.Host.Addrs()})
}

// Four hosts, all connected, are split two and two: each half keeps its
// own connection, no dial crosses the split in either direction, and once
// the gaters heal a dial crosses again. The hosts leave no goroutines.
func TestSplitCutsANetworkInTwoUntilItHeals(t *testing.T) {
	CheckGoroutines(t)
	var n [4]Gated
	for i := range n {
		n[i] = newGatedHost(t)
	}
	for i := range n {
		for j := i + 1; j < len(n); j++ {
			if err := dial(n[i], n[j]); err != nil {
				t.Fatalf("dial %d to %d: %v", i, j, err)
			}
		}
	}
	left, right := n[:2], n[2:]
	Split(t, left, right)

	for _, half := range [][]Gated{left, right} {
		if half[0].Host.Network().Connectedness(half[1].Host.ID()) != network.Connected {
			t.Error("a half lost its own connection")
		}
	}
	for _, pair := range [][2]Gated{{left[0], right[0]}, {right[1], left[1]}} {
		if err := dial(pair[0], pair[1]); err == nil {
			t.Error("a dial crossed the split")
		}
	}
	if !left[0].Gater.Blocks(right[1].Host.ID()) || left[0].Gater.Blocks(left[1].Host.ID()) {
		t.Error("a gater blocks the wrong peers")
	}

	for _, g := range n {
		g.Gater.Heal()
	}
	if err := dial(left[0], right[0]); err != nil {
		t.Errorf("dial after healing: %v", err)
	}
	right[1].Gater.Block(left[1].Host.ID())
	right[1].Gater.Unblock(left[1].Host.ID())
	if err := dial(right[1], left[1]); err != nil {
		t.Errorf("dial after unblocking: %v", err)
	}
}
