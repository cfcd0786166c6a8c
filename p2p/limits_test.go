package p2p

import (
	"context"
	"encoding/binary"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// hostileHost is a bare libp2p host with no limits of its own, as an
// attacker would run.
func hostileHost(t testing.TB) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// heapInUse returns the heap in use after a collection.
func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// TestRequestFloodIsBounded: a stranger opens 800 request streams, each
// announcing a 1 MiB body and sending 900 KiB of it, then stalls. The
// streams beyond the per-peer caps are reset, the node holds at most its
// in-flight cap of bodies in memory, and another peer's request is still
// answered.
func TestRequestFloodIsBounded(t *testing.T) {
	const (
		streams = 800
		sent    = 900 << 10
	)
	srv := newTestHost(t)
	srv.Handle(testHandler)
	honest := newTestHost(t)
	honest.AddAddrs(srv.ID(), srv.Addrs())
	evil := hostileHost(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := evil.Connect(ctx, peer.AddrInfo{ID: srv.ID(), Addrs: srv.LibP2P().Addrs()}); err != nil {
		t.Fatal(err)
	}
	before := heapInUse()

	// A request frame: method "echo", then a body frame announcing 1 MiB.
	head := binary.AppendUvarint(nil, 4)
	head = append(head, "echo"...)
	head = binary.AppendUvarint(head, MaxRequestSize)
	body := make([]byte, sent)
	var (
		reset   atomic.Int64 // streams the node cut
		opened  []network.Stream
		mu      sync.Mutex
		writers sync.WaitGroup
	)
	for range streams {
		s, err := evil.NewStream(network.WithAllowLimitedConn(ctx, "attack"), srv.ID(), RequestProtocol)
		if err != nil {
			reset.Add(1)
			continue
		}
		mu.Lock()
		opened = append(opened, s)
		mu.Unlock()
		writers.Add(1)
		go func() {
			defer writers.Done()
			if _, err := s.Write(head); err == nil {
				_, err = s.Write(body)
			}
			// Stall: never send the rest. A read returns only when the
			// node cuts the stream.
			var b [1]byte
			if _, err := s.Read(b[:]); err != nil {
				reset.Add(1)
			}
		}()
	}
	t.Cleanup(func() {
		for _, s := range opened {
			s.Reset()
		}
		writers.Wait()
	})

	// All but the in-flight cap are refused: by the resource manager as
	// they open, or unread once no request slot frees up.
	waitFor(t, 30*time.Second, "the streams beyond the caps to be reset", func() bool {
		return reset.Load() >= streams-maxInflightPerPeer
	})
	grew := int64(heapInUse()) - int64(before)
	t.Logf("%d of %d streams reset; %d refused unread; heap grew by %d MiB", reset.Load(), streams,
		srv.Stats().RequestsRefused, grew>>20)
	if limit := int64(48 << 20); grew > limit {
		t.Errorf("heap grew by %d MiB during the flood, more than %d MiB", grew>>20, limit>>20)
	}

	// An honest peer is still served while the flood holds its slots.
	got, err := honest.Request(ctx, srv.ID(), "echo", []byte("still here"))
	if err != nil || string(got) != "still here" {
		t.Fatalf("honest request during the flood: %q, %v", got, err)
	}
}
