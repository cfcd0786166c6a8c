package dag

import (
	"unsafe"

	"github.com/parley-p2p/parley/rooms"
)

// Memory budgets of the engine's caches.
//
// The target (issue 10) is a node holding 1,000 rooms of 100 events at
// no more than 80 MB resident after an initial sync. A fresh node is
// about 28 MB resident (runtime, libp2p, Badger's tables and caches),
// and Go's collector lets the heap grow to about twice what is live
// before it collects (GOGC=100), so each live megabyte the engine keeps
// costs about two resident ones. That leaves some 25 MB of live data
// for everything that grows with rooms: the rooms' heads (their current
// states), the client API's sync state, and these caches. They get 18
// MiB between them, counted in real bytes (rooms.Event.Footprint and
// StateBytes, which TestCachesStayWithinTheirBudgets checks against the
// heap):
//
//   - events, 12 MiB: an event in memory is 2-4 KB (its JSON and its
//     parsed tree), so about 4,000 events. The hot set is what admission
//     and /sync read again and again: in each active room the auth events
//     of its senders (create, power levels, join rules, a member event
//     each) and the last few events at its head, 10 to 15 events a room.
//     An initial /sync, which renders some 26 events a room once, reads
//     those it does not find here from the store without caching them
//     (Engine.Cached), so it does not push the hot set out.
//     12 MiB keeps that for some 300 active rooms of the 1,000; a room
//     that wakes up again pays a store read and rooms.ParseTrusted per
//     event (tens of microseconds), not a network fetch.
//   - states, 6 MiB: a state of a small room is 10-20 entries of about
//     150 bytes, 2-3 KB, so some 2,500 states: the current state and
//     the state before the last state event of every room of 1,000.
//     The current states are held by the rooms' heads anyway; the cache
//     spares the store reads of the snapshots events are built on.
const (
	eventCacheBytes = 12 << 20
	stateCacheBytes = 6 << 20
)

// infoOverhead is what an Info adds to its event: the Info itself and
// the strings of its record (state IDs, transaction).
const infoOverhead = int(unsafe.Sizeof(Info{})) + 2*44

// eventSize is the bytes a cached event keeps alive.
func eventSize(ev *rooms.Event) int { return ev.Footprint() }

func (i *Info) size() int {
	return eventSize(i.Event) + infoOverhead + len(i.Rec.TxnID) + len(i.Rec.TxnDevice) + len(i.Rec.Rejected) + len(i.Rec.SoftFailed) + len(i.Rec.Plain)
}
