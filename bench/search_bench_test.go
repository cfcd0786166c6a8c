package bench

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"maunium.net/go/mautrix"

	"github.com/parley-p2p/parley/internal/testkit"
)

// BenchmarkSearchThousandRooms: a node holding the fixture of
// BenchmarkThousandRooms (PARLEY_BENCH_ROOMS' largest count, default
// 1000 rooms, of PARLEY_BENCH_EVENTS messages "room I message J"), made
// before it had a search index: it measures the reindex job's walk of
// every room at start-up (until a search finds the tenth message of
// every room; CPU time includes the start-up's), then POST /search over all the rooms: a term in every
// message with a rare one ("message 42", by rank and by recency), and a
// term in no room.
func BenchmarkSearchThousandRooms(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := envInt(b, "PARLEY_BENCH_EVENTS", 100)
	rooms := slices.Max(envInts(b, "PARLEY_BENCH_ROOMS", []int{1000}))
	fixture := roomsFixture(b, rooms, events)
	defer loadAtStart(b)()
	dir := filepath.Join(b.TempDir(), "data")
	if err := copyDir(fixture, dir); err != nil {
		b.Fatalf("copy fixture: %v", err)
	}
	t0, cpu0 := time.Now(), testkit.CPUTime()
	n := startNode(b, dir)
	c := login(b, ctx, n.URL(), ownerName)
	for {
		resp, err := c.Search(ctx, &mautrix.ReqSearch{SearchTerm: "message 10 ", OrderBy: "recent"})
		if err != nil {
			b.Fatal(err)
		}
		// "room 10 message J" of room 10, and "message 10" of the others.
		if resp.Count >= rooms+events-1 {
			break
		}
		if time.Since(t0) > 20*time.Minute {
			b.Fatalf("after 20 minutes a search finds %d of %d rooms' tenth message", resp.Count, rooms)
		}
		time.Sleep(100 * time.Millisecond)
	}
	reindex, reindexCPU := time.Since(t0), testkit.CPUTime()-cpu0
	b.ResetTimer()
	var rank, recent, none []time.Duration
	for range b.N {
		for _, q := range []struct {
			req mautrix.ReqSearch
			out *[]time.Duration
		}{
			{mautrix.ReqSearch{SearchTerm: "message 42 ", OrderBy: "rank"}, &rank},
			{mautrix.ReqSearch{SearchTerm: "message 42 ", OrderBy: "recent"}, &recent},
			{mautrix.ReqSearch{SearchTerm: "nowhere"}, &none},
		} {
			for range 10 {
				t1 := time.Now()
				resp, err := c.Search(ctx, &q.req)
				if err != nil {
					b.Fatal(err)
				}
				*q.out = append(*q.out, time.Since(t1))
				if q.req.SearchTerm != "nowhere" && len(resp.Results) != 10 {
					b.Fatalf("%q found %d results, want a page of 10", q.req.SearchTerm, len(resp.Results))
				}
			}
		}
	}
	b.StopTimer()
	ms := func(ds []time.Duration) float64 {
		slices.Sort(ds)
		return percentile(ds, 0.5)
	}
	b.ReportMetric(reindex.Seconds(), "reindex_s")
	b.ReportMetric(float64(reindex.Microseconds())/float64(rooms*events), "reindex_us/event")
	b.ReportMetric(float64(reindexCPU.Microseconds())/float64(rooms*events), "reindex_cpu_us/event")
	b.ReportMetric(ms(rank), "rank_p50_ms")
	b.ReportMetric(ms(recent), "recent_p50_ms")
	b.ReportMetric(ms(none), "none_p50_ms")
}
