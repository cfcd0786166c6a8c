package dag_test

import (
	"testing"

	"github.com/parley-p2p/parley/node/dag"
	"github.com/parley-p2p/parley/rooms"
)

// benchMessages is a room on a fresh engine and n messages from peers
// that follow each other, built (and signed) before the clock starts.
func benchMessages(b *testing.B, n int) (*fixture, *dag.Room, []*rooms.Event) {
	b.Helper()
	f := newFixture(b, nil)
	br, evs := setupRoom(b, rooms.V12)
	r := f.room(br)
	f.admit(r, evs...)
	senders := []string{bob, carol, dave}
	msgs := make([]*rooms.Event, n)
	for i := range msgs {
		msgs[i] = br.msg(senders[i%len(senders)], "benchmark")
	}
	return f, r, msgs
}

// BenchmarkAdmitOneMessageAtATime admits a peer's message and waits for
// its write (an fsync'd Badger commit) before the next: the cost of one
// event arriving alone.
func BenchmarkAdmitOneMessageAtATime(b *testing.B) {
	f, r, msgs := benchMessages(b, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for _, ev := range msgs {
		out, err := f.e.Admit(r, ev, dag.Opts{})
		if err != nil || out.Rejected != nil {
			b.Fatalf("admit: %v %v", err, out.Rejected)
		}
		if err := <-out.Committed; err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAdmitABurstOfMessages admits messages back to back and waits
// for the writes at the end, as a burst of gossip arrives: the writes
// share group commits.
func BenchmarkAdmitABurstOfMessages(b *testing.B) {
	f, r, msgs := benchMessages(b, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	done := make([]<-chan error, 0, len(msgs))
	for _, ev := range msgs {
		out, err := f.e.Admit(r, ev, dag.Opts{})
		if err != nil || out.Rejected != nil {
			b.Fatalf("admit: %v %v", err, out.Rejected)
		}
		done = append(done, out.Committed)
	}
	for _, c := range done {
		if err := <-c; err != nil {
			b.Fatal(err)
		}
	}
}
