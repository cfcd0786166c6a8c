package p2p

import (
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/parley-p2p/parley/internal/testkit"
)

// BenchmarkRoom: n hosts, all connected, in one room; each publishes m
// messages at once (one goroutine per host, its publishes back to back).
// Every message carries an ed25519 signature that every receiver's Validator
// checks, as parley's validator checks an event's, so the CPU per message is
// close to a node's: pubsub's own signature check plus ours.
//
// Reported per round of n x m messages:
//   - msg/s: messages delivered to every other member, per second of wall time;
//   - p50-ms, p99-ms: latency of one message to one receiver, from just
//     before Publish to the Receiver call;
//   - lost: deliveries missing when none had come for 10 s (must be 0);
//   - cpu-us/delivery: the process's CPU time over deliveries (one message
//     to one receiver), all hosts together; steadier than wall time on a
//     shared machine.
//
// go test -run '^$' -bench BenchmarkRoom -benchtime 5x ./p2p
func BenchmarkRoom(b *testing.B) {
	for _, c := range []struct{ n, m int }{{3, 200}, {10, 50}, {10, 200}} {
		b.Run(fmt.Sprintf("hosts=%d/msgs=%d", c.n, c.m), func(b *testing.B) { benchRoom(b, c.n, c.m) })
	}
}

// BenchmarkRoomTuning runs BenchmarkRoom's 10-host case under alternative
// GossipSub settings, to choose them (see options.go).
//
// go test -run '^$' -bench BenchmarkRoomTuning -benchtime 5x ./p2p
func BenchmarkRoomTuning(b *testing.B) {
	chosen := gossipParams
	defer func() { gossipParams, validateWorkers = chosen, 1 }()
	withD := func(d, lo, hi, lazy int) func() pubsub.GossipSubParams {
		return func() pubsub.GossipSubParams {
			p := chosen()
			p.D, p.Dlo, p.Dhi, p.Dlazy = d, lo, hi, lazy
			p.Dscore, p.Dout = min(p.Dscore, lo), min(p.Dout, d/2-1, lo-1)
			return p
		}
	}
	for _, v := range []struct {
		name    string
		params  func() pubsub.GossipSubParams
		workers int
	}{
		{"chosen", chosen, 1},
		{"chosen/workers=2", chosen, 2},
		{"D=4", withD(4, 3, 8, 4), 1},
		{"D=4/idontwant=0", func() pubsub.GossipSubParams {
			p := withD(4, 3, 8, 4)()
			p.IDontWantMessageThreshold = 1
			return p
		}, 1},
	} {
		gossipParams, validateWorkers = v.params, v.workers
		b.Run(v.name+"/hosts=10/msgs=100", func(b *testing.B) { benchRoom(b, 10, 100) })
	}
	gossipParams, validateWorkers = chosen, 1
	// The transport: test hosts listen on QUIC and TCP, and QUIC wins the
	// dial on loopback.
	tcpOnly := func(c *Config) { c.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/0"} }
	b.Run("chosen/tcp-only/hosts=10/msgs=100", func(b *testing.B) { benchRoom(b, 10, 100, tcpOnly) })
}

// benchPayload is the body size of a benchmark message: a typical Matrix
// message event is a few hundred bytes.
const benchPayload = 600

// signedMsg lays out a benchmark message: public key, signature over the
// rest, send time (unix ns), then padding.
func signedMsg(key ed25519.PrivateKey, sent time.Time, seq int) []byte {
	body := make([]byte, 16, benchPayload)
	binary.BigEndian.PutUint64(body, uint64(sent.UnixNano()))
	binary.BigEndian.PutUint64(body[8:], uint64(seq))
	body = body[:benchPayload]
	msg := make([]byte, 0, ed25519.PublicKeySize+ed25519.SignatureSize+len(body))
	msg = append(msg, key.Public().(ed25519.PublicKey)...)
	msg = append(msg, ed25519.Sign(key, body)...)
	return append(msg, body...)
}

// verifySigned is the benchmark's Validator: it checks the signature and
// hands the send time to the Receiver.
func verifySigned(_ context.Context, _ peer.ID, data []byte) (Verdict, any) {
	const head = ed25519.PublicKeySize + ed25519.SignatureSize
	if len(data) < head+16 {
		return Reject, nil
	}
	if !ed25519.Verify(ed25519.PublicKey(data[:ed25519.PublicKeySize]), data[head:], data[ed25519.PublicKeySize:head]) {
		return Reject, nil
	}
	return Accept, int64(binary.BigEndian.Uint64(data[head:]))
}

// cpuTime returns the CPU time (user and system) the process has used:
// unlike wall time, it barely moves with the load of other processes.
func cpuTime(b *testing.B) time.Duration {
	d := testkit.CPUTime()
	if d == 0 {
		b.Fatal("the process's CPU time cannot be read here")
	}
	return d
}

// latencies collects per-delivery latencies from every Receiver.
type latencies struct {
	mu        sync.Mutex
	ns        []int64
	delivered atomic.Int64
}

func (l *latencies) receive(_ peer.ID, _ []byte, validated any) {
	sent, ok := validated.(int64)
	if !ok {
		return
	}
	d := time.Now().UnixNano() - sent
	l.mu.Lock()
	l.ns = append(l.ns, d)
	l.mu.Unlock()
	l.delivered.Add(1)
}

func benchRoom(b *testing.B, n, m int, edit ...func(*Config)) {
	lat := &latencies{}
	hosts := make([]*Host, n)
	keys := make([]ed25519.PrivateKey, n)
	for i := range hosts {
		hosts[i] = newTestHost(b, edit...)
		keys[i] = newKey(b)
	}
	for i := range hosts {
		for j := i + 1; j < n; j++ {
			connect(b, hosts[i], hosts[j])
		}
	}
	for _, h := range hosts {
		if err := h.JoinRoom(testRoom, testKeys(testRoom), verifySigned, lat.receive); err != nil {
			b.Fatal(err)
		}
	}
	for _, h := range hosts {
		for _, o := range hosts {
			if h != o {
				waitFor(b, 10*time.Second, "room membership to spread", inRoom(h, testRoom, o.ID()))
			}
		}
	}
	perRound := int64(n * (n - 1) * m)
	ctx := context.Background()
	var lost int64
	cpu0 := cpuTime(b)
	b.ResetTimer()
	for round := range b.N {
		var wg sync.WaitGroup
		for i, h := range hosts {
			wg.Go(func() {
				for j := range m {
					if err := h.Publish(ctx, testRoom, signedMsg(keys[i], time.Now(), round*m+j)); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		// Wait for every delivery, giving up only when none has come
		// for 10 s: a loaded machine is slow, not lossy.
		want := int64(round+1) * perRound
		last, stalled := lat.delivered.Load(), time.Now().Add(10*time.Second)
		for last < want && time.Now().Before(stalled) {
			time.Sleep(time.Millisecond)
			if got := lat.delivered.Load(); got != last {
				last, stalled = got, time.Now().Add(10*time.Second)
			}
		}
		if last < want {
			lost += want - last
			b.Logf("round %d: %d of %d deliveries missing, none for 10 s", round, want-last, perRound)
			break
		}
	}
	b.StopTimer()
	cpu := cpuTime(b) - cpu0
	ns := slices.Clone(lat.ns)
	slices.Sort(ns)
	pct := func(p float64) float64 {
		if len(ns) == 0 {
			return 0
		}
		return float64(ns[int(p*float64(len(ns)-1))]) / 1e6
	}
	b.ReportMetric(float64(b.N*n*m)/b.Elapsed().Seconds(), "msg/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(lost), "lost")
	if d := lat.delivered.Load(); d > 0 {
		b.ReportMetric(float64(cpu.Microseconds())/float64(d), "cpu-us/delivery")
	}
	var st Stats
	for _, h := range hosts {
		s := h.Stats()
		st.DroppedInbound += s.DroppedInbound
		st.DroppedOutbound += s.DroppedOutbound
		st.Undelivered += s.Undelivered
	}
	if st != (Stats{}) {
		b.Logf("drops: %+v", st)
	}
}
