package node

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/peer"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/parley-p2p/parley/internal/testkit"
	"github.com/parley-p2p/parley/node/client"
	"github.com/parley-p2p/parley/p2p"
	"github.com/parley-p2p/parley/rooms"
)

// testNode is a node on 127.0.0.1 with its data in a temp dir.
type testNode struct {
	*Node
	t   testing.TB
	dir string
	// gate is the gater the node's host was built with, which blocks
	// nobody until the test says so (split, heal); nil when the test
	// gave the node a gater of its own (testOpts.gater).
	gate *testkit.Gater
}

type testOpts struct {
	dir       string
	bootstrap []*testNode
	regToken  string
	// shun are peers the node refuses connections with from its start.
	shun []peer.ID
	// gater replaces the node's own testkit.Gater (see testNode.gate).
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
	failWrite func(ev *rooms.Event, plain []byte) error
	// freeSpace fakes the data dir's free space.
	freeSpace func(dir string) (uint64, error)
	// accessTokenLifetime shortens refreshable access tokens.
	accessTokenLifetime time.Duration
	// hidePresence shares no presence (Config.HidePresence).
	hidePresence bool
	// presenceIdle shortens the time to idle presence.
	presenceIdle time.Duration
	// noPrefetch turns fetching media ahead of need off.
	noPrefetch bool
	// maxUpload and mediaQuota set Config.MaxUpload and MediaQuota.
	maxUpload, mediaQuota int64
	// mediaFetcher replaces the node's fetching of remote media.
	mediaFetcher client.MediaFetcher
}

// newTestNode starts a node that closes when the test ends, and fails the
// test if the goroutines the test started (this node's and any other's)
// outlive it.
func newTestNode(t testing.TB, o testOpts) *testNode {
	t.Helper()
	if o.private {
		testkit.CheckGoroutines(t, testkit.AutoNATDialer...)
	} else {
		testkit.CheckGoroutines(t)
	}
	var gate *testkit.Gater
	if o.gater == nil {
		gate = &testkit.Gater{}
		gate.Block(o.shun...)
		o.gater = gate
	} else if len(o.shun) > 0 {
		t.Fatal("testOpts: shun needs the node's own gater")
	}
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
		NoPortMap:         true, // no UPnP or NAT-PMP probes on the LAN from tests
		RegistrationToken: o.regToken,
		Gater:             o.gater,
		ReconnectInterval: o.reconnect,
		RequestTimeout:    o.requestTimeout,
		wrapHandler:       o.wrap,
		failWrite:         o.failWrite,
		freeSpace:         o.freeSpace,

		accessTokenLifetime: o.accessTokenLifetime,
		HidePresence:        o.hidePresence,
		presenceIdle:        o.presenceIdle,
		noMediaPrefetch:     o.noPrefetch,
		MaxUpload:           o.maxUpload,
		MediaQuota:          o.mediaQuota,
		mediaFetcher:        o.mediaFetcher,
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
	return &testNode{Node: n, t: t, dir: o.dir, gate: gate}
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

// split cuts every connection between two groups of nodes, and keeps
// them cut until heal.
func split(t testing.TB, left, right []*testNode) {
	t.Helper()
	gated := func(ns []*testNode) []testkit.Gated {
		var out []testkit.Gated
		for _, n := range ns {
			if n.gate == nil {
				t.Fatal("split: a node with a gater of the test's own")
			}
			out = append(out, testkit.Gated{Host: n.host.LibP2P(), Gater: n.gate})
		}
		return out
	}
	testkit.Split(t, gated(left), gated(right))
}

// heal lets the nodes connect to every peer again; they find each other
// on their own.
func heal(ns ...*testNode) {
	for _, n := range ns {
		n.gate.Heal()
	}
}

// privateRoom has c create a private room.
func privateRoom(t testing.TB, ctx context.Context, c *mautrix.Client) id.RoomID {
	t.Helper()
	resp, err := c.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat"})
	if err != nil {
		t.Fatalf("%s creates a room: %v", c.UserID, err)
	}
	return resp.RoomID
}

// joinThrough has inviter invite invitee and waits until the join is done.
func joinThrough(t testing.TB, ctx context.Context, room id.RoomID, inviter, invitee *mautrix.Client) {
	t.Helper()
	if _, err := inviter.InviteUser(ctx, room, &mautrix.ReqInviteUser{UserID: invitee.UserID}); err != nil {
		t.Fatalf("invite %s: %v", invitee.UserID, err)
	}
	s := &testkit.Syncer{Client: invitee}
	s.Until(t, 30*time.Second, string(invitee.UserID)+"'s invite", func(r *mautrix.RespSync) bool {
		_, ok := r.Rooms.Invite[room]
		return ok
	})
	if _, err := invitee.JoinRoomByID(ctx, room); err != nil {
		t.Fatalf("%s join: %v", invitee.UserID, err)
	}
}

// twoNodes starts node a, and node b that knows a, and registers alice on
// a and bob on b.
func twoNodes(t testing.TB, ctx context.Context, aOpts, bOpts testOpts) (a, b *testNode, alice, bob *mautrix.Client) {
	t.Helper()
	a = newTestNode(t, aOpts)
	bOpts.bootstrap = append(bOpts.bootstrap, a)
	b = newTestNode(t, bOpts)
	return a, b, a.register(ctx, "alice"), b.register(ctx, "bob")
}

// twoMembers is twoNodes with alice and bob in a private room alice
// created: it returns once bob's join has reached a.
func twoMembers(t testing.TB, ctx context.Context, aOpts, bOpts testOpts) (a, b *testNode, alice, bob *mautrix.Client, room id.RoomID) {
	t.Helper()
	a, b, alice, bob = twoNodes(t, ctx, aOpts, bOpts)
	room = privateRoom(t, ctx, alice)
	joinThrough(t, ctx, room, alice, bob)
	testkit.WaitFor(t, 20*time.Second, "bob's join to reach a", func() bool {
		return a.membership(a.getRoom(room.String()), bob.UserID.String()) == "join"
	})
	return a, b, alice, bob, room
}

// threeNodeRoom starts nodes a, b and c (b and c know a) with alice, bob
// and carol on them, and has bob and carol join a private room alice
// created: it returns once every user sees all three joined. opts are a's,
// b's and c's, in that order; missing ones are zero.
func threeNodeRoom(tb testing.TB, ctx context.Context, opts ...testOpts) ([]*testNode, []*mautrix.Client, id.RoomID) {
	tb.Helper()
	opts = append(opts, make([]testOpts, 3)...)
	a := newTestNode(tb, opts[0])
	opts[1].bootstrap = append(opts[1].bootstrap, a)
	opts[2].bootstrap = append(opts[2].bootstrap, a)
	b, c := newTestNode(tb, opts[1]), newTestNode(tb, opts[2])
	alice, bob, carol := a.register(ctx, "alice"), b.register(ctx, "bob"), c.register(ctx, "carol")
	room := privateRoom(tb, ctx, alice)
	joinThrough(tb, ctx, room, alice, bob)
	joinThrough(tb, ctx, room, alice, carol)
	for _, u := range []*mautrix.Client{alice, bob, carol} {
		testkit.WaitFor(tb, 30*time.Second, "all three joined", func() bool {
			m, err := u.JoinedMembers(ctx, room)
			return err == nil && len(m.Joined) == 3
		})
	}
	return []*testNode{a, b, c}, []*mautrix.Client{alice, bob, carol}, room
}
