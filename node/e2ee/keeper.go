package e2ee

import (
	"context"
	"crypto/ed25519"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/parley-p2p/parley/node/dag"
	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/rooms"
)

// Config configures a Keeper. Store and Key are required.
type Config struct {
	// Store keeps the inbound sessions and the events waiting on a key.
	Store *store.Store
	// Key is the node's server key: the KEM key is derived from it and
	// its public half is the sender_key of every ciphertext.
	Key ed25519.PrivateKey
	// Visible reports whether server may read an event of a room (its
	// history visibility): a joiner is handed the sessions of exactly
	// those events. nil lets a joiner read every event.
	Visible func(roomID, eventID, server string) bool
	// SetPlain hands the engine an event's plaintext once its key came
	// late. nil uses the engine's SetPlain method, when it has one.
	SetPlain func(r *dag.Room, eventID string, plain []byte) error
	// Now is the clock of rotations; nil is time.Now.
	Now func() time.Time
	// Logger; nil discards.
	Logger *slog.Logger
}

// maxJobs bounds the background jobs (late decryption, history
// handovers) that run at once; up to maxQueued wait for a slot, and
// more are dropped (a peer's burst of events cannot pile them up).
const (
	maxJobs   = 4
	maxQueued = 1024
)

// Keeper encrypts the events this node builds and opens those it admits
// (it implements dag.Codec). It keeps one outbound Megolm session per
// room, in memory only: after a restart the node starts a new session at
// its first send, so no message index is ever used twice, even after a
// crash. Inbound sessions (its own copies included) are stored.
type Keeper struct {
	cfg    Config
	log    *slog.Logger
	st     *store.Store
	server string
	kem    *KEMKey
	now    func() time.Time

	engine   *dag.Engine
	setPlain func(r *dag.Room, eventID string, plain []byte) error

	acceptMu sync.Mutex // serialises accept

	// waitMu guards waits: events found waiting on a session whose
	// record (keyWait) is not written yet (see await). A mutex of its
	// own, as the store's writer takes it.
	waitMu sync.Mutex
	waits  map[string]map[string]waiter // session ID -> event ID -> its wait

	mu       sync.Mutex
	outs     map[string]*outbound   // room -> this node's session
	prep     map[string]*sync.Mutex // room -> serialises Prepare
	ins      map[string]*inbound    // session ID -> cached inbound session
	kemCache map[string]PublicKey   // member event ID -> parsed KEM key
	views    map[string]cachedView  // room -> its view at its last state

	closed bool // under mu: no job starts any more
	queued int  // under mu: jobs started and not ended
	jobs   chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// New makes a Keeper. It starts nothing; Attach gives it the engine it
// sends its key shares through.
func New(cfg Config) (*Keeper, error) {
	if cfg.Store == nil || cfg.Key == nil {
		return nil, errors.New("e2ee: store and key are required")
	}
	kem, err := DeriveKEM(cfg.Key)
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	pub := cfg.Key.Public().(ed25519.PublicKey)
	ctx, cancel := context.WithCancel(context.Background())
	return &Keeper{
		cfg: cfg, log: log.With("component", "e2ee"), st: cfg.Store,
		server: rooms.ServerName(pub), kem: kem, now: now,
		outs: map[string]*outbound{}, prep: map[string]*sync.Mutex{}, ins: map[string]*inbound{},
		kemCache: map[string]PublicKey{}, views: map[string]cachedView{},
		jobs: make(chan struct{}, maxJobs), ctx: ctx, cancel: cancel,
	}, nil
}

// Attach gives the keeper the engine it sends key shares through and
// hands late plaintexts to. Call it once, after dag.New, before the
// engine admits anything.
func (k *Keeper) Attach(e *dag.Engine) {
	k.engine = e
	k.setPlain = k.cfg.SetPlain
	if k.setPlain == nil {
		if sp, ok := any(e).(interface {
			SetPlain(r *dag.Room, eventID string, plain []byte) error
		}); ok {
			k.setPlain = sp.SetPlain
		}
	}
}

// KEM is the node's KEM key; its Doc goes in the node's own joins.
func (k *Keeper) KEM() *KEMKey { return k.kem }

// Close stops the background jobs and waits for them. Idempotent.
func (k *Keeper) Close() {
	k.once.Do(func() {
		k.mu.Lock()
		k.closed = true
		k.mu.Unlock()
		k.cancel()
	})
	k.wg.Wait()
}

// Sealed reports whether an event type is the keeper's own (a key share).
func (k *Keeper) Sealed(evType string) bool { return evType == ShareType }

// goJob runs f in the background, at most maxJobs at a time, unless
// the keeper is closed.
func (k *Keeper) goJob(f func(ctx context.Context)) {
	k.mu.Lock()
	if k.closed || k.engine == nil || k.queued >= maxQueued {
		k.mu.Unlock()
		k.log.Warn("background job dropped: too many queued")
		return
	}
	k.queued++
	k.wg.Add(1)
	k.mu.Unlock()
	go func() {
		defer func() {
			k.mu.Lock()
			k.queued--
			k.mu.Unlock()
			k.wg.Done()
		}()
		select {
		case k.jobs <- struct{}{}:
		case <-k.ctx.Done():
			return
		}
		defer func() { <-k.jobs }()
		f(k.ctx)
	}()
}

var _ dag.Codec = (*Keeper)(nil)
