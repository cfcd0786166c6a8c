package node

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/parley-p2p/parley/internal/testkit"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
)

// arrivals follows a user's /sync in the background and records when each
// message body first arrived.
type arrivals struct {
	mu   sync.Mutex
	at   map[string]time.Time
	wake chan struct{}
}

func follow(ctx context.Context, tb testing.TB, c *mautrix.Client) *arrivals {
	a := &arrivals{at: map[string]time.Time{}, wake: make(chan struct{}, 1)}
	s := testkit.NewSyncer(tb, ctx, c)
	if _, err := s.Next(ctx, 0); err != nil {
		tb.Fatal(err)
	}
	go func() {
		for ctx.Err() == nil {
			since := s.Since
			resp, err := s.Next(ctx, 30*time.Second)
			if err != nil {
				continue
			}
			now := time.Now()
			for roomID, jr := range resp.Rooms.Join {
				evs := jr.Timeline.Events
				if jr.Timeline.Limited {
					// More arrived than the filter's limit: page back over
					// the gap, as a client does.
					from := jr.Timeline.PrevBatch
					for from != "" {
						page, err := c.Messages(ctx, roomID, from, since, mautrix.DirectionBackward, nil, 100)
						if err != nil {
							break
						}
						evs = append(evs, page.Chunk...)
						from = page.End
					}
				}
				a.mu.Lock()
				for _, ev := range evs {
					if ev.Type != event.EventMessage {
						continue
					}
					ev.Content.ParseRaw(ev.Type)
					body := ev.Content.AsMessage().Body
					if _, ok := a.at[body]; !ok {
						a.at[body] = now
					}
				}
				a.mu.Unlock()
			}
			select {
			case a.wake <- struct{}{}:
			default:
			}
		}
	}()
	return a
}

// waitAll waits until every body has arrived and returns their times.
func (a *arrivals) waitAll(ctx context.Context, bodies []string) ([]time.Time, error) {
	for {
		a.mu.Lock()
		var out []time.Time
		for _, b := range bodies {
			if t, ok := a.at[b]; ok {
				out = append(out, t)
			}
		}
		a.mu.Unlock()
		if len(out) == len(bodies) {
			return out, nil
		}
		select {
		case <-a.wake:
		case <-ctx.Done():
			return nil, fmt.Errorf("%d of %d arrived", len(out), len(bodies))
		}
	}
}

// BenchmarkMessageLatency measures how long a message takes from the
// sender's PUT /send to the other two members' /sync (both of them).
func BenchmarkMessageLatency(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, users, room := threeNodeRoom(b, ctx)
	bob, carol := follow(ctx, b, users[1]), follow(ctx, b, users[2])
	var lat []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		body := fmt.Sprintf("latency %d", i)
		start := time.Now()
		if _, err := users[0].SendText(ctx, room, body); err != nil {
			b.Fatal(err)
		}
		wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
		for _, f := range []*arrivals{bob, carol} {
			ts, err := f.waitAll(wctx, []string{body})
			if err != nil {
				b.Fatal(err)
			}
			lat = append(lat, ts[0].Sub(start))
		}
		wcancel()
	}
	b.StopTimer()
	reportPercentiles(b, lat)
}

func reportPercentiles(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[min(int(p*float64(len(lat))), len(lat)-1)].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.5), "p50-ms")
	b.ReportMetric(pct(0.95), "p95-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}

// BenchmarkThroughputThreeSenders: three users on three nodes send at once,
// each waiting for one send to return before the next (as a chat client
// does); the clock stops when every node's user has every message through
// /sync.
func BenchmarkThroughputThreeSenders(b *testing.B) { benchThroughput(b, 1) }

// BenchmarkThroughputThreeSendersPipelined is the same with 8 sends in
// flight per sender: what the nodes can carry rather than what one
// client's round trips allow.
func BenchmarkThroughputThreeSendersPipelined(b *testing.B) { benchThroughput(b, 8) }

func benchThroughput(b *testing.B, inFlight int) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, users, room := threeNodeRoom(b, ctx)
	var followers []*arrivals
	for _, u := range users {
		followers = append(followers, follow(ctx, b, u))
	}
	perSender := max(b.N/3, 1)
	var bodies []string
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for si, u := range users {
		for i := range perSender {
			bodies = append(bodies, fmt.Sprintf("tp %d/%d", si, i))
		}
		for w := range inFlight {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < perSender; i += inFlight {
					if _, err := u.SendText(ctx, room, fmt.Sprintf("tp %d/%d", si, i)); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	wctx, wcancel := context.WithTimeout(ctx, 2*time.Minute)
	defer wcancel()
	for _, f := range followers {
		if _, err := f.waitAll(wctx, bodies); err != nil {
			b.Fatal(err)
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(len(bodies))/elapsed.Seconds(), "msgs/s")
}
