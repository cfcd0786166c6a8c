package node

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parley-p2p/parley/node/client"
	"github.com/parley-p2p/parley/node/dag"
	"github.com/parley-p2p/parley/node/e2ee"
	"github.com/parley-p2p/parley/node/media"
	"github.com/parley-p2p/parley/node/peers"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/p2p"
	"github.com/parley-p2p/parley/rooms"
	"github.com/parley-p2p/parley/webui"
)

// Node is one parley daemon: it wires the store, the engine (dag), the
// peer protocol (peers), the client API (client) and its HTTP server
// (webui) together, and owns their lifecycle.
type Node struct {
	cfg        Config
	log        *slog.Logger
	key        ed25519.PrivateKey
	serverName string

	store *store.Store
	media *media.Store
	host  *p2p.Host
	dag   *dag.Engine
	e2ee  *e2ee.Keeper
	peers *peers.Peers
	api   *client.API
	http  *webui.Server

	// stopReindex ends the job that indexes what came before this
	// version's records (client/reindex.go).
	stopReindex func()

	cliToken string // lets the command line act as the owner

	ctx    context.Context // the host's lifetime
	cancel context.CancelFunc

	// roomPeers answers the host's questions about room members
	// (p2p.Config.Members, MemberPeers) once the peers exist.
	roomPeers roomPeers

	closeOnce sync.Once
	closeErr  error
}

// Version is the daemon's version, set at build time with -ldflags.
var Version = "0.1.0-dev"

// Config configures a node. The zero value runs with the defaults of
// DESIGN.md in the user's data directory.
type Config struct {
	// DataDir holds the key and the database; default DefaultDataDir().
	DataDir string
	// HTTPAddr is the client API's address; default 127.0.0.1:8008.
	HTTPAddr string
	// ListenAddrs are libp2p multiaddrs; default TCP and QUIC on 4001.
	ListenAddrs []string
	// Bootstrap peers, as multiaddrs ending in /p2p/<id>.
	Bootstrap []string
	// NoMDNS turns LAN discovery off.
	NoMDNS bool
	// Relays are circuit relay multiaddrs ending in /p2p/<id>. While the
	// node is not publicly reachable it holds reservations with them (and
	// with bootstrap peers that offer the relay service), so that peers
	// beyond its NAT reach it through them; invite links carry the
	// resulting circuit addresses.
	Relays []string
	// RelayService makes this node a relay for others. Only for a node
	// reachable from the internet (public address or forwarded port).
	RelayService bool
	// NoMemberRelay stops the node relaying for the servers of its rooms.
	// By default a node that finds itself publicly reachable (AutoNAT, or
	// a mapped port) relays for them, and for no one else
	// (p2p.Config.Members).
	NoMemberRelay bool
	// NoPortMap stops the node asking the home router to forward its
	// ports (UPnP IGD, NAT-PMP); by default it asks, unless it listens on
	// loopback addresses only (tests, one machine): nothing to forward,
	// and no reason to send a packet beyond the machine.
	NoPortMap bool
	// PublicNetwork lets the node use the public libp2p network (the IPFS
	// DHT's bootstrap peers and the relays its nodes offer) to find a
	// relay when no member is reachable. It shows the node's IP addresses
	// and peer ID to those peers (README, "Reachability"). Default off.
	PublicNetwork bool
	// RegistrationToken lets further accounts register; empty means only
	// the node's first account can ever be created through the API.
	RegistrationToken string
	// AppDir serves the web app from disk (development).
	AppDir string
	// ClaimCode is the one-time code that claims a fresh node (its first
	// account must present it); default a random one, made at each start
	// while the node has no owner. Either way it is printed with the
	// app's URL and written to the file claim-code in DataDir.
	ClaimCode string
	// AllowedHosts are names (besides IP literals and localhost) the API
	// answers to when HTTPAddr binds all interfaces; see webui.Config.
	AllowedHosts []string
	// ReconnectInterval is how often lost room members are redialled;
	// default 15 s.
	ReconnectInterval time.Duration
	// MinFreeDisk is the space kept free on the data dir's file system:
	// below it the node does not start and refuses writes
	// (M_RESOURCE_LIMIT_EXCEEDED) until space is freed. 0 means 64 MiB;
	// negative turns the check off.
	MinFreeDisk int64
	// RequestTimeout bounds each request to another node; default 20 s.
	RequestTimeout time.Duration
	// HidePresence shares no presence: the node sends none of its users'
	// to other nodes and shows its users none of others'.
	HidePresence bool
	// MaxUpload bounds one media upload, in bytes; default 100 MiB.
	MaxUpload int64
	// MediaQuota bounds the media the node keeps (its uploads, copies of
	// other nodes' media, thumbnails), in bytes; default 10 GiB. Copies
	// are evicted (least recently used first) to stay under it; uploads
	// never are: past it, uploads are refused.
	MediaQuota int64
	// MediaPrefetchMax is the largest image fetched ahead from other
	// nodes as soon as a room mentions it, in bytes; default 10 MiB.
	MediaPrefetchMax int64
	// Gater optionally filters libp2p connections (tests use it to cut
	// the network in two).
	Gater connmgr.ConnectionGater
	// Logger; nil discards.
	Logger *slog.Logger

	// wrapHandler lets tests make a node misbehave as a peer.
	wrapHandler func(p2p.Handler) p2p.Handler
	// failWrite, if set, fails the store write of the events it returns
	// an error for (tests inject I/O failures with it).
	failWrite func(ev *rooms.Event, plain []byte) error
	// freeSpace fakes the data dir's free space (tests).
	freeSpace func(dir string) (uint64, error)
	// accessTokenLifetime shortens refreshable access tokens (tests).
	accessTokenLifetime time.Duration
	// presenceIdle shortens client.Config.PresenceIdle (tests).
	presenceIdle time.Duration
	// noMediaPrefetch turns fetching media ahead of need off (tests).
	noMediaPrefetch bool
	// mediaFetcher replaces how media of other nodes is fetched (tests).
	mediaFetcher client.MediaFetcher
	// p2pOptions are extra libp2p options (tests force reachability:
	// libp2p counts loopback as private).
	p2pOptions []libp2p.Option
}

// DefaultDataDir is $XDG_DATA_HOME/parley or ~/.local/share/parley.
func DefaultDataDir() string {
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "parley")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "parley-data"
	}
	return filepath.Join(home, ".local", "share", "parley")
}

// New checks the configuration; it starts nothing.
func New(cfg Config) (*Node, error) {
	if cfg.DataDir == "" {
		cfg.DataDir = DefaultDataDir()
	}
	if cfg.HTTPAddr == "" {
		cfg.HTTPAddr = "127.0.0.1:8008"
	}
	if err := checkMediaConfig(&cfg); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Node{cfg: cfg, log: log.With("component", "node"), ctx: ctx, cancel: cancel}, nil
}

// Start opens the store, brings up the network and the HTTP API. Errors
// (a port in use, an unwritable data dir, a malformed address) are
// returned, and whatever was started is closed again.
func (n *Node) Start() (err error) {
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	if err := prepareDataDir(n.cfg.DataDir); err != nil {
		return err
	}
	if n.key, err = LoadOrCreateKey(n.cfg.DataDir); err != nil {
		return err
	}
	n.serverName = rooms.ServerName(n.key.Public().(ed25519.PublicKey))
	n.log = n.log.With("server", n.serverName[:8])

	so := store.Options{Logger: n.cfg.Logger, MinFree: n.cfg.MinFreeDisk, FreeSpace: n.cfg.freeSpace}
	if n.store, err = store.Open(n.cfg.DataDir, so); err != nil {
		return err
	}
	if n.media, err = n.openMedia(); err != nil {
		return err
	}
	if n.cfg.PublicNetwork {
		n.log.Warn("public network on: this node's IP addresses and peer id are shown to the public libp2p network (bootstrap peers, DHT nodes it asks, relays it uses)")
	}
	if n.host, err = p2p.New(n.p2pConfig()); err != nil {
		return err
	}
	// The engine publishes through the peers, which are made after it.
	var publish func(*dag.Room, *rooms.Event)
	var writeFailed func(*dag.Room, *rooms.Event, error)
	var committed func(*dag.Room)
	var onTimeline func(*dag.Room, *rooms.Event, []byte, dag.Arrival) func(*store.Txn, uint64) error
	var visible func(roomID, eventID, server string) bool
	n.e2ee, err = e2ee.New(e2ee.Config{
		Store:   n.store,
		Key:     n.key,
		Visible: func(roomID, eventID, server string) bool { return visible(roomID, eventID, server) },
		Logger:  n.cfg.Logger,
	})
	if err != nil {
		return err
	}
	n.dag = dag.New(dag.Config{
		Codec:         n.e2ee,
		Store:         n.store,
		Key:           n.key,
		Publish:       func(r *dag.Room, ev *rooms.Event) { publish(r, ev) },
		OnWriteFailed: func(r *dag.Room, ev *rooms.Event, err error) { writeFailed(r, ev, err) },
		OnCommitted:   func(r *dag.Room) { committed(r) },
		OnTimeline: func(r *dag.Room, ev *rooms.Event, plain []byte, how dag.Arrival) func(*store.Txn, uint64) error {
			if onTimeline == nil {
				return nil // before the API exists: nothing to notify
			}
			return onTimeline(r, ev, plain, how)
		},
		FailWrite: n.cfg.failWrite,
		Logger:    n.cfg.Logger,
	})
	// The keeper sends its key shares and history handovers through the
	// engine, and hands it the plaintexts of events whose key came late.
	n.e2ee.Attach(n.dag)
	var invited func(user string)
	n.peers = peers.New(peers.Config{
		OnInvite:          func(user string) { invited(user) },
		Host:              n.host,
		Engine:            n.dag,
		Store:             n.store,
		Key:               n.key,
		RequestTimeout:    n.cfg.RequestTimeout,
		ReconnectInterval: n.cfg.ReconnectInterval,
		Logger:            n.cfg.Logger,
		WrapHandler:       n.cfg.wrapHandler,
	})
	n.peers.SetMedia(n.peerMedia())
	n.roomPeers.attach(n.peers)
	publish, writeFailed, visible = n.peers.Publish, n.peers.WriteFailed, n.peers.Visible
	n.host.Handle(n.peers.Handler())
	if n.cliToken, err = newCLIToken(); err != nil {
		return err
	}
	fetcher := &mediaFetcher{}
	n.api = client.New(client.Config{
		Engine:            n.dag,
		Peers:             n.peers,
		Store:             n.store,
		RegistrationToken: n.cfg.RegistrationToken,
		CLIToken:          n.cliToken,
		AppURL:            n.URL,
		OnClaimed:         n.removeUsedClaimFile,
		HidePresence:      n.cfg.HidePresence,
		Media:             n.media,
		MediaKey:          n.key,
		MaxUpload:         n.cfg.MaxUpload,
		MediaFetcher:      fetcher.or(n.cfg.mediaFetcher),
		Logger:            n.cfg.Logger,

		AccessTokenLifetime: n.cfg.accessTokenLifetime,
		PresenceIdle:        n.cfg.presenceIdle,
	})
	fetcher.api = n.api
	committed = n.api.Committed
	onTimeline = n.api.OnTimeline
	invited = n.api.Invited
	n.peers.SetKeyService(n.api)

	// The API's port is bound first, so a clash fails before anything
	// else starts; it answers 503 until Ready, by when the host is up
	// and status and links carry the node's addresses.
	n.http = webui.New(webui.Config{Addr: n.cfg.HTTPAddr, AppDir: n.cfg.AppDir, AllowedHosts: n.cfg.AllowedHosts, WaitReady: true, Logger: n.cfg.Logger}, webui.Backends{
		Accounts: n.api, Rooms: n.api, Membership: n.api, Syncer: n.api, Links: n.api, E2EE: n.api, Devices: n.api,
		UserData: n.api, Keys: n.api, Ephemeral: n.api, Aliases: n.api,
		UserDirectory: n.api, Hierarchy: n.api, Timestamps: n.api, Dehydrated: n.api,
		Admin: admin{API: n.api, node: n},

		Directory: n.api,
		Relations: n.api,
		Media:     n.api,
		Search:    n.api,
	})
	if err := n.http.Start(); err != nil {
		return err
	}
	if err := writeCLIFiles(n.cfg.DataDir, n.cliToken, n.http.Addr()); err != nil {
		return err
	}
	accounts, err := n.api.AccountCount()
	if err != nil {
		return err
	}
	code, err := prepareClaim(n.cfg.DataDir, n.cfg.ClaimCode, accounts > 0)
	if err != nil {
		return err
	}
	n.api.SetClaimCode(code)
	if err := n.host.Start(n.ctx); err != nil {
		return err
	}
	if err := n.peers.Start(); err != nil {
		return err
	}
	n.stopReindex = n.api.StartReindex()
	n.http.Ready()
	n.logFreeSpace()
	return nil
}

// p2pConfig is the host's configuration: the node's, with the room
// members asked of the peers, which are made after the host.
func (n *Node) p2pConfig() p2p.Config {
	return p2p.Config{
		Key:           n.key,
		ListenAddrs:   n.cfg.ListenAddrs,
		Bootstrap:     n.cfg.Bootstrap,
		NoMDNS:        n.cfg.NoMDNS,
		Relays:        n.cfg.Relays,
		RelayService:  n.cfg.RelayService,
		Members:       n.roomPeers.isMember,
		MemberPeers:   n.roomPeers.members,
		NoMemberRelay: n.cfg.NoMemberRelay,
		NoPortMap:     n.cfg.NoPortMap || loopbackOnly(n.cfg.ListenAddrs),
		PublicNetwork: n.cfg.PublicNetwork,
		Gater:         n.cfg.Gater,
		Logger:        n.cfg.Logger,
		Options:       n.cfg.p2pOptions,
	}
}

// loopbackOnly reports whether addrs are all loopback addresses (and
// there is at least one).
func loopbackOnly(addrs []string) bool {
	for _, s := range addrs {
		a, err := ma.NewMultiaddr(s)
		if err != nil || !manet.IsIPLoopback(a) {
			return false
		}
	}
	return len(addrs) > 0
}

// roomPeerSet is what the peers know of the servers of the followed
// rooms: IsRoomPeer is called on libp2p's goroutines (the member relay's
// ACL), so it reads a snapshot and never blocks.
type roomPeerSet interface {
	IsRoomPeer(peer.ID) bool
	RoomPeers() []peer.ID
}

// roomPeers hands the host the peers' room peer set, which exists only
// after the host: until then (and if the peers keep no such set) nobody
// is a member.
type roomPeers struct{ set atomic.Pointer[roomPeerSet] }

// attach starts asking ps, if it keeps a room peer set.
func (r *roomPeers) attach(ps any) {
	if s, ok := ps.(roomPeerSet); ok {
		r.set.Store(&s)
	}
}

func (r *roomPeers) isMember(p peer.ID) bool {
	if s := r.set.Load(); s != nil {
		return (*s).IsRoomPeer(p)
	}
	return false
}

func (r *roomPeers) members() []peer.ID {
	if s := r.set.Load(); s != nil {
		return (*s).RoomPeers()
	}
	return nil
}

// Close shuts everything down and waits for it. Idempotent.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		n.cancel()
		var errs []error
		if n.http != nil {
			errs = append(errs, n.http.Close())
		}
		if n.stopReindex != nil {
			n.stopReindex()
		}
		if n.host != nil {
			errs = append(errs, n.host.Close())
		}
		if n.peers != nil {
			n.peers.Close()
		}
		if n.e2ee != nil {
			n.e2ee.Close() // its jobs send through the engine
		}
		if n.dag != nil {
			n.dag.Close()
		}
		if n.media != nil {
			n.media.Close()
		}
		if n.store != nil {
			errs = append(errs, n.store.Close())
		}
		n.closeErr = errors.Join(errs...)
	})
	return n.closeErr
}

// ServerName is the node's Matrix server name (hex of its public key).
func (n *Node) ServerName() string { return n.serverName }

// PeerID is the node's libp2p peer ID.
func (n *Node) PeerID() peer.ID { return n.host.ID() }

// Addrs are the node's libp2p addresses, ending in /p2p/<peer id>.
func (n *Node) Addrs() []string { return n.host.Addrs() }

// URL is the local app's address.
func (n *Node) URL() string { return n.http.URL() }

// HTTPAddr is the bound address of the client API.
func (n *Node) HTTPAddr() string { return n.http.Addr() }

// Host is the libp2p host (for tests).
func (n *Node) Host() *p2p.Host { return n.host }

// RegistrationToken implements webui.Backend.
func (n *Node) RegistrationToken() string { return n.cfg.RegistrationToken }

// Status is the node's health for /_parley/v1/status.
func (n *Node) Status() any {
	peers := n.host.ConnectedPeers()
	ids := make([]string, 0, len(peers))
	for _, p := range peers {
		ids = append(ids, p.String())
	}
	sort.Strings(ids)
	roomCount := n.dag.RoomCount()
	addrs := n.host.Addrs()
	accounts, _ := n.api.AccountCount()
	return map[string]any{
		"claimed":     accounts > 0,
		"server_name": n.serverName,
		"peer_id":     n.host.ID().String(),
		"addrs":       addrs,
		// The addresses an invite link carries: what a joiner elsewhere
		// could dial (p2p.LinkAddrs).
		"link_addrs":      p2p.LinkAddrs(addrs),
		"connected_peers": len(peers),
		"peers":           ids,
		"rooms":           roomCount,
		"version":         Version,
		"data_dir":        n.cfg.DataDir,
		"stream_position": n.store.Pos(),
		"gossip_dropped":  n.peers.GossipDropped(),
		// Reaching and being reached beyond the LAN: "public", "private"
		// or "unknown"; whether this node relays for others; whether it
		// holds a relay reservation (its addrs include circuit addresses).
		"reachability":  n.host.Reachability(),
		"relay_service": n.cfg.RelayService,
		"relayed":       len(n.host.RelayAddrs()) > 0,
		"media":         n.mediaStatus(),
		// How the node reaches and is reached (NAT, port mapping,
		// reservations, member relay), and how it reaches each member.
		"network": n.host.NetStatus(),
		"members": n.memberPaths(),
	}
}

// maxStatusMembers bounds the members status lists.
const maxStatusMembers = 500

// memberPath is how the node reaches one server of its followed rooms.
type memberPath struct {
	Server string `json:"server"`
	Peer   string `json:"peer"`
	// Path is "direct", "relayed" or "offline".
	Path string `json:"path"`
	// Via is the relay's peer ID on a relayed path, and ViaServer its
	// server name if it is one of the members.
	Via       string `json:"via"`
	ViaServer string `json:"via_server"`
	// RTTms is the last measured round trip in milliseconds; absent
	// while unknown.
	RTTms *float64 `json:"rtt_ms,omitempty"`
}

// memberPaths says how each server of the followed rooms (not this one)
// is reached, sorted by server name; at most maxStatusMembers.
func (n *Node) memberPaths() []memberPath {
	servers := map[string]peer.ID{}
	for _, r := range n.peers.Rooms() {
		if !r.Followed() {
			continue
		}
		for _, s := range n.peers.RoomServers(r) {
			if _, ok := servers[s]; ok || len(servers) >= maxStatusMembers {
				continue
			}
			if p, err := p2p.PeerIDFromServerName(s); err == nil {
				servers[s] = p
			}
		}
	}
	names := make([]string, 0, len(servers))
	byPeer := make(map[peer.ID]string, len(servers))
	for s, p := range servers {
		names = append(names, s)
		byPeer[p] = s
	}
	sort.Strings(names)
	ids := make([]peer.ID, len(names))
	for i, s := range names {
		ids[i] = servers[s]
	}
	out := make([]memberPath, 0, len(ids))
	for _, pp := range n.host.PeerPaths(ids) {
		m := memberPath{Server: byPeer[pp.Peer], Peer: pp.Peer.String(), Path: pp.Path}
		if pp.Via != "" {
			m.Via, m.ViaServer = pp.Via.String(), byPeer[pp.Via]
		}
		if pp.RTT > 0 {
			ms := float64(pp.RTT.Microseconds()) / 1000
			m.RTTms = &ms
		}
		out = append(out, m)
	}
	return out
}

// logFreeSpace says at start how much space the data dir has, and where
// writes stop.
func (n *Node) logFreeSpace() {
	free := n.cfg.freeSpace
	if free == nil {
		free = store.FreeSpace
	}
	b, err := free(n.cfg.DataDir)
	if err != nil {
		return
	}
	keep := "never"
	switch {
	case n.cfg.MinFreeDisk == 0:
		keep = fmt.Sprintf("%d MiB", store.DefaultMinFree>>20)
	case n.cfg.MinFreeDisk > 0:
		keep = fmt.Sprintf("%d MiB", n.cfg.MinFreeDisk>>20)
	}
	n.log.Info("disk space", "data_dir", n.cfg.DataDir, "free_mib", b>>20, "writes_stop_below", keep)
}

// admin is the owner's view of the node: its status, and the client
// API's blocked servers.
type admin struct {
	*client.API
	node *Node
}

// Status implements webui.Admin.
func (a admin) Status() any { return a.node.Status() }

// ClaimCode is the code that claims the node, or "" once it has its
// owner.
func (n *Node) ClaimCode() string { return n.api.ClaimCode() }

// ClaimURL is the app's address with the claim code, for the owner to
// open; "" once the node is claimed.
func (n *Node) ClaimURL() string {
	code := n.api.ClaimCode()
	if code == "" {
		return ""
	}
	return n.URL() + "#/claim/" + code
}

// removeUsedClaimFile removes the claim-code file once the node has its
// owner.
func (n *Node) removeUsedClaimFile() {
	if err := removeClaimFile(n.cfg.DataDir); err != nil {
		n.log.Warn("remove the used claim code", "err", err)
	}
}
