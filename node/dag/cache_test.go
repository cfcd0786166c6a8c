package dag

import (
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/rooms"
)

// TestCachesStayWithinTheirBudgets fills the event and state caches with
// far more than their budgets (events of a few sizes, states of rooms
// large and small) and checks that what they count stays within the
// budgets, and that what they count is the heap they really hold.
func TestCachesStayWithinTheirBudgets(t *testing.T) {
	sender := newRemote("bob").user
	prev := []string{"$prev"}
	auth := []string{"$create", "$power", "$member"}
	// Distinct events without signing each: a fixture event per body.
	var evs []*rooms.Event
	for i := range 6000 {
		body := strings.Repeat("x", []int{10, 300, 3000}[i%3])
		raw, err := json.Marshal(map[string]any{
			"room_id": "!" + strings.Repeat("r", 43), "sender": sender, "type": "m.room.message",
			"content":     map[string]any{"msgtype": "m.text", "body": fmt.Sprintf("%d %s", i, body)},
			"prev_events": prev, "auth_events": auth, "depth": i, "origin_server_ts": i,
		})
		if err != nil {
			t.Fatal(err)
		}
		ev, err := rooms.ParseEventWithID(raw, rooms.V12, fmt.Sprintf("$event%d", i))
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
	}

	// What the estimates count is what the heap holds: weigh 1,000 events
	// as the cache would hold them, before any store runs.
	before := heapBytes()
	probe := make([]*Info, 0, 1000)
	var counted int
	for _, ev := range evs[:1000] {
		ev2, err := rooms.ParseTrusted(ev.JSON(), rooms.V12, ev.ID())
		if err != nil {
			t.Fatal(err)
		}
		i := &Info{Event: ev2, Rec: store.EventRecord{StateAfter: strings.Repeat("s", 44)}}
		probe = append(probe, i)
		counted += i.size()
	}
	held := heapBytes() - before
	runtime.KeepAlive(probe)
	t.Logf("1,000 events: %d bytes counted, %d on the heap", counted, held)
	if held > counted*5/4 {
		t.Errorf("1,000 cached events hold %d bytes of heap but count as %d", held, counted)
	}

	e := newPerfEngine(t, t.TempDir())
	for _, ev := range evs {
		e.events.Put(ev.ID(), &Info{Event: ev})
		if got := e.events.Bytes(); got > eventCacheBytes {
			t.Fatalf("event cache holds %d bytes, budget %d", got, eventCacheBytes)
		}
	}
	if _, ok := e.events.Get(evs[len(evs)-1].ID()); !ok {
		t.Errorf("the newest event is not cached")
	}

	for i := range 20000 {
		m := store.StateMap{}
		for j := range 1 + i%50 {
			m[rooms.StateKey{Type: "m.room.member", StateKey: fmt.Sprintf("@user%d:server%d", j, i)}] = fmt.Sprintf("$%043d", i*100+j)
		}
		e.snapshots.put(fmt.Sprintf("state%d", i), m)
		if held, budget := e.StateCacheBytes(); held > budget {
			t.Fatalf("state cache holds %d bytes, budget %d", held, budget)
		}
	}
}

// heapBytes is the live heap after a collection.
func heapBytes() int {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int(ms.HeapAlloc)
}
