// The event filter: a Bloom filter of the IDs of stored events, so that
// asking for an event the node cannot hold yet costs no Badger read.

package store

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
)

// A full Bloom filter layer with bitsPerEvent bits and filterHashes probes
// per ID answers "maybe" for about 0.8% of unknown IDs. Per 100,000 events
// stored: Open makes room for twice as many, 250,000 bytes; a filter grown
// from empty to 100,000 events takes 143,360 bytes in three layers and
// passes about 2% of unknown IDs (TestEventFilterMemory).
const (
	bitsPerEvent = 10
	filterHashes = 7
	// minFilterEvents is the smallest capacity a layer is made for.
	minFilterEvents = 1 << 14
)

// eventFilter is a scalable Bloom filter: a stack of layers, each for
// twice the events of the one before. IDs are added to the newest layer;
// when it holds its capacity a new layer is added, so the filter grows
// with the events stored and never needs the IDs again. Open builds one
// layer sized for every stored event (twice their number), so the stack
// only grows while the process runs. Lookups and adds are safe from any
// goroutine: bits are set with atomic ORs, layers published with an
// atomic pointer.
//
// It answers "not stored" only for IDs never added; an ID added by a
// transaction that then failed stays as a false positive, which costs one
// read, never a wrong answer.
type eventFilter struct {
	seed   maphash.Seed
	layers atomic.Pointer[[]*filterLayer]
	grow   sync.Mutex // serialises adding layers
}

type filterLayer struct {
	bits     []atomic.Uint64
	m        uint64 // number of bits
	capacity int64
	count    atomic.Int64
}

func newFilterLayer(capacity int) *filterLayer {
	capacity = max(capacity, minFilterEvents)
	words := (capacity*bitsPerEvent + 63) / 64
	return &filterLayer{bits: make([]atomic.Uint64, words), m: uint64(words) * 64, capacity: int64(capacity)}
}

func newEventFilter(capacity int) *eventFilter {
	f := &eventFilter{seed: maphash.MakeSeed()}
	layers := []*filterLayer{newFilterLayer(capacity)}
	f.layers.Store(&layers)
	return f
}

// probes derives the filter's probe sequence from one 64-bit hash
// (double hashing: h1 + i*h2).
func (f *eventFilter) probes(id string) (h1, h2 uint64) {
	return mix(maphash.String(f.seed, id))
}

func mix(h uint64) (h1, h2 uint64) {
	return h, (h>>33|h<<31)*0x9e3779b97f4a7c15 | 1
}

func (l *filterLayer) has(h1, h2 uint64) bool {
	for i := range uint64(filterHashes) {
		b := (h1 + i*h2) % l.m
		if l.bits[b/64].Load()&(1<<(b%64)) == 0 {
			return false
		}
	}
	return true
}

func (l *filterLayer) add(h1, h2 uint64) {
	for i := range uint64(filterHashes) {
		b := (h1 + i*h2) % l.m
		l.bits[b/64].Or(1 << (b % 64))
	}
}

// mayHave is false only if id was never added.
func (f *eventFilter) mayHave(id string) bool {
	h1, h2 := f.probes(id)
	for _, l := range *f.layers.Load() {
		if l.has(h1, h2) {
			return true
		}
	}
	return false
}

// add records id, adding a layer when the newest one is full.
func (f *eventFilter) add(id string) { f.addHash(mix(maphash.String(f.seed, id))) }

// addBytes is add for an ID held in bytes (a key being iterated).
func (f *eventFilter) addBytes(id []byte) { f.addHash(mix(maphash.Bytes(f.seed, id))) }

func (f *eventFilter) addHash(h1, h2 uint64) {
	layers := *f.layers.Load()
	last := layers[len(layers)-1]
	last.add(h1, h2)
	if last.count.Add(1) < last.capacity {
		return
	}
	f.grow.Lock()
	defer f.grow.Unlock()
	if cur := *f.layers.Load(); cur[len(cur)-1] == last {
		next := append(append([]*filterLayer{}, cur...), newFilterLayer(int(last.capacity)*2))
		f.layers.Store(&next)
	}
}

// bytes is the memory the filter's bits take.
func (f *eventFilter) bytes() int {
	n := 0
	for _, l := range *f.layers.Load() {
		n += len(l.bits) * 8
	}
	return n
}
