package dag

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"

	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/rooms"
)

// BenchmarkThousandRoomsHeap measures the engine's side of the issue's
// memory target: a node holding 1,000 rooms of 100 events, restarted,
// then read as an initial sync reads it (each room's current state and
// its last 10 events). It reports the live heap and the caches' bytes
// after a collection, and the process's resident memory (which also
// holds Badger's tables and what the runtime has not returned yet).
// Run it once: go test -run XXX -bench ThousandRooms -benchtime 1x ./node/dag
func BenchmarkThousandRoomsHeap(b *testing.B) {
	const nRooms, perRoom = 1000, 100
	dir := b.TempDir()
	func() {
		st, err := store.Open(dir, store.Options{MinFree: -1})
		if err != nil {
			b.Fatal(err)
		}
		defer st.Close()
		e := New(Config{Store: st, Key: perfKey("engine")})
		defer e.Close()
		for range nRooms {
			r := newPerfRoom(b, e, rooms.V12)
			sendMessages(b, e, r, perRoom-5) // the create event and four state events
		}
	}()
	for b.Loop() {
		st, err := store.Open(dir, store.Options{MinFree: -1})
		if err != nil {
			b.Fatal(err)
		}
		e := New(Config{Store: st, Key: perfKey("engine")})
		base := heapBytes()
		rs, err := e.Load()
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range rs {
			for _, id := range r.State() {
				if _, err := e.Event(id); err != nil {
					b.Fatal(err)
				}
			}
			var tl []store.TimelineEntry
			if err := st.View(func(t *store.Txn) error {
				tl, err = t.Timeline(r.ID, 0, 0, false, 10)
				return err
			}); err != nil {
				b.Fatal(err)
			}
			for _, x := range tl {
				if _, err := e.Event(x.EventID); err != nil {
					b.Fatal(err)
				}
			}
		}
		live := heapBytes()
		if f := os.Getenv("DAGPERF_HEAP_PROFILE"); f != "" {
			if w, err := os.Create(f); err == nil {
				pprof.WriteHeapProfile(w)
				w.Close()
			}
		}
		debug.FreeOSMemory()
		b.ReportMetric(float64(live-base)/1e6, "engine-heap-MB")
		b.ReportMetric(float64(e.events.Bytes())/1e6, "event-cache-MB")
		held, _ := e.StateCacheBytes()
		b.ReportMetric(float64(held)/1e6, "state-cache-MB")
		b.ReportMetric(float64(live)/1e6, "heap-MB")
		b.ReportMetric(residentMB(), "rss-MB")
		runtime.KeepAlive(rs)
		e.Close()
		st.Close()
	}
}

// residentMB is the process's resident memory (Linux), or 0.
func residentMB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1e3
		}
	}
	return 0
}
