package bench

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/parley-p2p/parley/node"
)

// claimCode claims every benchmark node; each node has one user, its
// owner.
const claimCode = "bench-claim-code"

// password is every benchmark user's password.
const password = "bench-password-1"

// transport is shared by every client, with enough idle connections per
// node for a long-poll and eight sends in flight, so that pipelined sends
// reuse connections instead of opening one each.
var transport = &http.Transport{
	MaxIdleConns:        1024,
	MaxIdleConnsPerHost: 32,
	IdleConnTimeout:     30 * time.Second,
}

// envInt reads a size from the environment, or def.
func envInt(tb testing.TB, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		tb.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// envInts reads a comma-separated list of sizes, or def.
func envInts(tb testing.TB, name string, def []int) []int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	var out []int
	for f := range strings.SplitSeq(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			tb.Fatalf("%s=%q: want positive integers separated by commas", name, v)
		}
		out = append(out, n)
	}
	return out
}

// startNode starts an in-process node on 127.0.0.1 with its data in dir
// (a fresh temporary directory if empty) and closes it when the benchmark
// ends.
func startNode(tb testing.TB, dir string, bootstrap ...[]string) *node.Node {
	tb.Helper()
	if dir == "" {
		dir = tb.TempDir()
	}
	cfg := node.Config{
		DataDir:     dir,
		HTTPAddr:    "127.0.0.1:0",
		ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"},
		NoMDNS:      true,
		ClaimCode:   claimCode,
		MinFreeDisk: -1,
	}
	for _, b := range bootstrap {
		cfg.Bootstrap = append(cfg.Bootstrap, b...)
	}
	n, err := node.New(cfg)
	if err != nil {
		tb.Fatalf("new node: %v", err)
	}
	if err := n.Start(); err != nil {
		tb.Fatalf("start node: %v", err)
	}
	tb.Cleanup(func() { n.Close() })
	return n
}

// newClient returns a client of the API at url, not logged in.
func newClient(tb testing.TB, url string) *mautrix.Client {
	tb.Helper()
	c, err := mautrix.NewClient(strings.TrimSuffix(url, "/"), "", "")
	if err != nil {
		tb.Fatal(err)
	}
	c.Client = &http.Client{Transport: transport, Timeout: 5 * time.Minute}
	return c
}

// authRegistrationToken is the spec's registration-token stage.
const authRegistrationToken mautrix.AuthType = "m.login.registration_token"

// register claims the node at url for a user called name and returns the
// user's logged-in client.
func register(tb testing.TB, ctx context.Context, url, name string) *mautrix.Client {
	tb.Helper()
	c := newClient(tb, url)
	req := &mautrix.ReqRegister[any]{Username: name, Password: password}
	_, uia, err := c.Register(ctx, req)
	if uia == nil {
		tb.Fatalf("register %s: no user-interactive auth offered: %v", name, err)
	}
	req.Auth = map[string]any{"type": authRegistrationToken, "token": claimCode, "session": uia.Session}
	resp, _, err := c.Register(ctx, req)
	if err != nil {
		tb.Fatalf("register %s: %v", name, err)
	}
	c.SetCredentials(resp.UserID, resp.AccessToken)
	c.DeviceID = resp.DeviceID
	return c
}

// login logs a user in with the benchmark password.
func login(tb testing.TB, ctx context.Context, url, name string) *mautrix.Client {
	tb.Helper()
	c := newClient(tb, url)
	_, err := c.Login(ctx, &mautrix.ReqLogin{
		Type:             mautrix.AuthTypePassword,
		Identifier:       mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: name},
		Password:         password,
		StoreCredentials: true,
	})
	if err != nil {
		tb.Fatalf("login %s: %v", name, err)
	}
	return c
}

// timelineFilter stores a filter with a timeline limit of 100, as real
// clients do, so that bursts arrive whole rather than as limited
// timelines.
func timelineFilter(tb testing.TB, ctx context.Context, c *mautrix.Client) string {
	tb.Helper()
	f, err := c.CreateFilter(ctx, &mautrix.Filter{Room: &mautrix.RoomFilter{Timeline: &mautrix.FilterPart{Limit: 100}}})
	if err != nil {
		tb.Fatalf("create filter: %v", err)
	}
	return f.FilterID
}

// waitUntil polls cond until it holds or the deadline passes.
func waitUntil(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// sharedRoom has users[0] create a private room and invite the others,
// who join once their /sync shows the invite; it returns when every user
// sees every other joined.
func sharedRoom(tb testing.TB, ctx context.Context, users []*mautrix.Client) id.RoomID {
	tb.Helper()
	resp, err := users[0].CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat"})
	if err != nil {
		tb.Fatalf("create room: %v", err)
	}
	room := resp.RoomID
	for _, u := range users[1:] {
		if _, err := users[0].InviteUser(ctx, room, &mautrix.ReqInviteUser{UserID: u.UserID}); err != nil {
			tb.Fatalf("invite %s: %v", u.UserID, err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(users))
	for _, u := range users[1:] {
		wg.Go(func() {
			if err := acceptInvite(ctx, u, room); err != nil {
				errs <- fmt.Errorf("%s: %w", u.UserID, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		tb.Fatal(err)
	}
	for _, u := range users {
		waitUntil(tb, 60*time.Second, fmt.Sprintf("%s to see %d members joined", u.UserID, len(users)), func() bool {
			m, err := u.JoinedMembers(ctx, room)
			return err == nil && len(m.Joined) == len(users)
		})
	}
	return room
}

// acceptInvite waits for the invite to reach the user's /sync and joins.
func acceptInvite(ctx context.Context, u *mautrix.Client, room id.RoomID) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	since := ""
	for {
		resp, err := u.SyncRequest(ctx, 2000, since, "", false, "")
		if err != nil {
			return fmt.Errorf("sync waiting for the invite: %w", err)
		}
		since = resp.NextBatch
		if _, ok := resp.Rooms.Invite[room]; ok {
			break
		}
	}
	if _, err := u.JoinRoomByID(ctx, room); err != nil {
		return fmt.Errorf("join: %w", err)
	}
	return nil
}

// follower follows one user's /sync in the background and records when
// each message body first arrived there.
type follower struct {
	c    *mautrix.Client
	mu   sync.Mutex
	at   map[string]time.Time
	wake chan struct{}
	stop context.CancelFunc
	done chan struct{}
}

// follow starts following c's /sync from now on; the benchmark's end
// stops it.
func follow(tb testing.TB, ctx context.Context, c *mautrix.Client) *follower {
	tb.Helper()
	filter := timelineFilter(tb, ctx, c)
	first, err := c.SyncRequest(ctx, 0, "", filter, false, "")
	if err != nil {
		tb.Fatalf("first sync: %v", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	f := &follower{c: c, at: map[string]time.Time{}, wake: make(chan struct{}, 1), stop: cancel, done: make(chan struct{})}
	tb.Cleanup(func() { f.stop(); <-f.done })
	go f.run(ctx, first.NextBatch, filter)
	return f
}

func (f *follower) run(ctx context.Context, since, filter string) {
	defer close(f.done)
	for ctx.Err() == nil {
		resp, err := f.c.SyncRequest(ctx, 30000, since, filter, false, "")
		if err != nil {
			if ctx.Err() == nil {
				time.Sleep(50 * time.Millisecond) // a failed request; do not spin
			}
			continue
		}
		now := time.Now()
		var bodies []string
		for roomID, jr := range resp.Rooms.Join {
			evs := jr.Timeline.Events
			if jr.Timeline.Limited {
				// More arrived than the filter's limit: page back over
				// the gap, as a client does.
				from := jr.Timeline.PrevBatch
				for from != "" {
					page, err := f.c.Messages(ctx, roomID, from, since, mautrix.DirectionBackward, nil, 100)
					if err != nil || len(page.Chunk) == 0 {
						break
					}
					evs = append(evs, page.Chunk...)
					from = page.End
				}
			}
			for _, ev := range evs {
				if ev.Type != event.EventMessage {
					continue
				}
				if body, ok := ev.Content.Raw["body"].(string); ok {
					bodies = append(bodies, body)
				}
			}
		}
		since = resp.NextBatch
		f.mu.Lock()
		for _, b := range bodies {
			if _, ok := f.at[b]; !ok {
				f.at[b] = now
			}
		}
		f.mu.Unlock()
		select {
		case f.wake <- struct{}{}:
		default:
		}
	}
}

// arrived returns when body arrived, if it has.
func (f *follower) arrived(body string) (time.Time, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.at[body]
	return t, ok
}

// waitAll waits until every body has arrived or ctx ends, and returns how
// many are missing.
func (f *follower) waitAll(ctx context.Context, bodies []string) int {
	for {
		missing := 0
		f.mu.Lock()
		for _, b := range bodies {
			if _, ok := f.at[b]; !ok {
				missing++
			}
		}
		f.mu.Unlock()
		if missing == 0 {
			return 0
		}
		select {
		case <-f.wake:
		case <-ctx.Done():
			return missing
		}
	}
}

// percentile of sorted durations, in milliseconds.
func percentile(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := min(int(p*float64(len(sorted))), len(sorted)-1)
	return float64(sorted[i].Microseconds()) / 1000
}

// reportLatency reports p50, p95 and p99 of lat in milliseconds.
func reportLatency(b *testing.B, prefix string, lat []time.Duration) {
	slices.Sort(lat)
	b.ReportMetric(percentile(lat, 0.50), prefix+"p50_ms")
	b.ReportMetric(percentile(lat, 0.95), prefix+"p95_ms")
	b.ReportMetric(percentile(lat, 0.99), prefix+"p99_ms")
}

// loadAtStart logs the load average now and returns a func that reports
// its one-minute figure as load1, so that every figure comes with the load
// it was measured under. Call the func after the last b.ResetTimer, which
// drops metrics reported before it.
func loadAtStart(b *testing.B) (report func()) {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return func() {}
	}
	b.Logf("load average at start: %s", strings.TrimSpace(string(raw)))
	f := strings.Fields(string(raw))
	if len(f) == 0 {
		return func() {}
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return func() {}
	}
	return func() { b.ReportMetric(v, "load1") }
}
