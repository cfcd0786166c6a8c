package dag

import (
	"sync"
	"sync/atomic"

	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/rooms"
)

// Room is a room's head in memory. Its lock serialises every change to
// the room's DAG on this node; its head can be read at any time without
// it.
type Room struct {
	ID      string
	Version string

	mu   sync.Mutex
	head atomic.Pointer[Head] // replaced under mu, never changed in place
	// pos is the stream position of the room's latest event in the
	// timeline, once its write has a position (it may not have
	// committed yet: compare with the store's position).
	pos atomic.Uint64
	// redelivered is the stream position of the room's latest
	// redelivery (SetPlain).
	redelivered atomic.Uint64

	// broken is set when a write of the room failed. Memory moves ahead
	// of the disk while writes are in flight, so it may then hold events
	// the disk does not: every later write of the room fails too, until
	// rollBack (under mu) makes memory what the disk holds again.
	broken  atomic.Bool
	failMu  sync.Mutex
	failed  []string // events whose write failed, to forget
	failErr error    // the last failure
	// rollingBack is set while a rollBack is scheduled.
	rollingBack atomic.Bool
	// batch, when set, gathers the room's writes for one transaction
	// (CreateRoom) instead of queueing each.
	batch *[]batchedWrite
}

// Head is a room's forward extremities and current state. A Head is
// never changed once made.
type Head struct {
	Ext     []string       // forward extremities
	State   store.StateMap // current state
	StateID string
	Depth   int64
	// MinOrder is the lowest timeline order given to backfilled history.
	MinOrder uint64
}

// NewRoom makes an empty room; Add registers it with an engine.
func NewRoom(id, version string) *Room {
	r := &Room{ID: id, Version: version}
	r.head.Store(&Head{State: store.StateMap{}})
	return r
}

// Head is the room's current head.
func (r *Room) Head() *Head { return r.head.Load() }

// Pos is the stream position of the room's latest timeline event: a
// /sync since a later position has nothing new from the room.
func (r *Room) Pos() uint64 { return r.pos.Load() }

func (r *Room) notePos(p uint64) { noteMax(&r.pos, p) }

// noteMax raises v to p if p is higher.
func noteMax(v *atomic.Uint64, p uint64) {
	for {
		old := v.Load()
		if p <= old || v.CompareAndSwap(old, p) {
			return
		}
	}
}

// stamp brings a room record taken when its write was queued up to the
// positions of the room's writes before it: the caller runs in the
// store's writer, which runs them in order.
func (r *Room) stamp(rec *store.RoomRecord) {
	rec.Pos = max(rec.Pos, r.Pos())
	rec.Redelivered = max(rec.Redelivered, r.redelivered.Load())
}

// State is the room's current state map; it is never changed in place.
func (r *Room) State() store.StateMap { return r.head.Load().State }

func (r *Room) setHead(h Head) { r.head.Store(&h) }

// record is the room's head as stored. The caller holds r.mu.
func (r *Room) record() *store.RoomRecord {
	h := r.Head()
	return &store.RoomRecord{ID: r.ID, Version: r.Version, Extremities: h.Ext, State: h.StateID, Depth: h.Depth, MinOrder: h.MinOrder, Pos: r.Pos(), Redelivered: r.redelivered.Load()}
}

// CreateEventID is the create event's ID when the room ID implies it
// (room v12), else "".
func CreateEventID(r *Room) string { return createEventID(r.ID, r.Version) }

func createEventID(roomID, version string) string {
	if rooms.RoomIDHasServer(version) {
		return ""
	}
	return "$" + roomID[1:]
}

// Info is an event plus what this node knows about it.
type Info struct {
	Event *rooms.Event
	Rec   store.EventRecord // PDU not kept here
	pos   atomic.Uint64     // stream position once committed

	// durable is closed once the write of an event this node just
	// admitted has ended, with writeErr its result; nil for events read
	// from the store.
	durable  chan struct{}
	writeErr error
}

// Pos is the event's stream position: 0 until its write commits, and
// for events outside the timeline.
func (i *Info) Pos() uint64 { return i.pos.Load() }

// Written reports the result of the event's write: at once for an event
// read from the store, else once the write queued for it has ended. A
// second admission of an event whose write is still in flight so waits
// for it, and nothing publishes an event before its node holds it.
func (i *Info) Written() <-chan error {
	if i.durable == nil {
		return closedNil()
	}
	ch := make(chan error, 1)
	select {
	case <-i.durable:
		ch <- i.writeErr
		return ch
	default:
	}
	go func() {
		<-i.durable
		ch <- i.writeErr
	}()
	return ch
}

// Usable reports whether the event was not rejected.
func (i *Info) Usable() bool { return i.Rec.Rejected == "" }

// HasState reports whether the state after the event is known.
func (i *Info) HasState() bool { return i.Rec.StateAfter != "" && i.Rec.Rejected == "" }
