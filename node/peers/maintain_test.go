package peers

import (
	"errors"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// TestDialsKeepOneDialPerPeerAndBackOff: a second dial to a peer waits
// for the first, a failed dial holds the next one back for a doubling
// while, a success forgets the failures, and prune keeps room peers only.
func TestDialsKeepOneDialPerPeerAndBackOff(t *testing.T) {
	d := newDials(time.Hour)
	const p, q peer.ID = "peer-p", "peer-q"
	now := time.Unix(1000, 0)
	if !d.begin(p, now) {
		t.Fatal("the first dial to p was refused")
	}
	if d.begin(p, now) {
		t.Fatal("a second dial to p started while the first was under way")
	}
	if !d.begin(q, now) {
		t.Fatal("a dial to q waited for p's")
	}
	failed := errors.New("unreachable")
	wait := 250 * time.Millisecond
	for i := 1; i <= 3; i++ {
		d.end(p, failed, now)
		if d.failures(p) != i {
			t.Fatalf("after %d failures failures() = %d", i, d.failures(p))
		}
		if d.begin(p, now.Add(wait-time.Millisecond)) {
			t.Fatalf("after %d failures a dial started before the %v backoff", i, wait)
		}
		now = now.Add(wait)
		if !d.begin(p, now) {
			t.Fatalf("after %d failures no dial once the %v backoff passed", i, wait)
		}
		wait *= 2
	}
	d.end(p, nil, now)
	if d.failures(p) != 0 {
		t.Errorf("a dial that worked left %d failures", d.failures(p))
	}
	d.end(q, failed, now)
	d.prune(func(x peer.ID) bool { return x != q })
	if d.failures(q) != 0 {
		t.Error("prune kept a peer that is no longer a room peer")
	}
	for range 40 {
		d.begin(p, now.Add(time.Hour))
		d.end(p, failed, now)
	}
	if !d.begin(p, now.Add(maxDialBackoff)) {
		t.Errorf("after 40 failures the backoff exceeds %v", maxDialBackoff)
	}
	short := newDials(200 * time.Millisecond)
	for range 10 {
		short.begin(q, now.Add(time.Hour))
		short.end(q, failed, now)
	}
	if !short.begin(q, now.Add(200*time.Millisecond)) {
		t.Error("with a 200 ms reconnect interval, the backoff exceeds the interval")
	}
}
