package node

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/parley-p2p/parley/internal/testkit"
	"github.com/parley-p2p/parley/node/peers"
	"github.com/parley-p2p/parley/p2p"
	"github.com/parley-p2p/parley/rooms"
)

// stranger is a hostile libp2p host with its own valid server key: it
// signs its events correctly, but its server has no place in the room.
type stranger struct {
	host   *p2p.Host
	key    ed25519.PrivateKey
	server string
	user   string
}

func newStranger(t *testing.T, near *testNode) *stranger {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	h, err := p2p.New(p2p.Config{Key: key, ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, NoMDNS: true, Bootstrap: near.Addrs()})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	server := rooms.ServerName(key.Public().(ed25519.PublicKey))
	s := &stranger{host: h, key: key, server: server, user: "@mallory:" + server}
	t.Cleanup(s.close)
	return s
}

// close shuts the stranger's host down and lets go of it, so that what it
// held (pubsub keeps its own messages a while) no longer counts in the
// test's heap.
func (s *stranger) close() {
	if s.host != nil {
		s.host.Close()
		s.host = nil
	}
}

// event signs an event of the stranger's for the room, building on prevs.
func (s *stranger) event(t *testing.T, r *peers.Room, typ string, content any, prevs, auth []string, depth int64) *rooms.Event {
	t.Helper()
	raw, err := rooms.MarshalCanonical(content)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := rooms.Build(rooms.ProtoEvent{
		RoomID: r.ID, Sender: s.user, Type: typ, Content: raw,
		PrevEvents: prevs, AuthEvents: auth, Depth: depth, OriginServerTS: time.Now().UnixMilli(),
	}, r.Version, s.server, s.key)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// heapInUse returns the heap in use after a collection.
func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// settledGrowth returns how far the heap in use is above before: at once
// if it is within limit, else after it has settled within limit or the
// deadline has passed, whichever comes first.
func settledGrowth(before uint64, limit int64, timeout time.Duration) int64 {
	deadline := time.Now().Add(timeout)
	for {
		grew := int64(heapInUse()) - int64(before)
		if grew <= limit || time.Now().After(deadline) {
			return grew
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// roomAuth returns the IDs of the room's create and power levels events
// and its extremities, as a stranger that once saw the room would.
func roomAuth(r *peers.Room) (auth, ext []string, depth int64) {
	for _, k := range []rooms.StateKey{{Type: "m.room.create"}, {Type: "m.room.power_levels"}} {
		if id := r.State()[k]; id != "" {
			auth = append(auth, id)
		}
	}
	return auth, slices.Clone(r.Head().Ext), r.Head().Depth
}

// chatWorks has alice send a message and waits for bob to see it.
func chatWorks(t *testing.T, ctx context.Context, alice, bob *mautrix.Client, room id.RoomID, body string) {
	t.Helper()
	if _, err := alice.SendText(ctx, room, body); err != nil {
		t.Fatalf("send %q: %v", body, err)
	}
	s := testkit.NewSyncer(t, ctx, bob)
	s.Until(t, 30*time.Second, "bob to receive "+body, func(resp *mautrix.RespSync) bool {
		jr := resp.Rooms.Join[room]
		if jr == nil {
			return false
		}
		for _, e := range jr.Timeline.Events {
			e.Content.ParseRaw(e.Type)
			if e.Type == event.EventMessage && e.Content.AsMessage().Body == body {
				return true
			}
		}
		return false
	})
}

// TestStrangersEventsAreNeitherStoredNorRelayed: a server with no user in
// a room floods it with 3,000 correctly self-signed 60 KB events. The
// member it reaches ignores every one: none is stored, none is relayed to
// the other member, memory stays bounded, and the members still chat.
func TestStrangersEventsAreNeitherStoredNorRelayed(t *testing.T) {
	// Not parallel: it measures the process's heap, which other tests would grow.
	const flood = 3000
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	a := newTestNode(t, testOpts{})
	evil := newStranger(t, a)
	// b is reachable only through a: anything of the stranger's that b
	// sees, a relayed.
	b := newTestNode(t, testOpts{bootstrap: []*testNode{a}, shun: []peer.ID{evil.host.ID()}})
	alice, bob := a.register(ctx, "alice"), b.register(ctx, "bob")
	room := privateRoom(t, ctx, alice)
	joinThrough(t, ctx, room, alice, bob)
	r := a.getRoom(room.String())
	testkit.WaitFor(t, 20*time.Second, "bob's join to reach a", func() bool { return a.membership(r, bob.UserID.String()) == "join" })

	// The stranger holds the room's keys (say, leaked with a link): only
	// the members filter stands between it and the room.
	if err := evil.host.JoinRoom(room.String(), a.roomKeys(t, room.String()), nil, nil); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 20*time.Second, "a to see the stranger in the room's topic", func() bool {
		return slices.Contains(evil.host.RoomPeers(room.String()), a.PeerID())
	})
	auth, prevs, depth := roomAuth(r)
	pad := strings.Repeat("x", 60000)
	ids := make([]string, flood)
	before := heapInUse()
	droppedA := a.peers.GossipDropped()
	for i := range ids {
		ev := evil.event(t, r, "m.room.message", map[string]string{"msgtype": "m.text", "body": fmt.Sprint(i, pad)}, prevs, auth, depth+1)
		ids[i] = ev.ID()
		if err := evil.host.Publish(ctx, room.String(), ev.JSON()); err != nil {
			t.Fatal(err)
		}
	}
	testkit.WaitFor(t, time.Minute, "a to have judged every event of the flood", func() bool {
		st := a.host.Stats()
		return a.peers.GossipDropped()-droppedA+int64(st.DroppedInbound+st.Strangers) >= flood
	})
	// What the members hold once the stranger is gone (its pubsub keeps
	// its own messages for a few heartbeats after it closes).
	evil.close()
	const limit = 64 << 20
	grew := settledGrowth(before, limit, 30*time.Second)

	stored := 0
	for _, n := range []*testNode{a, b} {
		for _, id := range ids {
			if n.dag.Known(id) {
				stored++
			}
		}
	}
	t.Logf("a ignored %d, dropped %d unvalidated; %d stored; heap grew by %d MiB", a.peers.GossipDropped()-droppedA,
		a.host.Stats().DroppedInbound, stored, grew>>20)
	if stored != 0 {
		t.Errorf("the members stored %d of the stranger's events", stored)
	}
	if got := b.peers.GossipDropped(); got != 0 {
		t.Errorf("b's validator saw %d of the stranger's events: a relayed them", got)
	}
	if grew > limit {
		t.Errorf("heap grew by %d MiB during the flood and stayed there, more than %d MiB", grew>>20, limit>>20)
		// What holds it: this fails only in some full runs, never alone.
		if f, err := os.CreateTemp("", "parley-stranger-heap-*.pprof"); err == nil {
			pprof.WriteHeapProfile(f)
			f.Close()
			t.Logf("heap profile (go tool pprof -sample_index=inuse_space): %s", f.Name())
		}
	}
	chatWorks(t, ctx, alice, bob, room, "still talking")
}
