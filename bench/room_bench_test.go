package bench

import (
	"context"
	"fmt"
	"os"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/parley-p2p/parley/internal/testkit"
)

// BenchmarkTenNodes: ten nodes in one room, every user sending
// PARLEY_BENCH_MSGS messages (default 50) at once, with
// PARLEY_BENCH_INFLIGHT sends in flight each (default 1, as a chat client
// sends). It reports messages per second delivered
// to every member (first send to the last arrival at the last member's
// /sync), latency from the sender's PUT /send to each other member's
// /sync, deliveries lost, and CPU per delivered message per receiving
// node.
func BenchmarkTenNodes(b *testing.B) {
	nodes := envInt(b, "PARLEY_BENCH_NODES", 10)
	perUser := envInt(b, "PARLEY_BENCH_MSGS", 50)
	benchBurst(b, nodes, perUser, envInt(b, "PARLEY_BENCH_INFLIGHT", 1))
}

// BenchmarkThreeNodesPipelined: three nodes, one user each with 8 sends
// in flight, PARLEY_BENCH_3MSGS messages each (default 300): what the
// nodes carry rather than what a client's round trips allow.
func BenchmarkThreeNodesPipelined(b *testing.B) {
	benchBurst(b, 3, envInt(b, "PARLEY_BENCH_3MSGS", 300), 8)
}

func benchBurst(b *testing.B, nodes, perUser, inFlight int) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	defer loadAtStart(b)()
	cl := newCluster(b, ctx, nodes)
	// One message from each user first, so that every mesh and
	// connection is up before the clock starts.
	if warm := cl.burst(b, ctx, "warm-up", 1, 1); warm.lost > 0 {
		b.Logf("warm-up: %d deliveries lost", warm.lost)
	}
	var total burstResult
	stopProfile := profileBursts(b)
	b.ResetTimer()
	for i := range b.N {
		r := cl.burst(b, ctx, fmt.Sprintf("run%d", i), perUser, inFlight)
		total.msgs += r.msgs
		total.elapsed += r.elapsed
		total.latencies = append(total.latencies, r.latencies...)
		total.sends = append(total.sends, r.sends...)
		total.lost += r.lost
		total.cpu += r.cpu
	}
	b.StopTimer()
	stopProfile()
	total.report(b, nodes-1)
}

// profileBursts starts a CPU profile into PARLEY_BENCH_CPUPROFILE, if
// set, and returns what stops it: unlike -cpuprofile, it leaves out the
// set-up (accounts, joins, catch-up), which costs more than the bursts.
func profileBursts(b *testing.B) (stop func()) {
	path := os.Getenv("PARLEY_BENCH_CPUPROFILE")
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		b.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			b.Error(err)
		}
	}
}

// BenchmarkThreeNodesOneAtATime: three nodes; the first user sends one
// message at a time, waiting until it reaches both other members' /sync
// before the next. It reports latency from PUT /send to each other
// member's /sync, over PARLEY_BENCH_3MSGS/3 messages (default 100).
func BenchmarkThreeNodesOneAtATime(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	defer loadAtStart(b)()
	cl := newCluster(b, ctx, 3)
	count := max(envInt(b, "PARLEY_BENCH_3MSGS", 300)/3, 1)
	if warm := cl.burst(b, ctx, "warm-up", 1, 1); warm.lost > 0 {
		b.Logf("warm-up: %d deliveries lost", warm.lost)
	}
	var lat []time.Duration
	lost := 0
	cpu0 := testkit.CPUTime()
	b.ResetTimer()
	for run := range b.N {
		for i := range count {
			body := fmt.Sprintf("one run%d m%d", run, i)
			start := time.Now()
			if _, err := cl.users[0].SendText(ctx, cl.room, body); err != nil {
				b.Fatal(err)
			}
			wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
			for _, f := range cl.followers[1:] {
				if f.waitAll(wctx, []string{body}) > 0 {
					lost++
					continue
				}
				at, _ := f.arrived(body)
				lat = append(lat, at.Sub(start))
			}
			wcancel()
		}
	}
	b.StopTimer()
	reportLatency(b, "", lat)
	b.ReportMetric(float64(lost), "lost")
	b.ReportMetric(float64((testkit.CPUTime()-cpu0).Microseconds())/float64(count*b.N*2), "cpu_us/msg/recv")
}
