package p2p

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

func TestEnvelopeRoundTrip(t *testing.T) {
	data := appendEnvelope(nil, 7, 300, []byte("payload"))
	stream, seq, payload, err := openEnvelope(data)
	if err != nil || stream != 7 || seq != 300 || string(payload) != "payload" {
		t.Fatalf("openEnvelope = %d, %d, %q, %v", stream, seq, payload, err)
	}
	for _, bad := range [][]byte{nil, {0x00, 0x01}, {0x01, 0x00}, {0x80}, {0x01}, {0x01, 0x80}} {
		if _, _, _, err := openEnvelope(bad); err == nil {
			t.Errorf("openEnvelope(%x) accepted a bad header", bad)
		}
	}
}

// step is one event for an orderer: a message arriving (seq > 0) or the
// clock moving on (advance).
type step struct {
	author  peer.ID
	stream  uint64
	seq     uint64
	advance time.Duration
	want    []string // deliveries this step produces
}

func TestOrdererRestoresPublishingOrder(t *testing.T) {
	const a, b peer.ID = "author-a", "author-b"
	msg := func(p peer.ID, stream, seq uint64) string { return fmt.Sprintf("%s/%d/%d", string(p), stream, seq) }
	tests := []struct {
		name  string
		steps []step
	}{
		{"in-order messages pass straight through", []step{
			{author: a, stream: 1, seq: 1, want: []string{"author-a/1/1"}},
			{author: a, stream: 1, seq: 2, want: []string{"author-a/1/2"}},
		}},
		{"a message that overtook another waits for it", []step{
			{author: a, stream: 1, seq: 2},
			{author: a, stream: 1, seq: 3},
			{author: a, stream: 1, seq: 1, want: []string{"author-a/1/1", "author-a/1/2", "author-a/1/3"}},
		}},
		{"authors are ordered independently", []step{
			{author: a, stream: 1, seq: 2},
			{author: b, stream: 9, seq: 1, want: []string{"author-b/9/1"}},
			{author: a, stream: 1, seq: 1, want: []string{"author-a/1/1", "author-a/1/2"}},
		}},
		{"a lost message is given up after the wait", []step{
			{author: a, stream: 1, seq: 1, want: []string{"author-a/1/1"}},
			{author: a, stream: 1, seq: 3},
			{author: a, stream: 1, seq: 4},
			{advance: reorderWait - time.Millisecond},
			{advance: time.Millisecond, want: []string{"author-a/1/3", "author-a/1/4"}},
			{author: a, stream: 1, seq: 5, want: []string{"author-a/1/5"}},
			{author: a, stream: 1, seq: 2, want: []string{"author-a/1/2"}}, // late, still delivered
		}},
		{"a restarted author starts a new stream", []step{
			{author: a, stream: 1, seq: 1, want: []string{"author-a/1/1"}},
			{author: a, stream: 1, seq: 3},
			{author: a, stream: 2, seq: 1, want: []string{"author-a/1/3", "author-a/2/1"}},
		}},
		{"joining a long stream late starts where we came in", []step{
			{author: a, stream: 1, seq: 5000, want: []string{"author-a/1/5000"}},
			{author: a, stream: 1, seq: 5001, want: []string{"author-a/1/5001"}},
		}},
		{"a jump past the window flushes and moves on", []step{
			{author: a, stream: 1, seq: 1, want: []string{"author-a/1/1"}},
			{author: a, stream: 1, seq: 3},
			{author: a, stream: 1, seq: 2 + reorderWindow, want: []string{"author-a/1/3", msg(a, 1, 2+reorderWindow)}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := newOrderer(time.Time{})
			now := time.Unix(1000, 0)
			for i, s := range tt.steps {
				var got []delivery
				if s.seq == 0 {
					now = now.Add(s.advance)
					if d, ok := o.deadline(); ok && !now.Before(d) {
						got = o.expire(now)
					}
				} else {
					got = o.push(s.author, s.stream, s.seq, []byte(msg(s.author, s.stream, s.seq)), nil, now)
				}
				var names []string
				for _, d := range got {
					names = append(names, string(d.data))
				}
				if !slices.Equal(names, s.want) {
					t.Fatalf("step %d: delivered %v, want %v", i, names, s.want)
				}
			}
		})
	}
}

// TestOrdererForgetsAuthorsItCannotAfford: 100,000 made-up authors sending
// one message each leave at most maxAuthors remembered, at a bounded cost
// in memory, and once they fall idle the orderer shrinks to the authors
// still talking.
func TestOrdererForgetsAuthorsItCannotAfford(t *testing.T) {
	const fakes = 100000
	o := newOrderer(time.Time{})
	now := time.Unix(1000, 0)
	before := heapInUse()
	delivered := 0
	for i := range fakes {
		delivered += len(o.push(peer.ID(fmt.Sprintf("fake-author-%06d", i)), 1, 1, []byte("x"), nil, now))
	}
	grew := int64(heapInUse()) - int64(before)
	if delivered != fakes {
		t.Errorf("%d of %d messages delivered", delivered, fakes)
	}
	if len(o.authors) > maxAuthors {
		t.Errorf("the orderer remembers %d authors, more than %d", len(o.authors), maxAuthors)
	}
	if limit := int64(2 << 20); grew > limit {
		t.Errorf("remembering the authors grew the heap by %d KiB, more than %d KiB", grew>>10, limit>>10)
	}
	// The fakes fall silent; one honest author keeps talking.
	later := now.Add(authorIdle)
	for seq := range uint64(sweepEvery) {
		o.push("honest", 7, seq+1, []byte("y"), nil, later)
	}
	if len(o.authors) != 1 {
		t.Errorf("after the fakes fell idle the orderer remembers %d authors, want 1", len(o.authors))
	}
	t.Logf("100,000 fake authors grew the heap by %d KiB", grew>>10)
}

// TestOrdererBoundsWhatItHoldsForAllAuthors: authors that send gaps on
// purpose cannot make a room's orderer hold more than maxHeld messages or
// maxHeldBytes, and the author holding the most is flushed first, so an
// honest author's short wait is not cut.
func TestOrdererBoundsWhatItHoldsForAllAuthors(t *testing.T) {
	t.Run("in messages", func(t *testing.T) {
		o := newOrderer(time.Time{})
		now := time.Unix(1000, 0)
		if got := o.push("honest", 1, 2, []byte("h2"), nil, now); len(got) != 0 {
			t.Fatalf("honest seq 2 delivered before seq 1: %v", got)
		}
		flooded := 0
		for a := range 8 {
			author := peer.ID(fmt.Sprintf("flooder-%d", a))
			for seq := uint64(2); seq < reorderWindow; seq++ {
				flooded += len(o.push(author, 1, seq, []byte("f"), nil, now))
				if o.held > maxHeld {
					t.Fatalf("the orderer holds %d messages, more than %d", o.held, maxHeld)
				}
			}
		}
		if flooded == 0 {
			t.Error("no flooder's messages were flushed, yet 8 x 1,022 were held back")
		}
		got := o.push("honest", 1, 1, []byte("h1"), nil, now)
		if len(got) != 2 || string(got[0].data) != "h1" || string(got[1].data) != "h2" {
			t.Errorf("honest seq 1 delivered %v, want h1 then h2 (h2 held through the flood)", got)
		}
	})
	t.Run("in bytes", func(t *testing.T) {
		o := newOrderer(time.Time{})
		now := time.Unix(1000, 0)
		big := make([]byte, 1<<20)
		most, delivered := 0, 0
		for seq := uint64(2); seq < 100; seq++ {
			delivered += len(o.push("flooder", 1, seq, big, nil, now))
			if o.bytes > maxHeldBytes {
				t.Fatalf("the orderer holds %d bytes, more than %d", o.bytes, maxHeldBytes)
			}
			if o.bytes != o.held*len(big) {
				t.Fatalf("held %d messages of %d bytes in all; the counts disagree", o.held, o.bytes)
			}
			most = max(most, o.bytes)
		}
		if most < maxHeldBytes-len(big) || delivered != 98 {
			t.Errorf("held at most %d bytes and delivered %d of 98: the bound was not reached, or lost messages", most, delivered)
		}
	})
	t.Run("and gives it all back", func(t *testing.T) {
		o := newOrderer(time.Time{})
		now := time.Unix(1000, 0)
		for seq := uint64(2); seq < 50; seq++ {
			o.push("a", 1, seq, []byte("x"), nil, now)
		}
		o.expire(now.Add(reorderWait))
		if o.held != 0 || o.bytes != 0 {
			t.Errorf("after every gap expired the orderer counts %d messages, %d bytes held", o.held, o.bytes)
		}
	})
}

// TestOrdererStartsWhereItCameInRightAfterAJoin: in the first joinGrace after
// joining, a stream first seen part-way is one the node came into late
// (the members' earlier messages were published before it listened), so its
// first message is delivered at once instead of after reorderWait; later, a
// stream first seen part-way waits for its start as before.
func TestOrdererStartsWhereItCameInRightAfterAJoin(t *testing.T) {
	joined := time.Unix(1000, 0)
	o := newOrderer(joined)
	names := func(ds []delivery) []string {
		var out []string
		for _, d := range ds {
			out = append(out, string(d.data))
		}
		return out
	}
	now := joined.Add(time.Second)
	if got := names(o.push("member", 7, 12, []byte("m12"), nil, now)); !slices.Equal(got, []string{"m12"}) {
		t.Fatalf("first message after the join: delivered %v, want [m12] at once", got)
	}
	if got := names(o.push("member", 7, 14, []byte("m14"), nil, now)); len(got) != 0 {
		t.Fatalf("a gap after the first message is still waited for; delivered %v", got)
	}
	if got := names(o.push("member", 7, 13, []byte("m13"), nil, now)); !slices.Equal(got, []string{"m13", "m14"}) {
		t.Fatalf("delivered %v, want [m13 m14]", got)
	}
	later := joined.Add(joinGrace)
	if got := names(o.push("newcomer", 9, 2, []byte("n2"), nil, later)); len(got) != 0 {
		t.Fatalf("after the grace, a stream first seen at seq 2 waits for seq 1; delivered %v", got)
	}
	if got := names(o.push("newcomer", 9, 1, []byte("n1"), nil, later)); !slices.Equal(got, []string{"n1", "n2"}) {
		t.Fatalf("delivered %v, want [n1 n2]", got)
	}
}
