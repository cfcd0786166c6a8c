package webui

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parley-p2p/parley/errs"
)

//go:embed app
var appFiles embed.FS

// Config configures the HTTP server. The zero value listens on
// 127.0.0.1:8008 and serves the embedded app.
type Config struct {
	// Addr is the listen address; default "127.0.0.1:8008".
	Addr string
	// AppDir serves the web app from this folder instead of the embedded
	// copy (for working on the app).
	AppDir string
	// AllowedHosts are further names the Host header may carry when the
	// server is bound to all interfaces (say a LAN name or a reverse
	// proxy's). Bound so, it otherwise accepts only IP literals and
	// localhost, so that a web page on a rebinding domain cannot reach it.
	AllowedHosts []string
	// WaitReady makes the API answer 503 until Ready is called, so that
	// clients reaching it while the node still loads its rooms are told to
	// retry rather than refused. The app's files are served regardless.
	WaitReady bool
	// MaxConns caps the HTTP connections open at once, so that the API
	// can never take the file descriptors libp2p and Badger need; default
	// 1024, and never more than a quarter of the process's descriptor
	// limit.
	MaxConns int
	// BodyTimeout bounds the time a client may take to send a request
	// body; default 30 s.
	BodyTimeout time.Duration
	// Logger; nil discards.
	Logger *slog.Logger
}

// Backends are what the API asks of the node, one field per role. Accounts
// is required: it authenticates every request that carries a token. Any
// other role left nil is not served: its routes answer 404 M_UNRECOGNIZED,
// as for any endpoint this server does not have.
type Backends struct {
	Accounts   Accounts
	Rooms      Rooms
	Membership Membership
	Syncer     Syncer
	Links      Links
	Admin      Admin
	E2EE       E2EE
	Devices    Devices
	UserData   UserData
	Keys       Keys
	Ephemeral  Ephemeral
	Aliases    Aliases
	// UserDirectory, Hierarchy and Timestamps: userdirectory.go,
	// hierarchy.go, timestamp.go.
	UserDirectory UserDirectory
	Hierarchy     Hierarchy
	Timestamps    Timestamps
	// Dehydrated: dehydrated.go (MSC3814).
	Dehydrated DehydratedDevices
	// Directory: directory.go (the public room directory).
	Directory Directory
	// Media: media.go (the content repository).
	Media Media
}

// Server is the local HTTP server.
type Server struct {
	cfg        Config
	accounts   Accounts
	rooms      Rooms
	membership Membership
	syncer     Syncer
	links      Links
	admin      Admin
	e2ee       E2EE
	devices    Devices
	userdata   UserData
	keys       Keys
	ephemeral  Ephemeral
	aliases    Aliases
	directory  Directory
	log        *slog.Logger
	handler    http.Handler
	guard      *guard
	// uiaSessions are user-interactive auth in progress (devices.go).
	uiaSessions uiaSessions

	// userDirectory, hierarchy, timestamps: see Backends.
	userDirectory UserDirectory
	hierarchy     Hierarchy
	timestamps    Timestamps
	dehydrated    DehydratedDevices
	media         Media

	ready     atomic.Bool
	ln        net.Listener
	limit     *limitListener
	cancel    context.CancelFunc // ends the contexts of requests in flight
	srv       *http.Server
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// New builds the server; it listens only when Start is called. It panics
// if b.Accounts is nil, a wiring mistake no request could recover from.
func New(cfg Config, b Backends) *Server {
	if b.Accounts == nil {
		panic("webui: New without Backends.Accounts, which authenticates every request")
	}
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:8008"
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = defaultMaxConns
		if fds := fdLimit(); fds > 0 {
			cfg.MaxConns = max(16, min(cfg.MaxConns, fds/4))
		}
	}
	if cfg.BodyTimeout <= 0 {
		cfg.BodyTimeout = defaultBodyTimeout
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg: cfg, log: log.With("component", "webui"), guard: newGuard(),
		accounts: b.Accounts, rooms: b.Rooms, membership: b.Membership,
		syncer: b.Syncer, links: b.Links, admin: b.Admin, e2ee: b.E2EE,
		devices:  b.Devices,
		userdata: b.UserData,
		keys:     b.Keys,
	}
	s.ephemeral = b.Ephemeral
	s.aliases = b.Aliases
	s.userDirectory = b.UserDirectory
	s.hierarchy = b.Hierarchy
	s.timestamps = b.Timestamps
	s.dehydrated = b.Dehydrated
	s.directory = b.Directory
	s.media = b.Media
	s.ready.Store(!cfg.WaitReady)
	s.handler = s.routes()
	return s
}

// Handler is the full middleware chain and routes (for tests).
func (s *Server) Handler() http.Handler { return s.handler }

// Start binds the listener (an address in use is an error here) and serves
// in the background.
func (s *Server) Start() error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("webui: listen on %s: %w", s.cfg.Addr, err)
	}
	s.ln = ln
	s.limit = newLimitListener(ln, s.cfg.MaxConns)
	base, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.srv = &http.Server{
		BaseContext:       func(net.Listener) context.Context { return base },
		Handler:           s.handler,
		ReadHeaderTimeout: headerTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.srv.Serve(s.limit); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("serve", "err", err)
		}
	}()
	return nil
}

// Ready lets the API answer (see Config.WaitReady).
func (s *Server) Ready() { s.ready.Store(true) }

// Addr is the bound address (useful with port 0).
func (s *Server) Addr() string {
	if s.ln == nil {
		return s.cfg.Addr
	}
	return s.ln.Addr().String()
}

// URL is the app's URL. Bound to all interfaces, it names the loopback
// address, which a browser on this machine can open.
func (s *Server) URL() string {
	addr := s.Addr()
	if host, port, err := net.SplitHostPort(addr); err == nil {
		if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
			addr = net.JoinHostPort("127.0.0.1", port)
		}
	}
	return "http://" + addr + "/"
}

// Close stops serving; long-polls in flight are cancelled. Idempotent.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		if s.srv != nil {
			// Shutdown waits for handlers to return; cancelling first ends
			// long-polls now instead of at the timeout below.
			s.cancel()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			if err := s.srv.Shutdown(ctx); err != nil {
				s.srv.Close()
			}
		}
		s.wg.Wait()
	})
	return nil
}

func (s *Server) appFS() http.FileSystem {
	if s.cfg.AppDir != "" {
		return http.Dir(s.cfg.AppDir)
	}
	sub, err := fs.Sub(appFiles, "app")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	return http.FS(sub)
}

// serveApp serves the app's files, and index.html for any other path so
// that the app's own routes survive a reload.
func (s *Server) serveApp() http.Handler {
	files := s.appFS()
	fileServer := http.FileServer(files)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			writeError(w, s.log, r, Errorf(http.StatusMethodNotAllowed, "M_UNRECOGNIZED", "method not allowed"))
			return
		}
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("X-Frame-Options", "DENY")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; style-src 'self' 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'")
		p := r.URL.Path
		if p != "/" {
			if f, err := files.Open(p); err == nil {
				f.Close()
				fileServer.ServeHTTP(w, r)
				return
			} else if errors.Is(err, fs.ErrInvalid) || hasDotDot(p) {
				// An escaped "..": no file of the app, and nothing to log.
				writeError(w, s.log, r, errs.NotFoundf("file not found"))
				return
			} else if !errors.Is(err, os.ErrNotExist) && !errors.Is(err, fs.ErrNotExist) {
				writeError(w, s.log, r, err)
				return
			}
		}
		r2 := r.Clone(r.Context())
		r2.URL.Path = "/"
		fileServer.ServeHTTP(w, r2)
	})
}

// hasDotDot reports whether a path has a ".." segment.
func hasDotDot(p string) bool {
	for _, seg := range strings.Split(p, "/") {
		if seg == ".." {
			return true
		}
	}
	return false
}

// allowedHost reports whether the Host header names this server, so a
// page on a rebinding domain cannot talk to it: DNS rebinding points a
// name the attacker owns at this machine, so only names the owner chose
// (and IP literals, which no page can rebind) are accepted.
func (s *Server) allowedHost(host string) bool {
	bound, bindPort, err := net.SplitHostPort(s.Addr())
	if err != nil {
		return false
	}
	h, p, err := net.SplitHostPort(host)
	if err != nil {
		h, p = host, "80"
	}
	h = strings.Trim(strings.ToLower(h), "[]")
	for _, a := range s.cfg.AllowedHosts {
		if h == strings.ToLower(a) {
			return true
		}
	}
	// The configured address keeps the name the owner chose; the listener
	// only knows the IP it resolved to.
	name, _, _ := net.SplitHostPort(s.cfg.Addr)
	name = strings.ToLower(name)
	ip := net.ParseIP(name)
	switch {
	case name == "" || ip != nil && ip.IsUnspecified():
		// Bound to every interface: reached through any of the machine's
		// addresses, or through a mapped port (Docker), so the port is
		// not checked; the name must still be one no page controls.
		return h == "localhost" || net.ParseIP(h) != nil
	case p != bindPort:
		return false
	case name == "localhost" || ip != nil && ip.IsLoopback():
		return h == "localhost" || h == "127.0.0.1" || h == "::1" || h == name
	default:
		return h == name || h == bound
	}
}

// sameOrigin reports whether an Origin header is this server's own.
func (s *Server) sameOrigin(r *http.Request, origin string) bool {
	return origin == "http://"+r.Host
}
