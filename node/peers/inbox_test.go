package peers

import (
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
)

// TestAFloodingPeerCannotCrowdOutTheOthers: one peer fills its share of a
// room's inbox and is refused beyond it, while another peer's events are
// still queued; taking the events empties the inbox and its shares.
func TestAFloodingPeerCannotCrowdOutTheOthers(t *testing.T) {
	q := newInbox()
	flooder, other := peer.ID("flooder"), peer.ID("other")
	accepted := 0
	for range maxInbox {
		if q.push(gossipMsg{from: flooder}) {
			accepted++
		}
	}
	if accepted != maxInboxPerPeer {
		t.Fatalf("the flooder queued %d events, want its share %d", accepted, maxInboxPerPeer)
	}
	if !q.push(gossipMsg{from: other}) {
		t.Fatal("another peer's event was refused while the flooder held its share")
	}
	if got := len(q.take()); got != maxInboxPerPeer+1 {
		t.Fatalf("took %d events, want %d", got, maxInboxPerPeer+1)
	}
	if q.len() != 0 || !q.push(gossipMsg{from: flooder}) {
		t.Fatal("taking the events did not free the inbox")
	}
}

// TestTheInboxIsBoundedWhateverThePeers: events from many peers stop at
// maxInbox.
func TestTheInboxIsBoundedWhateverThePeers(t *testing.T) {
	q := newInbox()
	for i := range 2 * maxInbox {
		q.push(gossipMsg{from: peer.ID(rune('a' + i%26))})
	}
	if q.len() != maxInbox {
		t.Fatalf("the inbox holds %d events, want at most %d", q.len(), maxInbox)
	}
}
