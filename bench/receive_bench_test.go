package bench

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/parley-p2p/parley/internal/testkit"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"
)

// BenchmarkReceiveAllocs: a node receives gossip from another node. The
// sender runs as a child process (the built command), so that this
// process holds only the receiving node, its user's /sync follower, and
// the sender's client. It sends PARLEY_BENCH_RECV messages (default 500)
// with 8 in flight and measures, until every one has reached the
// receiving user's /sync, this process's allocations (runtime.MemStats
// Mallocs and TotalAlloc) and CPU time per received event. The sending
// client's own share is measured first by sending as many messages to a
// room the receiver is not in, and subtracted; the raw figures are
// reported too. The /sync follower's share is not subtracted: a user's
// client follows /sync as it does.
func BenchmarkReceiveAllocs(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	count := envInt(b, "PARLEY_BENCH_RECV", 500)
	defer loadAtStart(b)()

	sender := startProc(b, filepath.Join(b.TempDir(), "sender"))
	alice := register(b, ctx, sender.url, "alice")
	receiver := startNode(b, "", sender.addrs)
	bob := register(b, ctx, receiver.URL(), "bob")
	room := sharedRoom(b, ctx, []*mautrix.Client{alice, bob})
	lonely, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat"})
	if err != nil {
		b.Fatal(err)
	}
	f := follow(b, ctx, bob)
	warm := sendMany(b, ctx, alice, room, "warm-up", 20, 8)
	wctx, wcancel := context.WithTimeout(ctx, time.Minute)
	if missing := f.waitAll(wctx, warm); missing > 0 {
		b.Fatalf("warm-up: %d of %d messages did not arrive", missing, len(warm))
	}
	wcancel()

	var clientAllocs, clientBytes, rawAllocs, rawBytes uint64
	var clientCPU, rawCPU time.Duration
	events, lost := 0, 0
	b.ResetTimer()
	for run := range b.N {
		// The sending client's share, sent where the receiver is not.
		m0, c0 := memStats(), testkit.CPUTime()
		sendMany(b, ctx, alice, lonely.RoomID, fmt.Sprintf("lonely run%d", run), count, 8)
		m1, c1 := memStats(), testkit.CPUTime()
		clientAllocs += m1.Mallocs - m0.Mallocs
		clientBytes += m1.TotalAlloc - m0.TotalAlloc
		clientCPU += c1 - c0

		m0, c0 = memStats(), testkit.CPUTime()
		bodies := sendMany(b, ctx, alice, room, fmt.Sprintf("recv run%d", run), count, 8)
		wctx, wcancel := context.WithTimeout(ctx, time.Minute)
		lost += f.waitAll(wctx, bodies)
		wcancel()
		m1, c1 = memStats(), testkit.CPUTime()
		rawAllocs += m1.Mallocs - m0.Mallocs
		rawBytes += m1.TotalAlloc - m0.TotalAlloc
		rawCPU += c1 - c0
		events += count
	}
	b.StopTimer()
	per := func(v uint64) float64 { return float64(v) / float64(events) }
	b.ReportMetric(per(rawAllocs)-per(clientAllocs), "allocs/event")
	b.ReportMetric((per(rawBytes)-per(clientBytes))/1024, "KiB/event")
	b.ReportMetric(per(rawAllocs), "raw_allocs/event")
	b.ReportMetric(float64((rawCPU-clientCPU).Microseconds())/float64(events), "cpu_us/event")
	b.ReportMetric(float64(rawCPU.Microseconds())/float64(events), "raw_cpu_us/event")
	b.ReportMetric(float64(lost), "lost")
}

// memStats reads the allocation counters after a collection.
func memStats() runtime.MemStats {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m
}

// sendMany sends count messages to room with inFlight sends outstanding
// and returns their bodies.
func sendMany(tb testing.TB, ctx context.Context, c *mautrix.Client, room id.RoomID, prefix string, count, inFlight int) []string {
	tb.Helper()
	bodies := make([]string, count)
	for i := range bodies {
		bodies[i] = fmt.Sprintf("%s m%d", prefix, i)
	}
	var wg sync.WaitGroup
	for w := range inFlight {
		wg.Go(func() {
			for i := w; i < count; i += inFlight {
				if _, err := c.SendText(ctx, room, bodies[i]); err != nil {
					tb.Errorf("send %q: %v", bodies[i], err)
					return
				}
			}
		})
	}
	wg.Wait()
	return bodies
}
