package p2p

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/gologshim"

	"github.com/parley-p2p/parley/internal/testkit"
)

// loopbackListen are the listen addresses of test hosts: both transports,
// loopback only, ports chosen by the kernel.
var loopbackListen = []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}

func newKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func TestMain(m *testing.M) {
	if os.Getenv("P2P_TEST_LOG") == "" {
		// libp2p logs through its own handlers, to stderr; keep test output
		// readable. (Set P2P_TEST_LOG=1 to see everything.)
		gologshim.SetDefaultHandler(slog.DiscardHandler)
	}
	os.Exit(m.Run())
}

// testLogger logs to stderr when P2P_TEST_LOG is set, else nowhere.
func testLogger() *slog.Logger {
	if os.Getenv("P2P_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// newTestHost starts a host on loopback without mDNS and without port
// mapping (no UPnP or NAT-PMP packets on the LAN, whatever the test listens
// on), and closes it when the test ends; the test then fails if goroutines
// it started outlive it (testkit.CheckGoroutines). edit may adjust the
// config before New.
func newTestHost(t testing.TB, edit ...func(*Config)) *Host {
	t.Helper()
	cfg := Config{
		Key:         newKey(t),
		ListenAddrs: loopbackListen,
		NoMDNS:      true,
		NoPortMap:   true,
		Logger:      testLogger(),
	}
	for _, e := range edit {
		e(&cfg)
	}
	testkit.CheckGoroutines(t, libp2pLeaks(cfg)...)
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := h.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return h
}

// libp2pLeaks are the goroutines that a host built with cfg leaves behind
// through no fault of parley's: go-libp2p never closes AutoNAT's dialer
// swarm when reachability is forced private (testkit.AutoNATDialer), as
// some tests here do through cfg.Options.
func libp2pLeaks(cfg Config) []string {
	var lc libp2p.Config
	for _, o := range cfg.Options {
		if err := o(&lc); err != nil {
			return nil
		}
	}
	if r := lc.AutoNATConfig.ForceReachability; r != nil && *r == network.ReachabilityPrivate {
		return testkit.AutoNATDialer
	}
	return nil
}

func bootstrapFrom(hosts ...*Host) func(*Config) {
	return func(c *Config) {
		for _, h := range hosts {
			c.Bootstrap = append(c.Bootstrap, h.Addrs()...)
		}
	}
}

// connect tells a where b is and connects them.
func connect(t testing.TB, a, b *Host) {
	t.Helper()
	a.AddAddrs(b.ID(), b.Addrs())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Connect(ctx, b.ID()); err != nil {
		t.Fatalf("connect %s to %s: %v", a.ID().ShortString(), b.ID().ShortString(), err)
	}
}

// waitFor is testkit.WaitFor, under the name this package's tests call.
var waitFor = testkit.WaitFor

func connected(a, b *Host) func() bool {
	return func() bool {
		return a.LibP2P().Network().Connectedness(b.ID()) == network.Connected
	}
}

func hasPeer(peers []peer.ID, p peer.ID) bool {
	for _, q := range peers {
		if q == p {
			return true
		}
	}
	return false
}

// inRoom reports whether h has seen p subscribed to the room.
func inRoom(h *Host, roomID string, p peer.ID) func() bool {
	return func() bool { return hasPeer(h.RoomPeers(roomID), p) }
}

// received is one message handed to a Receiver.
type received struct {
	from peer.ID
	data string
}

// inbox is a Receiver that queues what it gets.
type inbox struct {
	ch chan received
}

func newInbox(size int) *inbox { return &inbox{ch: make(chan received, size)} }

func (b *inbox) receive(from peer.ID, data []byte) {
	b.ch <- received{from, string(data)}
}

// next returns the next message, failing the test after timeout.
func (b *inbox) next(t testing.TB, timeout time.Duration) received {
	t.Helper()
	select {
	case m := <-b.ch:
		return m
	case <-time.After(timeout):
		t.Fatalf("no message within %v", timeout)
		return received{}
	}
}

// blockGater is testkit.Gater with the verbs this package's tests call; it
// refuses connections to and from the peers it blocks, to build topologies
// such as a chain.
type blockGater struct{ testkit.Gater }

func newBlockGater() *blockGater        { return &blockGater{} }
func (g *blockGater) block(p peer.ID)   { g.Block(p) }
func (g *blockGater) unblock(p peer.ID) { g.Unblock(p) }

// testKeys are a room's topic and key in tests: derived from the room ID,
// as a real caller derives them from the room's secret.
func testKeys(roomID string) RoomKeys {
	sum := sha256.Sum256([]byte("test-topic\x00" + roomID))
	return RoomKeys{Publish: TopicKey{
		Topic: RoomTopicPrefix + hex.EncodeToString(sum[:16]),
		Key:   sha256.Sum256([]byte("test-key\x00" + roomID)),
	}}
}

// testTopic is the topic of testKeys.
func testTopic(roomID string) string { return testKeys(roomID).Publish.Topic }
