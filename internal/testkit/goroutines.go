package testkit

import (
	"bytes"
	"context"
	"fmt"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// leakTimeout is how long CheckGoroutines gives goroutines to end after the
// test's other cleanups: closing a host or a node may let its goroutines
// finish a little after Close returns.
const leakTimeout = 15 * time.Second

// leakLabel is the pprof label CheckGoroutines puts on a test's goroutine,
// and so on every goroutine started from it, directly or not.
const leakLabel = "parley-testkit-check"

// watched are the code whose goroutines must not outlive a test: a
// goroutine counts as leaked if its stack runs any of it.
var watched = []string{
	"github.com/parley-p2p/parley/",
	"github.com/libp2p/",
	"github.com/dgraph-io/", // badger and its ristretto cache
	"github.com/quic-go/",   // libp2p's QUIC transport
}

// processWide are goroutines that libp2p starts once, for the whole
// process, the first time something needs them. Whichever test is first
// starts them; they are not that test's leak.
var processWide = []string{
	"github.com/libp2p/go-flow-metrics.(*sweeper).run",
}

// AutoNATDialer are the goroutines of the dialer swarm that go-libp2p
// (v0.52) builds for libp2p.EnableNATService: when reachability is forced
// private as well (libp2p.ForceReachabilityPrivate), autonat.New does not
// start the service that owns that swarm, and nothing ever closes it, so
// each such host leaves these behind, with the QUIC transport of any dial
// it made. Pass them to CheckGoroutines for a test that builds such hosts.
// (The main host runs goroutines of the same names, so such a test does not
// see those leak either.)
var AutoNATDialer = []string{
	"github.com/libp2p/go-libp2p/config.(*Config).addAutoNAT.func",
	"github.com/libp2p/go-libp2p/p2p/transport/quicreuse.(*reuse).gc",
	"github.com/libp2p/go-libp2p/p2p/host/peerstore/pstoremem.(*memoryAddrBook).background",
	"github.com/libp2p/go-libp2p/p2p/net/swarm.(*connectionEventsEmitter).runEmitter",
	"github.com/libp2p/go-libp2p/p2p/net/swarm.(*DialBackoff).background",
	"github.com/quic-go/quic-go.(*Transport).",
	"github.com/quic-go/quic-go.(*basicConn).ReadPacket",
}

var (
	checkSeq atomic.Uint64
	checking sync.Map // testing.TB -> *leakCheck: tests being checked
)

// leakCheck is one test's check.
type leakCheck struct {
	id    string // the label's value
	mu    sync.Mutex
	allow []string
}

func (c *leakCheck) allowing(allow []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.allow = append(c.allow, allow...)
}

func (c *leakCheck) allowed() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append(slices.Clone(processWide), c.allow...)
}

// CheckGoroutines fails the test if goroutines started during it (from the
// call on) are still running parley, libp2p or badger code once the test
// and its other cleanups are over. Call it first in a test or in a
// newTestNode-style helper: cleanups run last-registered first, so the check
// runs after the nodes registered later have closed. It waits up to 15
// seconds for the goroutines to end, then fails with their stacks.
//
// allow names functions (as stack frames show them, or a prefix) whose
// goroutines the test may leave behind: for leaks in other modules that
// parley cannot fix, such as AutoNATDialer. Calling CheckGoroutines again in
// the same test adds to allow and does nothing else.
//
// It tells a test's goroutines from others' by a pprof label that it sets on
// the test's goroutine and that every goroutine started from there inherits,
// so tests that run in parallel (t.Parallel) do not see each other's
// goroutines, and goroutines running before the call are never counted. A
// subtest that calls it is checked on its own; a subtest that does not is
// checked with its parent.
func CheckGoroutines(t testing.TB, allow ...string) {
	t.Helper()
	checkGoroutines(t, leakTimeout, allow...)
}

func checkGoroutines(t testing.TB, timeout time.Duration, allow ...string) {
	t.Helper()
	c := &leakCheck{id: strconv.FormatUint(checkSeq.Add(1), 10)}
	if old, dup := checking.LoadOrStore(t, c); dup {
		old.(*leakCheck).allowing(allow)
		return
	}
	c.allowing(allow)
	pprof.SetGoroutineLabels(pprof.WithLabels(context.Background(), pprof.Labels(leakLabel, c.id)))
	t.Cleanup(func() {
		defer checking.Delete(t)
		// This goroutine is the test's own: it must not count itself.
		pprof.SetGoroutineLabels(context.Background())
		deadline := time.Now().Add(timeout)
		poll := time.Millisecond
		for {
			leaked, n := labelledGoroutines(c.id, c.allowed())
			if n == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("%d goroutines that the test started still run %v, %v after its cleanups began (count @ PCs, then frames):\n\n%s",
					n, watched, timeout, strings.Join(leaked, "\n\n"))
				return
			}
			time.Sleep(poll)
			poll = min(2*poll, maxPoll)
		}
	})
}

// labelledGoroutines returns the stacks, in pprof's counted form, of the
// goroutines labelled id that run watched code and none of allow, and how
// many goroutines they are.
func labelledGoroutines(id string, allow []string) ([]string, int) {
	var buf bytes.Buffer
	if err := pprof.Lookup("goroutine").WriteTo(&buf, 1); err != nil {
		return []string{fmt.Sprintf("goroutine profile: %v", err)}, 1
	}
	// The profile is a header line, then one record per distinct stack,
	// each "count @ PCs", "# labels: ..." and frames, a blank line between.
	_, records, _ := strings.Cut(buf.String(), "\n")
	mark := fmt.Sprintf("%q:%q", leakLabel, id)
	var out []string
	total := 0
	for _, g := range strings.Split(records, "\n\n") {
		if !labelledWith(g, mark) {
			continue
		}
		// A goroutine that has not begun to run may show no frames yet: it
		// counts until it shows what it runs.
		if strings.Contains(g, "\n#\t") && (!runsAny(g, watched) || runsAny(g, allow)) {
			continue
		}
		g = strings.TrimSpace(g)
		count, _, _ := strings.Cut(g, " @ ")
		n, err := strconv.Atoi(count)
		if err != nil {
			n = 1
		}
		total += n
		out = append(out, g)
	}
	return out, total
}

// labelledWith reports whether the "# labels:" line of a profile record
// holds mark.
func labelledWith(record, mark string) bool {
	for line := range strings.Lines(record) {
		if strings.HasPrefix(line, "# labels: ") {
			return strings.Contains(line, mark)
		}
	}
	return false
}

func runsAny(record string, code []string) bool {
	for _, c := range code {
		if strings.Contains(record, c) {
			return true
		}
	}
	return false
}
