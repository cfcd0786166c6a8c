package client

import (
	"crypto/ed25519"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parley-p2p/parley/node/dag"
	"github.com/parley-p2p/parley/node/media"
	"github.com/parley-p2p/parley/node/peers"
	"github.com/parley-p2p/parley/node/store"
)

// API is the Matrix client-server API's meaning: accounts, sessions,
// filters, profiles, rooms, membership, sync, history and links, for
// webui to serve over HTTP.
type API struct {
	cfg        Config
	log        *slog.Logger
	serverName string
	store      *store.Store
	dag        *dag.Engine
	peers      *peers.Peers

	acctMu  sync.Mutex // serialises account creation
	aliasMu sync.Mutex // serialises alias writes, so a checked alias stays free (aliases.go)
	// upgradeMu serialises room upgrades, so that a retried or doubled
	// request finds the first one's tombstone (upgrade.go).
	upgradeMu sync.Mutex

	claimMu   sync.Mutex
	claimCode string // "" once the node has its owner

	cliToken string
	notify   *notifier

	syncBuilds atomic.Int64 // /sync answers built, including ones with nothing new

	dev       deviceState                         // devices.go
	notices   noticeState                         // push rules evaluated as events are stored (notices.go)
	onReceipt atomic.Pointer[func(store.Receipt)] // hears local public receipts (receipts.go)

	eph      *ephClock // ephemeral.go
	typing   typingState
	presence presenceState

	lazy lazySent // member events each device holds (lazyload.go)

	media mediaState // the content repository (media.go)
}

// Config configures the client API.
type Config struct {
	Engine *dag.Engine
	Peers  *peers.Peers
	Store  *store.Store
	// RegistrationToken lets further accounts register; empty means only
	// the node's first account can ever be created.
	RegistrationToken string
	// OnClaimed is called once the node's first account exists (the
	// node then removes its claim-code file).
	OnClaimed func()
	// AppURL is the web app's address (invite links carry it).
	AppURL func() string
	// CLIToken lets the command line act as the owner.
	CLIToken string
	// AccessTokenLifetime is how long an access token issued with a
	// refresh token lasts; default DefaultAccessTokenLifetime. Tokens
	// issued without one never expire.
	AccessTokenLifetime time.Duration
	// OnDeviceChange, if set, is called after a device of a local user
	// was added or removed (devices.go).
	OnDeviceChange func(user, deviceID string, removed bool)
	// HidePresence makes the node share no presence: it sends none of
	// its users' and shows its users none of others' (presence.go).
	HidePresence bool
	// PresenceIdle is how long after their last activity an online user
	// turns "unavailable"; default DefaultPresenceIdle (presence.go).
	PresenceIdle time.Duration
	// Media is the node's media store; nil keeps no media (media.go).
	Media *media.Store
	// MediaKey signs the metadata of uploads: the node's key.
	MediaKey ed25519.PrivateKey
	// MaxUpload bounds an upload, in bytes; default DefaultMaxUpload.
	MaxUpload int64
	// MediaFetcher gets media of other nodes; nil: they are not found.
	MediaFetcher MediaFetcher
	// Logger; nil discards.
	Logger *slog.Logger
}

// SyncBuilds counts the /sync answers built so far, including those
// built after a wake-up that turned out to bring nothing new.
func (api *API) SyncBuilds() int64 { return api.syncBuilds.Load() }

// New makes the client API. The engine's commits must be passed to
// Committed, and new invites to Invited: they wake the /sync long-polls.
func New(cfg Config) *API {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	api := &API{
		cfg:        cfg,
		log:        log.With("component", "client"),
		serverName: cfg.Engine.ServerName(),
		store:      cfg.Store,
		dag:        cfg.Engine,
		peers:      cfg.Peers,
		cliToken:   cfg.CLIToken,
		notify:     newNotifier(),
		eph:        newEphClock(),
	}
	if cfg.Peers != nil {
		cfg.Peers.HandleEphemeral("m.typing", api.onRemoteTyping)
		cfg.Peers.HandleEphemeral("m.presence", api.onRemotePresence)
		cfg.Peers.HandleEphemeral("m.receipt", api.onRemoteReceipt)
		api.OnLocalReceipt(api.sendReceipt)
	}
	return api
}

// RegistrationToken implements webui.Backend.
func (api *API) RegistrationToken() string { return api.cfg.RegistrationToken }

// ServerName implements webui.Backend.
func (api *API) ServerName() string { return api.serverName }

func nowMS() int64 { return time.Now().UnixMilli() }
