package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"
)

// ownerName is the fixture node's one user.
const ownerName = "owner"

// BenchmarkThousandRooms: one node holding R rooms of E messages each
// (PARLEY_BENCH_ROOMS, default 100,300,1000 as sub-benchmarks;
// PARLEY_BENCH_EVENTS, default 100), its one user a member of all. On a
// copy of a cached fixture (see the package doc) it measures, in process:
// start-up to the API's first answer, the initial /sync (no since, no
// filter), an incremental /sync with nothing new, and send to the user's
// own waiting /sync in a room picked in turn; then, as a child process of
// the built command on the same data: start-up from exec to the API's
// first answer, and resident memory after an initial /sync.
func BenchmarkThousandRooms(b *testing.B) {
	events := envInt(b, "PARLEY_BENCH_EVENTS", 100)
	for _, rooms := range envInts(b, "PARLEY_BENCH_ROOMS", []int{100, 300, 1000}) {
		b.Run(fmt.Sprintf("rooms=%d", rooms), func(b *testing.B) {
			fixture := roomsFixture(b, rooms, events)
			defer loadAtStart(b)()
			b.ResetTimer()
			var m manyRoomsFigures
			for range b.N {
				m.measure(b, fixture, rooms)
			}
			b.StopTimer()
			m.report(b)
		})
	}
}

// manyRoomsFigures accumulates the figures of each run.
type manyRoomsFigures struct {
	startInProc, startProc, initialSync, idleSync, ownSync []time.Duration
	rss, hwm, anon, file                                   []float64
	initialBytes                                           int
}

func (m *manyRoomsFigures) measure(b *testing.B, fixture string, rooms int) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir := filepath.Join(b.TempDir(), "data")
	if err := copyDir(fixture, dir); err != nil {
		b.Fatalf("copy fixture: %v", err)
	}

	// In process: start-up, initial and idle sync, send to own sync.
	t0 := time.Now()
	n := startNode(b, dir)
	for !answers(n.URL()) {
		if time.Since(t0) > time.Minute {
			b.Fatal("the node's API did not answer within a minute")
		}
		time.Sleep(2 * time.Millisecond)
	}
	m.startInProc = append(m.startInProc, time.Since(t0))
	c := login(b, ctx, n.URL(), ownerName)
	t0 = time.Now()
	first, err := c.SyncRequest(ctx, 0, "", "", false, "")
	if err != nil {
		b.Fatalf("initial sync: %v", err)
	}
	m.initialSync = append(m.initialSync, time.Since(t0))
	if got := len(first.Rooms.Join); got != rooms {
		b.Fatalf("initial sync shows %d joined rooms, want %d", got, rooms)
	}
	joined := slices.Sorted(func(yield func(id.RoomID) bool) {
		for r := range first.Rooms.Join {
			if !yield(r) {
				return
			}
		}
	})
	since := first.NextBatch
	for range 20 {
		t0 = time.Now()
		resp, err := c.SyncRequest(ctx, 0, since, "", false, "")
		if err != nil {
			b.Fatalf("idle sync: %v", err)
		}
		m.idleSync = append(m.idleSync, time.Since(t0))
		since = resp.NextBatch
	}
	filter := timelineFilter(b, ctx, c)
	for i := range 50 {
		room := joined[(i*7919)%len(joined)]
		body := fmt.Sprintf("own %d %d", len(m.ownSync), i)
		type got struct {
			at    time.Time
			since string
			err   error
		}
		done := make(chan got, 1)
		go func() {
			s := since
			for {
				resp, err := c.SyncRequest(ctx, 30000, s, filter, false, "")
				if err != nil {
					done <- got{err: err}
					return
				}
				s = resp.NextBatch
				if hasBody(resp, room, body) {
					done <- got{at: time.Now(), since: s}
					return
				}
			}
		}()
		t0 = time.Now()
		if _, err := c.SendText(ctx, room, body); err != nil {
			b.Fatalf("send: %v", err)
		}
		g := <-done
		if g.err != nil {
			b.Fatalf("sync waiting for own message: %v", g.err)
		}
		m.ownSync = append(m.ownSync, g.at.Sub(t0))
		since = g.since
	}
	n.Close()

	// As a child process: start-up and resident memory.
	p := startProc(b, dir)
	m.startProc = append(m.startProc, p.ready)
	pc := login(b, ctx, p.url, ownerName)
	resp, err := pc.SyncRequest(ctx, 0, "", "", false, "")
	if err != nil {
		b.Fatalf("initial sync of the child: %v", err)
	}
	if got := len(resp.Rooms.Join); got != rooms {
		b.Fatalf("the child's initial sync shows %d joined rooms, want %d", got, rooms)
	}
	rss, hwm, anon, file := p.rssMB()
	m.rss, m.hwm = append(m.rss, rss), append(m.hwm, hwm)
	m.anon, m.file = append(m.anon, anon), append(m.file, file)
	p.stop()
}

func (m *manyRoomsFigures) report(b *testing.B) {
	ms := func(ds []time.Duration) float64 {
		slices.Sort(ds)
		return percentile(ds, 0.5)
	}
	b.ReportMetric(ms(m.startProc), "startup_ms")
	b.ReportMetric(ms(m.startInProc), "startup_inproc_ms")
	b.ReportMetric(ms(m.initialSync), "initial_sync_ms")
	b.ReportMetric(ms(m.idleSync), "idle_sync_ms")
	slices.Sort(m.ownSync)
	b.ReportMetric(percentile(m.ownSync, 0.5), "own_sync_p50_ms")
	b.ReportMetric(percentile(m.ownSync, 0.95), "own_sync_p95_ms")
	b.ReportMetric(slices.Max(m.rss), "rss_MB")
	b.ReportMetric(slices.Max(m.hwm), "hwm_MB")
	b.ReportMetric(slices.Max(m.anon), "rss_anon_MB")
	b.ReportMetric(slices.Max(m.file), "rss_file_MB")
}

// hasBody reports whether resp's timeline of room holds a message body.
func hasBody(resp *mautrix.RespSync, room id.RoomID, body string) bool {
	jr, ok := resp.Rooms.Join[room]
	if !ok {
		return false
	}
	for _, ev := range jr.Timeline.Events {
		if b, _ := ev.Content.Raw["body"].(string); b == body {
			return true
		}
	}
	return false
}

// roomsFixture returns the data dir of a node whose user ownerName is in
// rooms rooms of events messages each: from the cache if it is there,
// else built now (and kept in the cache unless PARLEY_BENCH_CACHE=off).
func roomsFixture(b *testing.B, rooms, events int) string {
	b.Helper()
	cache := os.Getenv("PARLEY_BENCH_CACHE")
	if cache == "off" {
		dir := filepath.Join(b.TempDir(), "fixture")
		fillRooms(b, dir, rooms, events)
		return dir
	}
	if cache == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			b.Fatalf("no cache dir (set PARLEY_BENCH_CACHE): %v", err)
		}
		cache = filepath.Join(base, "parley-bench")
	}
	final := filepath.Join(cache, fmt.Sprintf("rooms-%d-events-%d", rooms, events))
	if _, err := os.Stat(final); err == nil {
		b.Logf("fixture from %s", final)
		return final
	}
	if err := os.MkdirAll(cache, 0o700); err != nil {
		b.Fatal(err)
	}
	tmp, err := os.MkdirTemp(cache, "building-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	dir := filepath.Join(tmp, "data")
	fillRooms(b, dir, rooms, events)
	if err := os.Rename(dir, final); err != nil && !errors.Is(err, fs.ErrExist) {
		if _, serr := os.Stat(final); serr != nil { // not built by someone else meanwhile
			b.Fatalf("keep fixture: %v", err)
		}
	}
	b.Logf("fixture kept in %s", final)
	return final
}

// fillRooms makes dir the data dir of a node whose one user is in rooms
// rooms of events messages each, created through the client API by
// several clients at once, and closes the node.
func fillRooms(b *testing.B, dir string, rooms, events int) {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := time.Now()
	n := startNode(b, dir)
	owner := register(b, ctx, n.URL(), ownerName)
	const workers = 6
	var next, done atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			c := newClient(b, n.URL())
			c.SetCredentials(owner.UserID, owner.AccessToken)
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= rooms {
					return
				}
				resp, err := c.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Name: fmt.Sprintf("room %d", i)})
				if err != nil {
					errs <- fmt.Errorf("create room %d: %w", i, err)
					cancel()
					return
				}
				for j := range events {
					if _, err := c.SendText(ctx, resp.RoomID, fmt.Sprintf("room %d message %d", i, j)); err != nil {
						errs <- fmt.Errorf("send in room %d: %w", i, err)
						cancel()
						return
					}
				}
				if d := done.Add(1); d%100 == 0 {
					b.Logf("filled %d of %d rooms in %v", d, rooms, time.Since(start).Round(time.Second))
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	if err := n.Close(); err != nil {
		b.Fatalf("close the filled node: %v", err)
	}
	b.Logf("filled %d rooms of %d messages in %v", rooms, events, time.Since(start).Round(time.Millisecond))
}

// copyDir copies the tree at src to dst, keeping permissions.
func copyDir(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(target, info.Mode().Perm())
		case info.Mode().IsRegular():
			return copyFile(path, target, info.Mode().Perm())
		default:
			return fmt.Errorf("%s: not a regular file or directory", path)
		}
	})
}

func copyFile(src, dst string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
