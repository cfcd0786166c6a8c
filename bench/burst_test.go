package bench

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/parley-p2p/parley/internal/testkit"
	"github.com/parley-p2p/parley/node"
)

// cluster is n in-process nodes with one user each, all joined to one
// room, each user's /sync followed.
type cluster struct {
	nodes     []*node.Node
	users     []*mautrix.Client
	followers []*follower
	room      id.RoomID
}

// newCluster starts n nodes that bootstrap from the first, registers a
// user on each, and joins them all to one room.
func newCluster(tb testing.TB, ctx context.Context, n int) *cluster {
	tb.Helper()
	cl := &cluster{}
	first := startNode(tb, "")
	cl.nodes = append(cl.nodes, first)
	for range n - 1 {
		cl.nodes = append(cl.nodes, startNode(tb, "", first.Addrs()))
	}
	for i, nd := range cl.nodes {
		cl.users = append(cl.users, register(tb, ctx, nd.URL(), fmt.Sprintf("user%d", i)))
	}
	cl.room = sharedRoom(tb, ctx, cl.users)
	for _, u := range cl.users {
		cl.followers = append(cl.followers, follow(tb, ctx, u))
	}
	return cl
}

// burstResult is what one burst measured.
type burstResult struct {
	msgs      int             // messages sent
	elapsed   time.Duration   // first send to the last arrival at every other member
	latencies []time.Duration // send to each other member's /sync, per delivery
	sends     []time.Duration // each PUT /send's round trip
	lost      int             // deliveries (message, member) that never arrived
	cpu       time.Duration   // this process's CPU time over the burst
}

// burst has every user send perUser messages at once, each with inFlight
// sends outstanding, and waits (up to a deadline) for every message to
// reach every other member's /sync.
func (cl *cluster) burst(tb testing.TB, ctx context.Context, tag string, perUser, inFlight int) burstResult {
	tb.Helper()
	type sent struct {
		body   string
		sender int
	}
	var all []sent
	for s := range cl.users {
		for i := range perUser {
			all = append(all, sent{fmt.Sprintf("%s s%d m%d", tag, s, i), s})
		}
	}
	var mu sync.Mutex
	start := map[string]time.Time{}
	var sends []time.Duration

	cpu0 := testkit.CPUTime()
	t0 := time.Now()
	var wg sync.WaitGroup
	for s, u := range cl.users {
		for w := range inFlight {
			wg.Go(func() {
				for i := w; i < perUser; i += inFlight {
					body := fmt.Sprintf("%s s%d m%d", tag, s, i)
					t := time.Now()
					mu.Lock()
					start[body] = t
					mu.Unlock()
					if _, err := u.SendText(ctx, cl.room, body); err != nil {
						tb.Errorf("send %q: %v", body, err)
						return
					}
					mu.Lock()
					sends = append(sends, time.Since(t))
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()

	// Wait for every other member to have every message, for at most a
	// minute after the last send returned; what has not arrived by then is
	// lost.
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for r, f := range cl.followers {
		var want []string
		for _, m := range all {
			if m.sender != r {
				want = append(want, m.body)
			}
		}
		f.waitAll(wctx, want)
	}
	res := burstResult{msgs: len(all), cpu: testkit.CPUTime() - cpu0, sends: sends}
	var last time.Time
	for r, f := range cl.followers {
		for _, m := range all {
			if m.sender == r {
				continue
			}
			at, ok := f.arrived(m.body)
			if !ok {
				res.lost++
				continue
			}
			res.latencies = append(res.latencies, at.Sub(start[m.body]))
			if at.After(last) {
				last = at
			}
		}
	}
	res.elapsed = last.Sub(t0)
	return res
}

// report reports a burst's figures: delivered msg/s, latency percentiles,
// lost deliveries, and CPU per delivered message per receiving node.
func (r burstResult) report(b *testing.B, receivers int) {
	if r.elapsed > 0 {
		b.ReportMetric(float64(r.msgs)/r.elapsed.Seconds(), "msg/s")
	}
	reportLatency(b, "", r.latencies)
	slices.Sort(r.sends)
	b.ReportMetric(percentile(r.sends, 0.5), "send_p50_ms")
	b.ReportMetric(float64(r.lost), "lost")
	if r.lost > 0 {
		b.Logf("LOST %d of %d deliveries", r.lost, r.msgs*receivers)
	}
	// The CPU figure is the whole test process's: the nodes, and also
	// the clients that send and follow /sync.
	b.ReportMetric(float64(r.cpu.Microseconds())/float64(r.msgs*receivers), "cpu_us/msg/recv")
}
