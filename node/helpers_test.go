package node

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/connmgr"
	"maunium.net/go/mautrix"

	"github.com/parley-p2p/parley/p2p"
	"github.com/parley-p2p/parley/rooms"
	"maunium.net/go/mautrix/id"
)

// testNode is a node on 127.0.0.1 with its data in a temp dir.
type testNode struct {
	*Node
	t   testing.TB
	dir string
}

type testOpts struct {
	dir       string
	bootstrap []*testNode
	regToken  string
	gater     connmgr.ConnectionGater
	reconnect time.Duration
	// requestTimeout bounds requests to other nodes.
	requestTimeout time.Duration
	// wrap makes the node misbehave as a peer.
	wrap func(p2p.Handler) p2p.Handler
	// relayService makes the node a relay for others (and publicly
	// reachable, as libp2p then believes).
	relayService bool
	// relays are nodes to hold relay reservations with.
	relays []*testNode
	// httpAddr is the API's listen address; default 127.0.0.1:0.
	httpAddr string
	// logger receives the node's logs (default: the test log when -v).
	logger *slog.Logger
	// private makes the node believe it is behind a NAT: on loopback
	// libp2p cannot tell, and relay addresses are announced only by
	// private nodes.
	private bool
	// failWrite fails the store writes of the events it returns an
	// error for.
	failWrite func(*rooms.Event) error
	// freeSpace fakes the data dir's free space.
	freeSpace func(dir string) (uint64, error)
}

func newTestNode(t testing.TB, o testOpts) *testNode {
	t.Helper()
	if o.dir == "" {
		o.dir = t.TempDir()
	}
	if o.httpAddr == "" {
		o.httpAddr = "127.0.0.1:0"
	}
	cfg := Config{
		DataDir:           o.dir,
		HTTPAddr:          o.httpAddr,
		ListenAddrs:       []string{"/ip4/127.0.0.1/tcp/0"},
		NoMDNS:            true,
		RegistrationToken: o.regToken,
		Gater:             o.gater,
		ReconnectInterval: o.reconnect,
		RequestTimeout:    o.requestTimeout,
		wrapHandler:       o.wrap,
		failWrite:         o.failWrite,
		freeSpace:         o.freeSpace,
	}
	for _, b := range o.bootstrap {
		cfg.Bootstrap = append(cfg.Bootstrap, b.Addrs()...)
	}
	cfg.RelayService = o.relayService
	for _, r := range o.relays {
		cfg.Relays = append(cfg.Relays, r.Addrs()...)
	}
	if o.private {
		cfg.p2pOptions = append(cfg.p2pOptions, libp2p.ForceReachabilityPrivate())
	}
	if testing.Verbose() {
		cfg.Logger = testLogger(t)
	}
	if o.logger != nil {
		cfg.Logger = o.logger
	}
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return &testNode{Node: n, t: t, dir: o.dir}
}

// client returns a mautrix client for the node's API.
func (tn *testNode) client() *mautrix.Client {
	c, err := mautrix.NewClient("http://"+tn.HTTPAddr(), "", "")
	if err != nil {
		tn.t.Fatal(err)
	}
	return c
}

// testPassword is the password register gives a user.
func testPassword(name string) string { return "password-" + name }

// register creates a user through the API and returns a logged-in client:
// the node's first user claims it with the claim code, later ones show the
// registration token.
func (tn *testNode) register(ctx context.Context, name string) *mautrix.Client {
	tn.t.Helper()
	c := tn.client()
	token := tn.ClaimCode()
	if token == "" {
		token = tn.cfg.RegistrationToken
	}
	resp, err := registerWithToken(ctx, c, name, testPassword(name), token)
	if err != nil {
		tn.t.Fatalf("register %s: %v", name, err)
	}
	c.SetCredentials(resp.UserID, resp.AccessToken)
	c.DeviceID = resp.DeviceID
	return c
}

// authRegistrationToken is the spec's registration-token stage (mautrix
// has no constant for it).
const authRegistrationToken mautrix.AuthType = "m.login.registration_token"

// registerWithToken registers as a Matrix client does: it asks, and
// answers the registration-token stage the node offers in its session.
func registerWithToken(ctx context.Context, c *mautrix.Client, name, password, token string) (*mautrix.RespRegister, error) {
	req := &mautrix.ReqRegister[any]{Username: name, Password: password}
	_, uia, err := c.Register(ctx, req)
	if uia == nil {
		return nil, fmt.Errorf("no user-interactive auth offered: %w", err)
	}
	if len(uia.Flows) != 1 || !uia.HasSingleStageFlow(authRegistrationToken) {
		return nil, fmt.Errorf("flows %+v, want the registration-token stage", uia.Flows)
	}
	req.Auth = map[string]any{"type": authRegistrationToken, "token": token, "session": uia.Session}
	resp, _, err := c.Register(ctx, req)
	return resp, err
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// syncer follows one user's /sync stream.
type syncer struct {
	c      *mautrix.Client
	since  string
	filter string
}

// newSyncer stores a filter with a timeline limit of 100, as real clients
// do, so bursts arrive whole rather than as limited timelines.
func newSyncer(t testing.TB, ctx context.Context, c *mautrix.Client) *syncer {
	t.Helper()
	f, err := c.CreateFilter(ctx, &mautrix.Filter{Room: &mautrix.RoomFilter{Timeline: &mautrix.FilterPart{Limit: 100}}})
	if err != nil {
		t.Fatalf("create filter: %v", err)
	}
	return &syncer{c: c, filter: f.FilterID}
}

// next long-polls once.
func (s *syncer) next(ctx context.Context, timeout time.Duration) (*mautrix.RespSync, error) {
	resp, err := s.c.SyncRequest(ctx, int(timeout/time.Millisecond), s.since, s.filter, false, "")
	if err != nil {
		return nil, err
	}
	s.since = resp.NextBatch
	return resp, nil
}

// until syncs until cond has seen what it wants or the deadline passes.
func (s *syncer) until(t testing.TB, timeout time.Duration, what string, cond func(*mautrix.RespSync) bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		resp, err := s.next(ctx, 2*time.Second)
		if err != nil {
			t.Fatalf("sync waiting for %s: %v", what, err)
		}
		if cond(resp) {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func joinedSet(ctx context.Context, c *mautrix.Client, room id.RoomID) (string, error) {
	resp, err := c.JoinedMembers(ctx, room)
	if err != nil {
		return "", err
	}
	var ids []string
	for u := range resp.Joined {
		ids = append(ids, u.String())
	}
	return fmt.Sprint(sortStrings(ids)), nil
}
