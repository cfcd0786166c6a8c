package p2p

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"
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

// TestJunkSubscriptionsAreBounded: a stranger announces 100,000 made-up
// room topics. The node tracks at most maxOtherTopicsPerPeer of them, its
// heap barely moves, and the stranger's announcement of a room the node is
// in still counts.
func TestJunkSubscriptionsAreBounded(t *testing.T) {
	const (
		junk     = 100000
		perRPC   = 1000
		protocol = "/meshsub/1.1.0"
	)
	srv := newTestHost(t)
	if err := srv.JoinRoom(testRoom, testKeys(testRoom), nil, nil); err != nil {
		t.Fatal(err)
	}
	evil := hostileHost(t)
	// Take pubsub's stream to us and ignore what comes on it.
	evil.SetStreamHandler(protocol, func(s network.Stream) { io.Copy(io.Discard, s) })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := evil.Connect(ctx, peer.AddrInfo{ID: srv.ID(), Addrs: srv.LibP2P().Addrs()}); err != nil {
		t.Fatal(err)
	}
	s, err := evil.NewStream(ctx, srv.ID(), protocol)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Reset()
	before := heapInUse()
	send := func(topics ...string) {
		rpc := &pb.RPC{}
		for _, tp := range topics {
			rpc.Subscriptions = append(rpc.Subscriptions, &pb.RPC_SubOpts{Subscribe: proto.Bool(true), Topicid: proto.String(tp)})
		}
		raw, err := proto.Marshal(rpc)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Write(append(binary.AppendUvarint(nil, uint64(len(raw))), raw...)); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < junk; i += perRPC {
		topics := make([]string, perRPC)
		for j := range topics {
			topics[j] = testTopic(fmt.Sprintf("!junk-%06d:nowhere", i+j))
		}
		send(topics...)
	}
	// RPCs on a stream are handled in order: once the last is, all are.
	send(testTopic(testRoom))
	waitFor(t, 30*time.Second, "the node to see the stranger in its room", inRoom(srv, testRoom, evil.ID()))

	grew := int64(heapInUse()) - int64(before)
	tracked := srv.subs.otherTopics()
	t.Logf("%d of %d junk topics tracked; heap grew by %d KiB", tracked, junk, grew>>10)
	if tracked > maxOtherTopicsPerPeer {
		t.Errorf("%d junk topics tracked for one peer, more than %d", tracked, maxOtherTopicsPerPeer)
	}
	if limit := int64(4 << 20); grew > limit {
		t.Errorf("the junk grew the heap by %d KiB, more than %d KiB", grew>>10, limit>>10)
	}
}

// TestForgersAreGraylisted: a peer that relays three messages the room's
// validator rejects falls below the graylist threshold, after which its
// RPCs are dropped unread; an honest peer's score stays at or above zero
// and its messages are still delivered.
func TestForgersAreGraylisted(t *testing.T) {
	victim := newTestHost(t)
	forger := newTestHost(t)
	honest := newTestHost(t)
	var rejected atomic.Int64
	box := newInbox(16)
	err := victim.JoinRoom(testRoom, testKeys(testRoom), func(_ context.Context, _ peer.ID, data []byte) (Verdict, any) {
		if string(data) == "forged" {
			rejected.Add(1)
			return Reject, nil
		}
		return Accept, nil
	}, box.take)
	if err != nil {
		t.Fatal(err)
	}
	// An honest node validates as the victim does, so it never relays the
	// forgeries (were it to, it would be penalised for them too).
	refuseForged := func(_ context.Context, _ peer.ID, data []byte) (Verdict, any) {
		if string(data) == "forged" {
			return Reject, nil
		}
		return Accept, nil
	}
	for _, h := range []*Host{forger, honest} {
		v := Validator(refuseForged)
		if h == forger {
			v = nil
		}
		if err := h.JoinRoom(testRoom, testKeys(testRoom), v, nil); err != nil {
			t.Fatal(err)
		}
		connect(t, h, victim)
		waitFor(t, 10*time.Second, "the victim to see the peer in the room", inRoom(victim, testRoom, h.ID()))
		waitFor(t, 10*time.Second, "the peer to see the victim in the room", inRoom(h, testRoom, victim.ID()))
	}
	ctx := context.Background()
	for range 3 {
		if err := forger.Publish(ctx, testRoom, []byte("forged")); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "the forgeries to be rejected", func() bool { return rejected.Load() == 3 })
	waitFor(t, 10*time.Second, "the forger to be graylisted", func() bool {
		return victim.tracer.score(forger.ID()) < graylistThreshold
	})
	// The honest peer's messages still arrive. Its first one after the
	// forger is graylisted is sometimes lost (about 1 run in 5 on a loaded
	// machine, before and after the validator change; the forger holds a
	// copy it relays): so it publishes again while none has arrived.
	var got received
	for try := 0; got.data == "" && try < 3; try++ {
		if err := honest.Publish(ctx, testRoom, []byte("hello")); err != nil {
			t.Fatal(err)
		}
		select {
		case got = <-box.ch:
		case <-time.After(5 * time.Second):
		}
	}
	if got.data != "hello" || got.from != honest.ID() {
		t.Errorf("got %q from %s, want the honest peer's hello", got.data, got.from)
	}
	if s := victim.tracer.score(honest.ID()); s < 0 {
		t.Errorf("the honest peer's score is %v", s)
	}
}
