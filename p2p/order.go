package p2p

import (
	"encoding/binary"
	"errors"
	"maps"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Room messages reach a member along several paths at once: straight from the
// author (flood publishing) and relayed through the mesh. Whichever copy
// arrives first wins, so a burst from one author can arrive shuffled. To give
// Receivers each author's messages in the order they were published, every
// room message carries a small header, and the receiving side puts messages
// back in order, waiting a little for a missing one before giving up on it.
//
// On the topic, a message is
//
//	uvarint stream | uvarint seq | payload
//
// where stream is a random non-zero number the publisher picks each time it
// joins the room and seq counts its publishes in the room from 1.
const (
	// reorderWait is how long a message waits for an earlier one from the
	// same author before the gap is declared lost. Reordering between paths
	// takes well under a millisecond on a LAN and tens of milliseconds on
	// the internet; a real loss costs the author's next messages this delay.
	reorderWait = 200 * time.Millisecond
	// reorderWindow bounds how far ahead of the next expected message we
	// buffer. A larger jump means many messages were lost (or the receiver
	// joined late): deliver what we hold and carry on from the new position.
	reorderWindow = 1024
	// maxAuthors bounds the authors a room's orderer remembers; an author
	// is a publisher's stream (messages carry no pubsub author), any
	// number a peer cares to pick, so a stranger relaying
	// members' events under 100,000 made-up keys cost 20 MiB that was never
	// returned. Beyond the bound, idle authors are forgotten, and failing
	// that the least recently heard. A forgotten author's next message
	// starts its stream afresh, which costs it at most one reorderWait.
	maxAuthors = 1024
	// maxHeld and maxHeldBytes bound the messages a room's orderer holds
	// back for all authors together (reorderWindow bounds one author's
	// count, maxAuthors the authors, but their product, a million
	// messages of up to MaxMessageSize, is no bound at all). An honest
	// room holds what arrives in one reorderWait: at 1,000 msg/s, 200
	// messages. Beyond either bound, the author holding the most is
	// flushed first, so a flooding author loses its ordering, not the
	// others theirs.
	maxHeld      = 4096
	maxHeldBytes = 16 << 20
	// authorIdle is how long an author unheard from is remembered at
	// least; sweepEvery pushes, authors idle that long are forgotten.
	authorIdle = 10 * time.Minute
	sweepEvery = 4096
	// joinGrace is how long after joining a room the orderer takes an
	// author's stream first seen part-way (seq > 1) as one it came into
	// late: the earlier messages were published before we listened, and
	// waiting reorderWait for them delayed the first message from each
	// member after a join by 0.2 s. Later, a stream first seen part-way
	// is more likely a new one whose first message is still on its way,
	// worth the wait. Inside the grace, a message overtaken at that very
	// first sighting is delivered late rather than in order; the room's
	// engine holds an event whose parents are missing briefly, so order
	// is restored there.
	joinGrace = 30 * time.Second
)

var errBadEnvelope = errors.New("p2p: room message without a valid header")

// appendEnvelope appends the header and payload of a room message to dst.
func appendEnvelope(dst []byte, stream, seq uint64, payload []byte) []byte {
	dst = binary.AppendUvarint(dst, stream)
	dst = binary.AppendUvarint(dst, seq)
	return append(dst, payload...)
}

// openEnvelope splits a room message into its header and payload.
func openEnvelope(data []byte) (stream, seq uint64, payload []byte, err error) {
	stream, n := binary.Uvarint(data)
	if n <= 0 || stream == 0 {
		return 0, 0, nil, errBadEnvelope
	}
	seq, m := binary.Uvarint(data[n:])
	if m <= 0 || seq == 0 {
		return 0, 0, nil, errBadEnvelope
	}
	return stream, seq, data[n+m:], nil
}

// delivery is a message ready for the Receiver.
type delivery struct {
	from      peer.ID
	data      []byte
	validated any // the Validator's value (see Receiver)
}

// held is a message waiting in a reorder buffer.
type held struct {
	via       peer.ID // the peer that delivered it
	data      []byte
	validated any
}

// orderer restores per-author order for one room. It is used by the room's
// receive goroutine only, so it needs no lock.
type orderer struct {
	joined  time.Time // when the room was joined; zero: long ago
	authors map[peer.ID]*authorState
	waiting map[peer.ID]*authorState // authors with buffered messages
	out     []delivery               // reused result buffer
	pushes  int                      // since the last sweep
	held    int                      // messages in every author's pending
	bytes   int                      // their payload bytes
}

type authorState struct {
	stream  uint64
	next    uint64          // seq expected next
	pending map[uint64]held // messages ahead of next
	since   time.Time       // when the oldest buffered message arrived
	heard   time.Time       // when the author's last message arrived
}

// newOrderer returns the orderer of a room joined at joined (zero: long
// ago, so no stream is taken as came into late).
func newOrderer(joined time.Time) *orderer {
	return &orderer{
		joined:  joined,
		authors: make(map[peer.ID]*authorState),
		waiting: make(map[peer.ID]*authorState),
	}
}

// push takes a message as it arrives and returns the messages now ready, in
// order. The result is valid until the next call.
func (o *orderer) push(from peer.ID, stream, seq uint64, payload []byte, validated any, now time.Time) []delivery {
	return o.pushVia(from, from, stream, seq, payload, validated, now)
}

// pushVia is push for a message of the author known as from that the peer
// via delivered: deliveries name via.
func (o *orderer) pushVia(from, via peer.ID, stream, seq uint64, payload []byte, validated any, now time.Time) []delivery {
	o.out = o.out[:0]
	if o.pushes++; o.pushes >= sweepEvery {
		o.sweep(now, false)
	}
	a := o.authors[from]
	if a == nil && len(o.authors) >= maxAuthors {
		o.sweep(now, true)
	}
	if a == nil || a.stream != stream {
		if a != nil {
			o.flush(from, a) // what is left of the author's previous stream
		}
		// A stream seen from (nearly) its start waits for its first
		// messages; one joined late starts where we came in.
		a = &authorState{stream: stream, next: 1}
		if seq > reorderWindow || (!o.joined.IsZero() && now.Sub(o.joined) < joinGrace) {
			a.next = seq
		}
		o.authors[from] = a
	}
	a.heard = now
	switch {
	case seq < a.next:
		// Too late for its place (its gap was given up): still deliver.
		o.out = append(o.out, delivery{via, payload, validated})
	case seq == a.next:
		o.out = append(o.out, delivery{via, payload, validated})
		a.next++
		o.drain(from, a)
	case seq-a.next >= reorderWindow:
		o.flush(from, a)
		o.out = append(o.out, delivery{via, payload, validated})
		a.next = seq + 1
	default:
		if len(a.pending) == 0 {
			a.pending = make(map[uint64]held)
			a.since = now
			o.waiting[from] = a
		}
		if _, dup := a.pending[seq]; !dup {
			o.held++
			o.bytes += len(payload)
		}
		a.pending[seq] = held{via, payload, validated}
		for (o.held > maxHeld || o.bytes > maxHeldBytes) && o.flushLargest() {
		}
	}
	return o.out
}

// sweep forgets the authors idle for authorIdle, with nothing buffered.
// When room must be made and too few are idle, it forgets the least
// recently heard quarter, delivering what they buffered (a batch, so that
// a stream of new authors costs a sort per maxAuthors/4 of them, not a
// scan each). The map is rebuilt after a sweep that shrank it, since a Go
// map does not shrink as entries are deleted.
func (o *orderer) sweep(now time.Time, makeRoom bool) {
	o.pushes = 0
	before := len(o.authors)
	for p, a := range o.authors {
		if len(a.pending) == 0 && now.Sub(a.heard) >= authorIdle {
			delete(o.authors, p)
		}
	}
	if makeRoom && len(o.authors) >= maxAuthors {
		type heard struct {
			p  peer.ID
			at time.Time
		}
		all := make([]heard, 0, len(o.authors))
		for p, a := range o.authors {
			all = append(all, heard{p, a.heard})
		}
		slices.SortFunc(all, func(x, y heard) int { return x.at.Compare(y.at) })
		for _, h := range all[:len(all)-maxAuthors*3/4] {
			o.flush(h.p, o.authors[h.p])
			delete(o.authors, h.p)
		}
	}
	if before-len(o.authors) >= maxAuthors/4 {
		o.authors = maps.Clone(o.authors)
	}
}

// drain delivers buffered messages that have become next in line.
func (o *orderer) drain(from peer.ID, a *authorState) {
	for len(a.pending) > 0 {
		p, ok := a.pending[a.next]
		if !ok {
			return
		}
		delete(a.pending, a.next)
		o.release(p)
		o.out = append(o.out, delivery{p.via, p.data, p.validated})
		a.next++
	}
	delete(o.waiting, from)
}

// flush gives up on the gaps: it delivers everything buffered, in order.
func (o *orderer) flush(from peer.ID, a *authorState) {
	if len(a.pending) == 0 {
		return
	}
	seqs := make([]uint64, 0, len(a.pending))
	for s := range a.pending {
		seqs = append(seqs, s)
	}
	slices.Sort(seqs)
	for _, s := range seqs {
		p := a.pending[s]
		o.release(p)
		o.out = append(o.out, delivery{p.via, p.data, p.validated})
	}
	a.next = seqs[len(seqs)-1] + 1
	a.pending = nil
	delete(o.waiting, from)
}

// release takes a message leaving a pending buffer off the totals.
func (o *orderer) release(p held) {
	o.held--
	o.bytes -= len(p.data)
}

// flushLargest flushes the author holding the most messages back. It
// reports false if nobody holds any.
func (o *orderer) flushLargest() bool {
	var from peer.ID
	var most *authorState
	for p, a := range o.waiting {
		if most == nil || len(a.pending) > len(most.pending) {
			from, most = p, a
		}
	}
	if most == nil {
		return false
	}
	o.flush(from, most)
	return true
}

// deadline returns when the longest-waiting buffered message gives up.
func (o *orderer) deadline() (time.Time, bool) {
	var first time.Time
	for _, a := range o.waiting {
		if first.IsZero() || a.since.Before(first) {
			first = a.since
		}
	}
	if first.IsZero() {
		return time.Time{}, false
	}
	return first.Add(reorderWait), true
}

// expire flushes the authors that have waited long enough and returns the
// messages now ready. The result is valid until the next call.
func (o *orderer) expire(now time.Time) []delivery {
	o.out = o.out[:0]
	for from, a := range o.waiting {
		if !now.Before(a.since.Add(reorderWait)) {
			o.flush(from, a)
		}
	}
	return o.out
}
