package peers

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parley-p2p/parley/node/dag"
	"github.com/parley-p2p/parley/node/e2ee"
	"github.com/parley-p2p/parley/node/internal/gencache"
	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/p2p"
	"github.com/parley-p2p/parley/rooms"
)

// Peers speaks parley's node-to-node protocol: it follows rooms over
// gossip, fills gaps and catches up, serves and asks for events, history,
// invites, joins and link uses, and keeps connections to rooms' servers.
type Peers struct {
	cfg        Config
	log        *slog.Logger
	key        ed25519.PrivateKey
	serverName string
	store      *store.Store
	host       *p2p.Host
	dag        *dag.Engine
	kem        *e2ee.KEMKey
	secrets    *secrets
	eph        ephemeral   // typing, presence, receipts (ephemeral.go)
	inner      p2p.Handler // serve, wrapped by Config.WrapHandler

	mu    sync.Mutex
	rooms map[string]*Room

	verified *gencache.Cache[string, *rooms.Event] // verified by the pubsub validator, not yet ingested
	visible  *gencache.Cache[string, bool]         // snapshot\x00server -> server had users in it

	// outbox holds local events waiting for publishOut, which publishes
	// them in order; publishing is set while it runs.
	outbox     chan outgoing
	publishing atomic.Bool

	gossipDropped atomic.Int64 // pubsub messages the validator refused
	roomWorkers   atomic.Int64 // running room workers: one per followed room
	gossipLog     *logLimiter  // lines about refused gossip

	keyst keyState // clients' own keys between nodes (devicekeys.go)

	dir directory // the public room directory across nodes (directory.go)

	media *mediaState // media between nodes (media.go); nil until SetMedia

	roomPeers roomPeers // the peers of the followed rooms' servers (relayset.go)
	dials     dials     // redials of room peers under way, and their backoff (maintain.go)
	noted     noted     // room peers' addresses last stored (peeraddrs.go)

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Config configures the node-to-node side of a node.
type Config struct {
	Host   *p2p.Host
	Engine *dag.Engine
	Store  *store.Store
	Key    ed25519.PrivateKey
	// RequestTimeout bounds each request to another node; default 20 s.
	RequestTimeout time.Duration
	// ReconnectInterval is how often lost room members are redialled;
	// default 15 s.
	ReconnectInterval time.Duration
	// OnInvite hears of an invite another node sent a local user, once
	// stored.
	OnInvite func(user string)
	// Logger; nil discards.
	Logger *slog.Logger
	// WrapHandler, if set, wraps the handler of opened requests (room
	// requests after their envelope is opened, and the room-less ones):
	// tests use it to make a node misbehave as a peer.
	WrapHandler func(p2p.Handler) p2p.Handler
}

// DefaultRequestTimeout bounds a request to another node when
// Config.RequestTimeout is not set.
const DefaultRequestTimeout = 20 * time.Second

// verifiedCacheBytes bounds the events the validator verified and the
// worker has not yet taken.
const verifiedCacheBytes = 32 << 20

func eventSize(ev *rooms.Event) int { return ev.Footprint() + 256 }

// New makes the peer side of a node; Start starts it.
func New(cfg Config) *Peers {
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	kem, err := e2ee.DeriveKEM(cfg.Key)
	if err != nil {
		panic(fmt.Sprintf("peers: KEM key from the server key: %v", err)) // only for a malformed key
	}
	ps := &Peers{
		cfg:        cfg,
		log:        log.With("component", "peers"),
		key:        cfg.Key,
		serverName: cfg.Engine.ServerName(),
		store:      cfg.Store,
		host:       cfg.Host,
		dag:        cfg.Engine,
		rooms:      make(map[string]*Room),
		verified:   gencache.NewSized[string](4096, verifiedCacheBytes, eventSize),
		visible:    gencache.New[string, bool](4096),
		gossipLog:  newLogLimiter(20, time.Minute),
		outbox:     make(chan outgoing, outboxSize),
		ctx:        ctx,
		cancel:     cancel,
		kem:        kem,
		secrets:    newSecrets(),
		eph:        ephemeral{kick: make(chan struct{}, 1)},
		dir:        newDirectory(),
		dials:      newDials(cfg.ReconnectInterval),
	}
	ps.keyst.kick = make(chan struct{}, 1)
	ps.inner = ps.serve
	if cfg.WrapHandler != nil {
		ps.inner = cfg.WrapHandler(ps.serve)
	}
	return ps
}

// Handler answers other nodes' requests.
func (ps *Peers) Handler() p2p.Handler { return ps.handleRequest }

// Start follows the stored rooms a local user is in and starts keeping
// connections to their servers. The host must be started.
func (ps *Peers) Start() error {
	ps.host.OnPeerConnected(ps.onPeerConnected)
	ps.host.OnPeerConnected(ps.onPeerUp)
	ps.host.OnPeerDisconnected(ps.onPeerDown)
	ps.host.OnAddrsChanged(ps.onAddrsChanged)
	if err := ps.loadPeerAddrs(); err != nil {
		return err
	}
	if err := ps.loadSecrets(); err != nil {
		return err
	}
	if err := ps.loadRooms(); err != nil {
		return err
	}
	ps.refreshRoomPeers()
	ps.goBackground(ps.maintainPeers)
	ps.publishing.Store(true)
	ps.goBackground(ps.publishOut)
	ps.goBackground(ps.deliverOutbox)
	ps.goBackground(ps.sendEphemeralLoop)
	ps.goBackground(ps.advertiseDirectory)
	if ps.media != nil {
		ps.goBackground(ps.mediaWorker)
	}
	return nil
}

// Close stops following every room and waits for the background work.
// Idempotent. The host and the store are the caller's.
func (ps *Peers) Close() {
	ps.cancel()
	ps.mu.Lock()
	for _, r := range ps.rooms {
		r.stop()
	}
	ps.mu.Unlock()
	ps.wg.Wait()
	ps.flushPeerAddrs(true) // peeraddrs.go
}

// GossipDropped counts the pubsub messages the validator refused.
func (ps *Peers) GossipDropped() int64 { return ps.gossipDropped.Load() }

// RoomWorkers counts the running room workers: one per followed room.
func (ps *Peers) RoomWorkers() int64 { return ps.roomWorkers.Load() }

// goBackground runs f in a goroutine Close waits for.
func (ps *Peers) goBackground(f func(ctx context.Context)) {
	ps.wg.Add(1)
	go func() {
		defer ps.wg.Done()
		f(ps.ctx)
	}()
}

// Publish sends an event to the room's other members (the engine's
// publish hook). Once Start has run it queues the event and returns: the
// event is durable already, and a local send need not wait for pubsub's
// event loop (1-3 ms of a send under load); events are published in the
// order they were queued.
func (ps *Peers) Publish(r *dag.Room, ev *rooms.Event) {
	if !ps.publishing.Load() {
		ps.publish(r, ev)
		return
	}
	select {
	case ps.outbox <- outgoing{r, ev}:
	case <-ps.ctx.Done():
	}
}

// LocalUser returns the localpart if the user lives on this node.
func (ps *Peers) LocalUser(user string) (string, bool) {
	s, err := rooms.ServerOf(user)
	if err != nil || s != ps.serverName {
		return "", false
	}
	return strings.TrimPrefix(strings.SplitN(user, ":", 2)[0], "@"), true
}

// userExists reports whether this node has an account with the localpart.
func (ps *Peers) userExists(localpart string) bool {
	err := ps.store.View(func(t *store.Txn) error {
		_, err := t.Account(localpart)
		return err
	})
	return err == nil
}

func nowMS() int64 { return time.Now().UnixMilli() }
