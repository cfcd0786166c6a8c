package rooms

import (
	"testing"
	"time"

	"github.com/parley-p2p/parley/internal/testkit"
)

// benchEvents are typical events of a room: a message, a member event and
// power levels, in their canonical JSON.
func benchEvents(b *testing.B) map[string][]byte {
	r := newTestRoom(b, V12)
	r.join(bob)
	msg := r.send(bob, "m.room.message", "-", `{"msgtype":"m.text","body":"hello <there>, a message of a usual length & with a link https://example.org/x"}`)
	return map[string][]byte{
		"message":      msg.JSON(),
		"member":       r.state[StateKey{"m.room.member", bob}].JSON(),
		"power_levels": r.state[powerLevelsKey].JSON(),
	}
}

func BenchmarkParseEvent(b *testing.B) {
	for name, raw := range benchEvents(b) {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(raw)))
			start := testkit.CPUTime()
			for b.Loop() {
				if _, err := ParseEvent(raw, V12); err != nil {
					b.Fatal(err)
				}
			}
			reportCPU(b, start)
		})
	}
}

// BenchmarkParseTrusted is ParseEvent's work for events read back from the
// node's own store.
func BenchmarkParseTrusted(b *testing.B) {
	for name, raw := range benchEvents(b) {
		e, err := ParseEvent(raw, V12)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(raw)))
			start := testkit.CPUTime()
			for b.Loop() {
				if _, err := ParseTrusted(raw, V12, e.ID()); err != nil {
					b.Fatal(err)
				}
			}
			reportCPU(b, start)
		})
	}
}

// reportCPU adds the CPU time per operation since start to b's results.
func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(testkit.CPUTime()-start)/float64(b.N), "cpu-ns/op")
}
