package p2p

import (
	"crypto/sha256"
	"encoding/binary"
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"
)

// GossipSub puts every message it has not yet validated on one validation
// queue shared by all peers (validateQueue deep), and marks a message seen
// only once it is taken off the queue and its signature checked. So:
//
//   - copies of one message that arrive while the first waits are queued
//     too, and each costs a signature check before it is found a
//     duplicate. With flood publishing and a mesh of D, a message arrives up
//     to D+1 times, and a burst of 1,800 messages in a 10-member room
//     overflowed the 8,192-slot queue (BenchmarkRoom: 14,529 dropped);
//   - one peer sending faster than the node validates fills the queue, and
//     then every peer's messages are dropped.
//
// inflow sits in front of the queue (pubsub's RPC inspector, on pubsub's
// event loop) and strips from each incoming RPC the messages that are byte
// for byte copies of one already on its way through validation, and those
// beyond the sending peer's share: a token bucket of peerMsgBurst messages
// refilled at peerMsgRate a second. Stripped messages are dropped unread; a
// copy from another peer can still come through.
var (
	// peerMsgRate: a member of a room at the target 1,000 msg/s relays
	// each message it receives first, at most the whole room's rate; twice
	// that leaves room for a second busy room. Validation of a parley
	// event costs two ed25519 checks (~180 us), about 5,500 a second on
	// one core, so one peer can take at most about a third of it.
	peerMsgRate = 2000.0
	// peerMsgBurst: everyone in a 10-member room sending 200 at once.
	peerMsgBurst = 2048.0
)

const (
	// inflowGen is how many messages each of the two generations of
	// remembered digests holds (32 bytes each, ~64 with the map): at
	// least the validation queue's depth, so a digest outlives its
	// message's wait in the queue.
	inflowGen = validateQueue
)

type digest [sha256.Size]byte

type inflow struct {
	mu        sync.Mutex
	peers     map[peer.ID]*bucket
	cur, prev map[digest]struct{}
	now       func() time.Time
	dups      uint64 // copies stripped, for tests
	joined    func(topic string) bool
	throttled func(peer.ID)
}

type bucket struct {
	tokens float64
	at     time.Time
}

// newInflow: joined tells the rooms we are in (pubsub drops the messages of
// others unvalidated); throttled is called for each message over a peer's
// share.
func newInflow(joined func(string) bool, throttled func(peer.ID)) *inflow {
	return &inflow{
		peers:     make(map[peer.ID]*bucket),
		cur:       make(map[digest]struct{}),
		prev:      make(map[digest]struct{}),
		now:       time.Now,
		joined:    joined,
		throttled: throttled,
	}
}

// digestOf identifies a message byte for byte: a copy altered in any field
// has another digest, so it cannot shadow the genuine message.
func digestOf(m *pb.Message) digest {
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	for _, f := range [][]byte{m.GetFrom(), m.GetSeqno(), []byte(m.GetTopic()), m.GetSignature(), m.GetKey(), m.GetData()} {
		h.Write(binary.AppendUvarint(n[:0], uint64(len(f))))
		h.Write(f)
	}
	var d digest
	h.Sum(d[:0])
	return d
}

// inspect is the pubsub RPC inspector: it strips copies and the sender's
// messages beyond its share, keeping the RPC's control messages.
func (f *inflow) inspect(from peer.ID, rpc *pubsub.RPC) error {
	msgs := rpc.GetPublish()
	if len(msgs) == 0 {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	b := f.bucket(from)
	keep := msgs[:0]
	dropped := 0
	for _, m := range msgs {
		if !f.joined(m.GetTopic()) {
			keep = append(keep, m)
			continue
		}
		d := digestOf(m)
		if f.known(d) {
			f.dups++
			continue
		}
		if b.tokens < 1 {
			dropped++
			continue
		}
		b.tokens--
		f.remember(d)
		keep = append(keep, m)
	}
	clear(msgs[len(keep):])
	rpc.Publish = keep
	for range dropped {
		f.throttled(from)
	}
	return nil
}

// bucket returns from's token bucket, refilled for the time since.
func (f *inflow) bucket(from peer.ID) *bucket {
	now := f.now()
	b := f.peers[from]
	if b == nil {
		b = &bucket{tokens: peerMsgBurst, at: now}
		f.peers[from] = b
		return b
	}
	if dt := now.Sub(b.at).Seconds(); dt > 0 {
		b.tokens = min(peerMsgBurst, b.tokens+dt*peerMsgRate)
		b.at = now
	}
	return b
}

func (f *inflow) known(d digest) bool {
	if _, ok := f.cur[d]; ok {
		return true
	}
	_, ok := f.prev[d]
	return ok
}

func (f *inflow) remember(d digest) {
	if len(f.cur) >= inflowGen {
		f.prev, f.cur = f.cur, make(map[digest]struct{}, inflowGen)
	}
	f.cur[d] = struct{}{}
}

// dropped forgets a message pubsub dropped without validating it (its
// queue was full), so that a later copy is not taken for a duplicate.
func (f *inflow) dropped(m *pb.Message) {
	d := digestOf(m)
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.cur, d)
	delete(f.prev, d)
}

// forget drops a disconnected peer's bucket.
func (f *inflow) forget(p peer.ID) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.peers, p)
}

// sizes returns the buckets and digests held, for tests.
func (f *inflow) sizes() (peers, digests int, dups uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.peers), len(f.cur) + len(f.prev), f.dups
}
