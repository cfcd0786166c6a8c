package dag

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/parley-p2p/parley/internal/testkit"
	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/rooms"
)

// perfKey is a deterministic node key, so runs are comparable.
func perfKey(label string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("parley dag perf " + label))
	return ed25519.NewKeyFromSeed(seed[:])
}

// newPerfEngine makes an engine over a store in a temporary directory;
// both close when the test ends.
func newPerfEngine(tb testing.TB, dir string) *Engine {
	tb.Helper()
	st, err := store.Open(dir, store.Options{MinFree: -1})
	if err != nil {
		tb.Fatal(err)
	}
	e := New(Config{Store: st, Key: perfKey("engine")})
	tb.Cleanup(func() {
		e.Close()
		st.Close()
	})
	return e
}

// creatorOf is the user ID of the engine's local creator.
func creatorOf(e *Engine) string { return "@alice:" + e.ServerName() }

// newPerfRoom creates a public room of the given version on e.
func newPerfRoom(tb testing.TB, e *Engine, version string) *Room {
	tb.Helper()
	create := `{"room_version":"` + version + `"}`
	if version == rooms.V10 {
		create = `{"room_version":"10","creator":"` + creatorOf(e) + `"}`
	}
	r, err := e.CreateRoom(version, creatorOf(e), json.RawMessage(create), []Step{
		{Type: "m.room.member", StateKey: creatorOf(e), Content: json.RawMessage(`{"membership":"join"}`)},
		{Type: "m.room.power_levels", Content: json.RawMessage(powerLevels(e, version))},
		{Type: "m.room.join_rules", Content: json.RawMessage(`{"join_rule":"public"}`)},
		{Type: "m.room.history_visibility", Content: json.RawMessage(`{"history_visibility":"shared"}`)},
	})
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

func powerLevels(e *Engine, version string) string {
	if version != rooms.V12 {
		return `{"users":{"` + creatorOf(e) + `":100}}`
	}
	return `{"users":{}}`
}

// sendMessages sends n messages from the creator without waiting for
// each write, then waits for all of them, and returns their IDs.
func sendMessages(tb testing.TB, e *Engine, r *Room, n int) []string {
	tb.Helper()
	ids := make([]string, 0, n)
	var pending []<-chan error
	for i := range n {
		r.mu.Lock()
		ev, out, err := e.buildLocked(r, creatorOf(e), "m.room.message", nil,
			json.RawMessage(fmt.Sprintf(`{"msgtype":"m.text","body":"message %d <with> some & text in it, as people write"}`, i)), "", "")
		r.mu.Unlock()
		if err != nil {
			tb.Fatal(err)
		}
		ids = append(ids, ev.ID())
		pending = append(pending, out.Committed)
	}
	for _, c := range pending {
		if err := <-c; err != nil {
			tb.Fatal(err)
		}
	}
	return ids
}

// remote is a second server whose user builds events for a room held by
// the engine under test, as a peer would send them.
type remote struct {
	key    ed25519.PrivateKey
	server string
	user   string
}

func newRemote(label string) remote {
	k := perfKey(label)
	s := rooms.ServerName(k.Public().(ed25519.PublicKey))
	return remote{key: k, server: s, user: "@bob:" + s}
}

// build signs an event by the remote user on top of prev (nil: on top
// of the room's head), with auth events chosen from the room's current
// state.
func (rm remote) build(tb testing.TB, e *Engine, r *Room, prev *rooms.Event, typ string, stateKey *string, content string) *rooms.Event {
	tb.Helper()
	p, err := e.Proto(r, rm.user, typ, stateKey, json.RawMessage(content))
	if err != nil {
		tb.Fatal(err)
	}
	if prev != nil {
		p.PrevEvents = []string{prev.ID()}
		p.Depth = prev.Depth() + 1
	}
	ev, err := rooms.Build(p, r.Version, rm.server, rm.key)
	if err != nil {
		tb.Fatal(err)
	}
	return ev
}

// admitRemote admits an event from a peer and fails unless it is
// accepted.
func admitRemote(tb testing.TB, e *Engine, r *Room, ev *rooms.Event) *Outcome {
	tb.Helper()
	out, err := e.Admit(r, ev, Opts{})
	if err != nil {
		tb.Fatalf("admit %s: %v", ev, err)
	}
	if out.Rejected != nil || !out.Info.Usable() {
		tb.Fatalf("admit %s: %v %s", ev, out.Rejected, out.Info.Rec.Rejected)
	}
	return out
}

// BenchmarkEventFromStore reads events back by ID from an engine holding
// a room of 1,000 messages: cold reads each from the store and parses
// it, warm finds it in the event cache.
func BenchmarkEventFromStore(b *testing.B) {
	const n = 1000
	e := newPerfEngine(b, b.TempDir())
	r := newPerfRoom(b, e, rooms.V12)
	ids := sendMessages(b, e, r, n)
	b.Run("cold", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		start := testkit.CPUTime()
		for b.Loop() {
			id := ids[i%n]
			i++
			e.events.Del(id)
			if _, err := e.Event(id); err != nil {
				b.Fatal(err)
			}
		}
		reportCPU(b, start)
	})
	b.Run("warm", func(b *testing.B) {
		for _, id := range ids {
			if _, err := e.Event(id); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportAllocs()
		i := 0
		start := testkit.CPUTime()
		for b.Loop() {
			if _, err := e.Event(ids[i%n]); err != nil {
				b.Fatal(err)
			}
			i++
		}
		reportCPU(b, start)
	})
}

// BenchmarkAdmit admits messages from a peer into a room created here
// that the peer's user has joined, each message on top of the previous:
// the engine's part of receiving an event (parsing the bytes as they
// come off the wire, then admission and its queued write). Signature
// verification is left out: it is ed25519's cost, not the engine's.
func BenchmarkAdmit(b *testing.B) {
	e := newPerfEngine(b, b.TempDir())
	r := newPerfRoom(b, e, rooms.V12)
	bob := newRemote("bob")
	join := bob.build(b, e, r, nil, "m.room.member", &bob.user, `{"membership":"join"}`)
	if err := <-admitRemote(b, e, r, join).Committed; err != nil {
		b.Fatal(err)
	}
	raws := make([][]byte, b.N)
	prev := join
	for i := range raws {
		prev = bob.build(b, e, r, prev, "m.room.message", nil,
			fmt.Sprintf(`{"msgtype":"m.text","body":"message %d <with> some & text in it, as people write"}`, i))
		raws[i] = prev.JSON()
	}
	pending := make([]<-chan error, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	start := testkit.CPUTime()
	for _, raw := range raws {
		ev, err := rooms.ParseEvent(raw, r.Version)
		if err != nil {
			b.Fatal(err)
		}
		pending = append(pending, admitRemote(b, e, r, ev).Committed)
	}
	for _, c := range pending {
		if err := <-c; err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, start)
}

// reportCPU adds the CPU time per operation since start to b's results.
func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(testkit.CPUTime()-start)/float64(b.N), "cpu-ns/op")
}
