package dag

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parley-p2p/parley/node/internal/gencache"

	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/rooms"
)

// Config configures an Engine.
type Config struct {
	// Store holds the node's events, states and rooms.
	Store *store.Store
	// Key signs the events this node builds; its public key is the
	// node's server name.
	Key ed25519.PrivateKey
	// Publish hands an event built here to the room's other members,
	// once the node holds it durably. nil publishes nothing (tests).
	Publish func(r *Room, ev *rooms.Event)
	// OnCommitted hears of every event that entered a room's timeline,
	// once its write has committed and its position is the store's: a
	// /sync of the room's members may have news. Called from the store's
	// writer: it must not block.
	OnCommitted func(r *Room)
	// OnTimeline, if set, hears of each event placed in a room's
	// timeline, live or as history, with its plain view (nil if none), as
	// the engine takes it in memory; and again, with the plain view, when
	// that comes late (SetPlain). how says which of the four it is. The
	// write it returns, if not nil, runs in the write that stores the
	// event (or its plain view), given the event's timeline order. It is
	// called with the room's lock held, before the write is queued: it may
	// read the engine and the store, but must not take the room's lock or
	// wait for a write.
	OnTimeline func(r *Room, ev *rooms.Event, plain []byte, how Arrival) func(t *store.Txn, order uint64) error
	// OnWriteFailed hears of every event whose write failed once the
	// engine has admitted it: the room's head is rolled back, so the
	// event is no longer known, and whoever took it from a peer may
	// fetch it again. Called from the store's writer: it must not block.
	OnWriteFailed func(r *Room, ev *rooms.Event, err error)
	// FailWrite, if set, fails the store write of the events it returns
	// an error for (tests inject I/O failures with it).
	FailWrite func(ev *rooms.Event, plain []byte) error
	// Codec encrypts the content of local events and opens that of
	// events from peers (codec.go); nil leaves content as it is.
	Codec Codec
	// Logger; nil discards.
	Logger *slog.Logger
}

// Engine admits events into rooms and keeps each room's head. It is safe
// for concurrent use; each room's changes are serialised by the room's
// lock, which the engine takes itself.
type Engine struct {
	cfg        Config
	log        *slog.Logger
	store      *store.Store
	key        ed25519.PrivateKey
	serverName string

	mu    sync.Mutex
	rooms map[string]*Room

	events *gencache.Cache[string, *Info]
	// members keeps what a member event says of its member (members.go):
	// small, so it holds every room's members while events come and go.
	members   *gencache.Cache[string, Member]
	snapshots *stateCache
	txns      *txnCache // user\x00device\x00txn -> event ID

	lastCreateMS atomic.Int64 // timestamp of the last create event built

	ctx    context.Context // ends background roll-backs
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New makes an engine over an open store. It starts nothing: Load brings
// the stored rooms into memory.
func New(cfg Config) *Engine {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Engine{
		cfg:        cfg,
		log:        log.With("component", "dag"),
		store:      cfg.Store,
		key:        cfg.Key,
		serverName: rooms.ServerName(cfg.Key.Public().(ed25519.PublicKey)),
		rooms:      make(map[string]*Room),
		events:     gencache.NewSized[string](20000, eventCacheBytes, (*Info).size),
		members:    gencache.New[string, Member](memberCacheEntries),
		snapshots:  newStateCache(stateCacheBytes),
		txns:       newTxnCache(maxTxnCacheBytes),
		ctx:        ctx,
		cancel:     cancel,
	}
}

// Close stops the engine's background work (roll-backs after failed
// writes) and waits for it. Idempotent. The store is the caller's.
func (e *Engine) Close() {
	e.cancel()
	e.wg.Wait()
}

// ServerName is the name of the server whose key signs local events.
func (e *Engine) ServerName() string { return e.serverName }

// goBackground runs f in a goroutine Close waits for.
func (e *Engine) goBackground(f func(ctx context.Context)) {
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		f(e.ctx)
	}()
}

// Room returns the room if this node holds it, else nil.
func (e *Engine) Room(id string) *Room {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.rooms[id]
}

// Rooms lists the rooms this node holds.
func (e *Engine) Rooms() []*Room {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]*Room, 0, len(e.rooms))
	for _, r := range e.rooms {
		out = append(out, r)
	}
	return out
}

// RoomCount is the number of rooms this node holds.
func (e *Engine) RoomCount() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.rooms)
}

// Add registers a room made with NewRoom once it holds its first events.
// It returns the room registered under that ID: r, or one added before.
func (e *Engine) Add(r *Room) (*Room, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if old, ok := e.rooms[r.ID]; ok {
		return old, false
	}
	e.rooms[r.ID] = r
	return r, true
}

// Load brings every stored room's head into memory and returns the rooms.
func (e *Engine) Load() ([]*Room, error) {
	var recs []*store.RoomRecord
	err := e.store.View(func(t *store.Txn) error {
		var err error
		recs, err = t.Rooms()
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make([]*Room, 0, len(recs))
	for _, rec := range recs {
		state, err := e.Snapshot(rec.State)
		if err != nil {
			return nil, fmt.Errorf("room %s: %w", rec.ID, err)
		}
		r := NewRoom(rec.ID, rec.Version)
		r.setHead(Head{Ext: rec.Extremities, State: state, StateID: rec.State, Depth: rec.Depth, MinOrder: rec.MinOrder})
		r.pos.Store(rec.Pos)
		r.redelivered.Store(rec.Redelivered)
		r, _ = e.Add(r)
		out = append(out, r)
	}
	return out, nil
}

func nowMS() int64 { return time.Now().UnixMilli() }

// StateCacheBytes reports the bytes the state cache holds and its budget.
func (e *Engine) StateCacheBytes() (held, budget int64) {
	return e.snapshots.bytes(), stateCacheBytes
}

// TxnCacheSize reports the client transactions the engine keeps in
// memory, their bytes, and the byte budget.
func (e *Engine) TxnCacheSize() (entries, bytes, budget int) {
	entries, bytes = e.txns.size()
	return entries, bytes, maxTxnCacheBytes
}

// Arrival says how an event reached the timeline, for Config.OnTimeline.
type Arrival uint8

const (
	// Live: accepted into the live timeline.
	Live Arrival = iota
	// LatePlain: the plain view of a live event, come after it.
	LatePlain
	// History: placed before the timeline's start (backfill).
	History
	// LateHistoryPlain: the plain view of a history event, come after it.
	LateHistoryPlain
)

// Late reports whether the event was heard before, without this plain
// view: what was written for it then is to be rewritten.
func (a Arrival) Late() bool { return a == LatePlain || a == LateHistoryPlain }

// Historic reports whether the event is history, older than the live
// timeline.
func (a Arrival) Historic() bool { return a == History || a == LateHistoryPlain }
