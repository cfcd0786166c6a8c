package p2p

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	"github.com/libp2p/go-libp2p/p2p/host/eventbus"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// Names parley uses on the wire. They keep parley's DHT, pubsub topics and
// LAN announcements apart from every other libp2p network.
const (
	DHTProtocolPrefix = "/parley"    // kad-dht protocol prefix: /parley/kad/1.0.0
	MDNSServiceName   = "parley"     // mDNS service name
	RoomTopicPrefix   = "/parley/t/" // GossipSub topic of a room: prefix + an opaque name (TopicKey)
)

// DefaultListenAddrs are the listen addresses used when Config.ListenAddrs is
// empty: port 4001 on all IPv4 and all IPv6 interfaces, TCP and QUIC. Many
// home networks give each device a global IPv6 address, and two nodes with
// one often connect directly, no NAT in the way. The IPv6 ones are
// best-effort: on a host without IPv6 they are skipped (see Start).
var DefaultListenAddrs = []string{
	"/ip4/0.0.0.0/tcp/4001",
	"/ip4/0.0.0.0/udp/4001/quic-v1",
	"/ip6/::/tcp/4001",
	"/ip6/::/udp/4001/quic-v1",
}

// Errors returned by a Host used outside its lifetime.
var (
	ErrNotStarted = errors.New("p2p: host not started")
	ErrClosed     = errors.New("p2p: host closed")
)

// How long background dials (bootstrap peers, mDNS finds) may take.
const backgroundDialTimeout = 30 * time.Second

// Config configures a Host. Only Key is required.
type Config struct {
	// Key is the node's identity; the peer ID and the server name derive from it.
	Key ed25519.PrivateKey

	// ListenAddrs are multiaddrs to listen on. Default: DefaultListenAddrs.
	// Every address given here must bind, or Start fails; of the defaults,
	// an IPv6 address that cannot bind is skipped with a warning.
	ListenAddrs []string

	// Bootstrap peers, as multiaddrs ending in /p2p/<peer ID>. Start dials
	// them in the background and the DHT falls back to them whenever its
	// routing table runs empty.
	Bootstrap []string

	// NoMDNS turns off LAN discovery over mDNS (service name "parley").
	NoMDNS bool

	// Relays are circuit relay v2 servers, as multiaddrs ending in
	// /p2p/<peer ID>. While the node is not known to be publicly reachable,
	// it keeps reservations with up to two relays, these first and then
	// bootstrap peers that offer the relay service, and advertises circuit
	// addresses through them (see RelayAddrs). Default: none, bootstrap
	// peers only.
	Relays []string

	// RelayService makes the node a relay for others (circuit relay v2,
	// limits documented at relayLimitDuration). Set it only on a node that
	// is reachable from the internet (a public address or a forwarded
	// port): it declares the node publicly reachable without asking AutoNAT.
	RelayService bool

	// Members reports whether p is the peer of a server that shares a room
	// with this node. Without RelayService, a node that finds itself
	// publicly reachable relays for members only (relay.go, "member
	// relay"), and members are relay candidates. It is called on libp2p's
	// goroutines: it must be fast and must not block. Nil: nobody.
	Members func(p peer.ID) bool
	// MemberPeers lists the peers Members allows, for choosing relays.
	MemberPeers func() []peer.ID
	// NoMemberRelay turns the member relay off.
	NoMemberRelay bool

	// NoPortMap turns off port mapping (UPnP IGD, NAT-PMP) on the home
	// router; by default the host asks the router to forward its ports
	// (discovery runs in the background, for up to 10 s), unless it
	// listens on loopback only. NetStatus shows what was mapped.
	NoPortMap bool

	// PublicNetwork lets the node use the public libp2p network (the IPFS
	// DHT's bootstrap peers and the relays its nodes offer) to find relays.
	// It tells those peers the node's addresses and peer ID. Default off.
	PublicNetwork bool

	// Gater, if set, can refuse connections; tests use it to partition nodes.
	Gater connmgr.ConnectionGater

	// Logger receives the package's logs (with component=p2p). Nil discards them.
	Logger *slog.Logger

	// Options are extra libp2p options, applied after parley's own: forced
	// reachability (tests on loopback need it: libp2p counts loopback and
	// LAN addresses as private), or a simulated network in tests. Options
	// that libp2p allows only once (identity, resource manager, connection
	// manager, gater, transports' listen addresses, the address factory,
	// the NAT manager) are owned by the Host and must not be repeated here
	// (libp2p.New fails naming the clash); nor may libp2p's auto-relay be
	// enabled: the Host keeps relay reservations itself (Relays), nor hole
	// punching be configured again (it would drop the Host's tracer that
	// NetStatus reads the NAT type from).
	Options []libp2p.Option
}

type lifecycle int

const (
	stateNew lifecycle = iota
	stateRunning
	stateClosed
)

// Host is a parley node's presence on the network: a libp2p host with the
// parley DHT, mDNS, GossipSub rooms and the request protocol. Create it with
// New, run it with Start, stop it with Close.
type Host struct {
	log       *slog.Logger
	key       crypto.PrivKey
	id        peer.ID
	name      string
	listen    []ma.Multiaddr
	bootstrap []peer.AddrInfo
	relays    []peer.AddrInfo // Config.Relays
	noMDNS    bool
	service   bool // Config.RelayService
	gater     connmgr.ConnectionGater
	extra     []libp2p.Option

	// The node's own addresses (addrs.go).
	listenDefault bool // ListenAddrs were the defaults: IPv6 is best-effort
	portMap       bool // ask the router for port mappings (Config.NoPortMap off)
	addrs         addrState

	reach atomic.Int32 // network.Reachability, kept by the relay loop

	mr  memberRelay // this node's relay service and members as relays (relay.go)
	pub publicNet   // the public libp2p network (publicnet.go)

	// Relay reservations (relay.go). held is replaced whole by the relay
	// loop under relayMu; relayRetry and announced belong to the relay loop.
	relayMu       sync.Mutex
	held          map[peer.ID]heldRelay
	relayRetry    map[peer.ID]retryAt
	announced     []ma.Multiaddr // circuit addresses given to libp2p
	relayAddrsOut event.Emitter

	handler atomic.Pointer[Handler]
	admit   *admission // request slots (admission.go)
	subs    *subFilter // topics peers may make us track (subfilter.go)
	inflow  *inflow    // copies and floods kept off the validation queue (inflow.go)
	stats   counters

	pspaths   *pubsubPaths // GossipSub's streams on path changes (resync.go)
	pathStats pathCounters // paths.go
	live      *liveness    // what GossipSub heard from each peer (liveness.go)

	// life serialises Start and Close.
	life sync.Mutex

	// mu guards everything below; it is never held while calling out of
	// the package nor while waiting for pubsub's event loop to answer
	// on behalf of a callback.
	mu        sync.Mutex
	state     lifecycle
	onConnect []func(peer.ID)
	onDown    []func(peer.ID) // OnPeerDisconnected
	onAddrs   []func()        // OnAddrsChanged
	pending   []peer.AddrInfo // AddAddrs before Start
	rooms     map[string]*room
	lh        host.Host
	dht       *dht.IpfsDHT
	ps        *pubsub.PubSub
	tracer    *tracer
	mdns      mdns.Service
	ctx       context.Context // cancelled by Close
	cancel    context.CancelFunc
	wg        sync.WaitGroup // goroutines the Host started
}

// New checks cfg and returns a Host that has not started: it binds nothing and
// starts no goroutine. A malformed multiaddr is an error that names it.
func New(cfg Config) (*Host, error) {
	key, err := libp2pKey(cfg.Key)
	if err != nil {
		return nil, err
	}
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("p2p: peer ID from node key: %w", err)
	}
	h := &Host{
		key:        key,
		id:         id,
		name:       ServerName(cfg.Key.Public().(ed25519.PublicKey)),
		noMDNS:     cfg.NoMDNS,
		service:    cfg.RelayService,
		gater:      cfg.Gater,
		extra:      cfg.Options,
		rooms:      make(map[string]*room),
		relayRetry: make(map[peer.ID]retryAt),
		admit:      newAdmission(),
		subs:       newSubFilter(),
		pspaths:    newPubsubPaths(),
		live:       newLiveness(),

		listenDefault: len(cfg.ListenAddrs) == 0,
	}
	h.initRelay(cfg)
	h.addrs.init()
	h.inflow = newInflow(h.subs.isJoined, func(p peer.ID) {
		h.countAndLog(&h.stats.throttled, "pubsub: peer over its share of validation, message dropped", "peer", p)
	})
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	h.log = logger.With("component", "p2p")

	listen := cfg.ListenAddrs
	if len(listen) == 0 {
		listen = DefaultListenAddrs
	}
	for _, s := range listen {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("p2p: listen address %q: %w", s, err)
		}
		h.listen = append(h.listen, a)
	}
	h.portMap = !cfg.NoPortMap && slices.ContainsFunc(h.listen, mappable)
	for _, s := range cfg.Bootstrap {
		ai, err := peer.AddrInfoFromString(s)
		if err != nil {
			return nil, fmt.Errorf("p2p: bootstrap address %q: %w", s, err)
		}
		if ai.ID == id {
			continue // our own address in a shared bootstrap list
		}
		h.bootstrap = append(h.bootstrap, *ai)
	}
	for _, s := range cfg.Relays {
		ai, err := peer.AddrInfoFromString(s)
		if err != nil {
			return nil, fmt.Errorf("p2p: relay address %q: %w", s, err)
		}
		if ai.ID == id {
			continue // a relay does not relay for itself
		}
		h.relays = append(h.relays, *ai)
	}
	return h, nil
}

// ID returns the node's libp2p peer ID.
func (h *Host) ID() peer.ID { return h.id }

// ServerName returns the node's Matrix server name (hex of its public key).
func (h *Host) ServerName() string { return h.name }

// Start binds every listen address (a port in use is an error returned here),
// then starts the DHT in server mode under the /parley prefix, GossipSub, the
// request protocol and mDNS, and dials the bootstrap peers in the background.
// Nothing in Start waits on the network: ctx is only checked on entry, and the
// host runs until Close. A Host starts once (a failed Start may be retried).
func (h *Host) Start(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("p2p: start: %w", err)
	}
	h.life.Lock()
	defer h.life.Unlock()
	h.mu.Lock()
	state := h.state
	h.mu.Unlock()
	switch state {
	case stateRunning:
		return errors.New("p2p: host already started")
	case stateClosed:
		return ErrClosed
	}

	lh, err := h.newLibp2p()
	if err != nil {
		return err
	}
	// Tear down whatever got started if a later step fails.
	var kad *dht.IpfsDHT
	hctx, cancel := context.WithCancel(context.Background())
	fail := func(err error) error {
		cancel()
		if kad != nil {
			kad.Close()
		}
		h.abortPublicNet()
		lh.Close()
		return err
	}

	for _, a := range h.listen {
		err := checkTCPPortFree(a)
		if err == nil {
			err = lh.Network().Listen(a)
		}
		if err != nil && h.listenDefault && isIP6(a) {
			// A host without IPv6 (or with it turned off) still starts.
			h.log.Warn("not listening on a default IPv6 address", "addr", a, "err", err)
			continue
		}
		if err != nil {
			return fail(fmt.Errorf("p2p: listen on %s: %w", a, err))
		}
	}

	kad, err = dht.New(lh,
		dht.Mode(dht.ModeServer),
		dht.ProtocolPrefix(DHTProtocolPrefix),
		dht.BootstrapPeers(h.bootstrap...),
	)
	if err != nil {
		return fail(fmt.Errorf("p2p: start DHT: %w", err))
	}
	if err := h.startPublicNet(lh); err != nil {
		return fail(err)
	}
	tr := newTracer(h)
	ps, err := h.newPubSub(hctx, lh, tr)
	if err != nil {
		return fail(fmt.Errorf("p2p: start pubsub: %w", err))
	}
	peerEvents, err := lh.EventBus().Subscribe(new(event.EvtPeerConnectednessChanged), eventbus.BufSize(1024))
	if err != nil {
		return fail(fmt.Errorf("p2p: subscribe to peer events: %w", err))
	}
	relayEvents, err := h.relayClientEvents(lh)
	if err != nil {
		peerEvents.Close()
		return fail(err)
	}
	addrEvents, err := lh.EventBus().Subscribe(addrsEvents, eventbus.Name("parley addrs"), eventbus.BufSize(256))
	if err != nil {
		peerEvents.Close()
		relayEvents.Close()
		return fail(fmt.Errorf("p2p: subscribe to address events: %w", err))
	}

	h.mu.Lock()
	h.state = stateRunning
	h.lh, h.dht, h.ps, h.tracer = lh, kad, ps, tr
	h.ctx, h.cancel = hctx, cancel
	pending := h.pending
	h.pending = nil
	h.goLocked(func() { h.peerEventLoop(peerEvents) })
	kick := make(chan struct{}, 1)
	h.goLocked(func() { h.relayWatch(relayEvents, kick) })
	h.goLocked(func() { h.relayLoop(lh, kick) })
	h.goLocked(func() { h.memberRelayLoop(lh) })
	h.goLocked(h.rehelloLoop)
	h.goLocked(func() { h.addrsLoop(addrEvents) })
	h.goLocked(func() { h.pathsLoop(lh) })
	h.goLocked(func() { h.livenessLoop(lh) })
	h.mu.Unlock()

	lh.SetStreamHandler(RequestProtocol, h.serveStream)
	for _, ai := range pending {
		lh.Peerstore().AddAddrs(ai.ID, ai.Addrs, peerstore.PermanentAddrTTL)
	}
	for _, ai := range h.bootstrap {
		lh.Peerstore().AddAddrs(ai.ID, ai.Addrs, peerstore.PermanentAddrTTL)
		h.spawn(func() { h.dialBackground(ai, "bootstrap") })
	}
	if !h.noMDNS {
		svc := mdns.NewMdnsService(lh, MDNSServiceName, mdnsNotifee{h})
		if err := svc.Start(); err != nil {
			// A machine without multicast still works through the DHT.
			h.log.Warn("mDNS not started", "err", err)
		} else {
			h.mu.Lock()
			h.mdns = svc
			h.mu.Unlock()
		}
	}
	h.log.Info("p2p host started", "peer", h.id, "addrs", h.Addrs())
	return nil
}

// Close stops the host: it leaves every room, stops mDNS, the DHT and libp2p,
// and waits for every goroutine the Host started (stream handlers included, so
// Handlers must honour their context). Close is idempotent; a Host that never
// started just becomes unusable.
func (h *Host) Close() error {
	h.life.Lock()
	defer h.life.Unlock()
	h.mu.Lock()
	if h.state != stateRunning {
		h.state = stateClosed
		h.mu.Unlock()
		return nil
	}
	h.state = stateClosed
	rooms := h.rooms
	h.rooms = make(map[string]*room)
	svc := h.mdns
	h.mu.Unlock()

	var errs []error
	if svc != nil {
		errs = append(errs, svc.Close())
	}
	for _, r := range rooms {
		errs = append(errs, h.closeRoom(r))
	}
	h.cancel()
	errs = append(errs, h.closePublicNet(), h.dht.Close(), h.lh.Close())
	h.wg.Wait()
	if h.relayAddrsOut != nil {
		errs = append(errs, h.relayAddrsOut.Close())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("p2p: close: %w", err)
	}
	return nil
}

// newLibp2p builds the libp2p host without listening anywhere yet.
func (h *Host) newLibp2p() (host.Host, error) {
	rm, err := newResourceManager()
	if err != nil {
		return nil, fmt.Errorf("p2p: resource manager: %w", err)
	}
	cm, err := newConnManager()
	if err != nil {
		rm.Close()
		return nil, fmt.Errorf("p2p: connection manager: %w", err)
	}
	opts := baseOptions(h.key, rm, cm)
	opts = append(opts, h.relayOptions()...)
	opts = append(opts, h.addrOptions()...)
	opts = append(opts, h.extra...)
	if h.gater != nil {
		opts = append(opts, libp2p.ConnectionGater(h.gater))
	}
	lh, err := libp2p.New(opts...)
	if err != nil {
		cm.Close()
		rm.Close()
		return nil, fmt.Errorf("p2p: libp2p host: %w", err)
	}
	return lh, nil
}

// checkTCPPortFree fails if a TCP listen address with a fixed port is already
// bound. libp2p listens on TCP with SO_REUSEPORT, so a second node on the same
// port would otherwise bind too and the kernel would split incoming
// connections between the two processes. A plain bind (no SO_REUSEPORT)
// cannot share the port, so it detects the clash.
func checkTCPPortFree(a ma.Multiaddr) error {
	na, err := manet.ToNetAddr(a)
	if err != nil {
		return nil // not plain TCP: the transport reports its own errors
	}
	ta, ok := na.(*net.TCPAddr)
	if !ok || ta.Port == 0 {
		return nil
	}
	// By family: "tcp" on [::] opens a dual-stack socket, which clashes
	// with our own IPv4 listener on the same port.
	family := "tcp4"
	if ta.IP.To4() == nil {
		family = "tcp6"
	}
	l, err := net.ListenTCP(family, ta)
	if err != nil {
		return err
	}
	return l.Close()
}

// running returns the libp2p host and DHT, or an error if the host is not
// running.
func (h *Host) running() (host.Host, *dht.IpfsDHT, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch h.state {
	case stateNew:
		return nil, nil, ErrNotStarted
	case stateClosed:
		return nil, nil, ErrClosed
	}
	return h.lh, h.dht, nil
}

// goLocked runs f on a goroutine Close waits for. The caller holds h.mu and
// has checked that the host is running.
func (h *Host) goLocked(f func()) {
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		f()
	}()
}

// spawn runs f on a goroutine Close waits for, unless the host is not running.
func (h *Host) spawn(f func()) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.state != stateRunning {
		return false
	}
	h.goLocked(f)
	return true
}

// LibP2P returns the underlying libp2p host (nil before Start). It is an
// escape hatch for tests and diagnostics.
func (h *Host) LibP2P() host.Host {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lh
}

// Addrs returns the node's dialable addresses as full multiaddrs ending in
// /p2p/<peer ID>: what identify tells peers (addrsFactory: interface
// addresses for unspecified listen addresses, global IPv6 included, mapped
// ports, circuit addresses, loopback only when there is nothing else), plus
// circuit addresses through every relay the node holds a reservation with
// (RelayAddrs), even one made this second. Nil before Start.
func (h *Host) Addrs() []string {
	lh, _, err := h.running()
	if err != nil {
		return nil
	}
	addrs := lh.Addrs()
	if len(addrs) == 0 {
		// libp2p's address list is its own; whenever it is empty the
		// bound listen addresses still tell others where to dial.
		addrs = boundAddrs(lh)
	}
	// The address factory lists a reservation's circuit addresses once it
	// has settled (announceRelayAddrs); an invite link made earlier should
	// carry them too.
	for _, a := range h.circuitAddrs() {
		if !slices.ContainsFunc(addrs, a.Equal) {
			addrs = append(addrs, a)
		}
	}
	full, err := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: h.id, Addrs: addrs})
	if err != nil {
		return nil
	}
	out := make([]string, len(full))
	for i, a := range full {
		out[i] = a.String()
	}
	return out
}

// boundAddrs is what the host listens on, with unspecified addresses
// (0.0.0.0, ::) expanded to the interfaces' addresses.
func boundAddrs(lh host.Host) []ma.Multiaddr {
	listen := lh.Network().ListenAddresses()
	ifaces, err := manet.InterfaceMultiaddrs()
	if err != nil {
		return listen
	}
	ifaces = slices.DeleteFunc(ifaces, manet.IsIP6LinkLocal)
	resolved, err := manet.ResolveUnspecifiedAddresses(listen, ifaces)
	if err != nil {
		return listen
	}
	return resolved
}

// ConnectedPeers returns the peers with an open connection.
func (h *Host) ConnectedPeers() []peer.ID {
	lh, _, err := h.running()
	if err != nil {
		return nil
	}
	return lh.Network().Peers()
}

// AddAddrs remembers addresses for p (from an invite link, a bootstrap list,
// storage). Each may be a transport address or a full multiaddr ending in
// /p2p/<p>; malformed ones and ones naming another peer are logged and
// skipped. The addresses are kept for the life of the Host; before Start they
// are queued.
func (h *Host) AddAddrs(p peer.ID, addrs []string) {
	var parsed []ma.Multiaddr
	for _, s := range addrs {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			h.log.Warn("ignoring malformed address", "peer", p, "addr", s, "err", err)
			continue
		}
		tpt, id := peer.SplitAddr(a)
		if id != "" && id != p {
			h.log.Warn("ignoring address of another peer", "peer", p, "addr", s)
			continue
		}
		if tpt == nil {
			continue
		}
		parsed = append(parsed, tpt)
	}
	if len(parsed) == 0 {
		return
	}
	h.mu.Lock()
	if h.state == stateNew {
		h.pending = append(h.pending, peer.AddrInfo{ID: p, Addrs: parsed})
		h.mu.Unlock()
		return
	}
	lh := h.lh
	h.mu.Unlock()
	if lh != nil {
		lh.Peerstore().AddAddrs(p, parsed, peerstore.PermanentAddrTTL)
	}
}

// Connect makes sure there is a connection to p: an existing one, else a dial
// to the addresses in the peerstore, else a DHT lookup (FindPeer) and a dial
// to what it finds. A connection through a relay counts: requests and room
// messages use it until hole punching replaces it with a direct one.
func (h *Host) Connect(ctx context.Context, p peer.ID) error {
	lh, kad, err := h.running()
	if err != nil {
		return err
	}
	if p == h.id {
		return errors.New("p2p: connect to self")
	}
	if connectedOrRelayed(lh, p) {
		return nil
	}
	// Dials may end in a relayed connection; the DHT lookup keeps libp2p's
	// default (no DHT queries over relayed connections).
	dialCtx := allowLimited(ctx)
	var direct error
	if len(lh.Peerstore().Addrs(p)) > 0 {
		direct = lh.Connect(dialCtx, peer.AddrInfo{ID: p})
		if direct == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("p2p: connect to %s: %w", p, direct)
		}
	}
	ai, lookup := h.findPeer(ctx, lh, kad, p)
	if connectedOrRelayed(lh, p) {
		return nil // the lookup itself connected (it queries p)
	}
	if lookup != nil {
		// The lookup may still have taught us addresses (other peers
		// answer with them) even though querying p itself failed: if we
		// had none before, try them.
		ai = peer.AddrInfo{ID: p}
		if direct != nil || len(lh.Peerstore().Addrs(p)) == 0 {
			return fmt.Errorf("p2p: connect to %s: %w", p, errors.Join(direct, fmt.Errorf("find peer: %w", lookup)))
		}
	}
	// Failed dials left a backoff on the peer; the addresses may be new.
	if sw, ok := lh.Network().(*swarm.Swarm); ok && (direct != nil || lookup != nil) {
		sw.Backoff().Clear(p)
	}
	if err := lh.Connect(dialCtx, ai); err != nil {
		return fmt.Errorf("p2p: connect to %s: %w", p, errors.Join(direct, lookup, err))
	}
	return nil
}

// OnPeerConnected registers f to be called whenever a peer goes from not
// connected to connected (directly or through a relay), so the caller can
// catch up with it; also when a dead direct connection to a peer that
// stays connected through another was closed (liveness.go), since what
// the peer sent into it was lost. Each call runs
// on its own goroutine, which Close waits for: f must not block past the
// host's closing (requests it makes fail once Close begins). Register before
// Start to see every peer.
func (h *Host) OnPeerConnected(f func(peer.ID)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.onConnect = append(h.onConnect, f)
}

// OnPeerDisconnected registers f to be called whenever a peer that was
// connected (directly or through a relay) has no connection left. Each call
// runs on its own goroutine, as with OnPeerConnected.
func (h *Host) OnPeerDisconnected(f func(peer.ID)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.onDown = append(h.onDown, f)
}

// OnAddrsChanged registers f to be called whenever the node's own addresses
// (Addrs) change: a new reservation, a mapped port, a new interface. The
// changes of addrsDebounce (200 ms) make one call, which runs on its own
// goroutine.
func (h *Host) OnAddrsChanged(f func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.onAddrs = append(h.onAddrs, f)
}

// addrsChanged has the OnAddrsChanged hooks called soon (addrsLoop: the
// changes of a short while make one call).
func (h *Host) addrsChanged() {
	select {
	case h.addrs.kick <- struct{}{}:
	default: // a call is due already
	}
}

// callPeerHooks calls each hook of *hooks (h.onConnect, h.onDown) for p,
// each on its own goroutine.
func (h *Host) callPeerHooks(hooks *[]func(peer.ID), p peer.ID) {
	h.mu.Lock()
	fns := *hooks
	h.mu.Unlock()
	for _, f := range fns {
		h.spawn(func() { f(p) })
	}
}

// callAddrsHooks calls the OnAddrsChanged hooks.
func (h *Host) callAddrsHooks() {
	h.mu.Lock()
	fns := h.onAddrs
	h.mu.Unlock()
	for _, f := range fns {
		h.spawn(func() { f() })
	}
}

// findPeer looks p up in the DHT. The lookup queries p itself, which may
// connect to it through a relay; the DHT does not query over relayed
// connections, so that query would wait for hole punching until ctx ends.
// findPeer returns as soon as there is any connection to p instead.
func (h *Host) findPeer(ctx context.Context, lh host.Host, kad *dht.IpfsDHT, p peer.ID) (peer.AddrInfo, error) {
	sub, err := lh.EventBus().Subscribe(new(event.EvtPeerConnectednessChanged), eventbus.Name("parley find peer"))
	if err != nil {
		return kad.FindPeer(ctx, p)
	}
	defer sub.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type found struct {
		ai  peer.AddrInfo
		err error
	}
	done := make(chan found, 1)
	go func() {
		ai, err := kad.FindPeer(ctx, p)
		done <- found{ai, err}
	}()
	events := sub.Out()
	for {
		select {
		case f := <-done:
			return f.ai, f.err
		case e, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if ev, ok := e.(event.EvtPeerConnectednessChanged); !ok || ev.Peer != p || !connectedOrRelayed(lh, p) {
				continue
			}
			cancel()
			<-done
			return peer.AddrInfo{ID: p}, nil
		}
	}
}

func (h *Host) peerEventLoop(sub event.Subscription) {
	defer sub.Close()
	// up holds the peers with a connection, direct or relayed: a peer
	// counts as newly connected once, not again when hole punching adds a
	// direct connection to a relayed one.
	up := make(map[peer.ID]bool)
	for {
		select {
		case <-h.ctx.Done():
			return
		case e, ok := <-sub.Out():
			if !ok {
				return
			}
			ev, ok := e.(event.EvtPeerConnectednessChanged)
			if !ok {
				continue
			}
			if ev.Connectedness != network.Connected && ev.Connectedness != network.Limited {
				wasUp := up[ev.Peer]
				delete(up, ev.Peer)
				h.subs.forget(ev.Peer)
				h.inflow.forget(ev.Peer)
				if wasUp {
					h.callPeerHooks(&h.onDown, ev.Peer)
				}
				continue
			}
			if up[ev.Peer] {
				continue
			}
			up[ev.Peer] = true
			h.callPeerHooks(&h.onConnect, ev.Peer)
		}
	}
}

// dialBackground connects to ai, logging a failure.
func (h *Host) dialBackground(ai peer.AddrInfo, why string) {
	lh, _, err := h.running()
	if err != nil || lh.Network().Connectedness(ai.ID) == network.Connected {
		return
	}
	ctx, cancel := context.WithTimeout(h.ctx, backgroundDialTimeout)
	defer cancel()
	if err := lh.Connect(ctx, ai); err != nil {
		if h.ctx.Err() == nil {
			h.log.Warn("dial failed", "reason", why, "peer", ai.ID, "err", err)
		}
		return
	}
	h.log.Debug("connected", "reason", why, "peer", ai.ID)
}

// mdnsNotifee dials peers found on the LAN.
type mdnsNotifee struct{ h *Host }

func (n mdnsNotifee) HandlePeerFound(ai peer.AddrInfo) {
	if ai.ID == n.h.id {
		return
	}
	n.h.spawn(func() { n.h.dialBackground(ai, "mdns") })
}
