package node

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/parley-p2p/parley/internal/testkit"
	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/p2p"
)

func isCircuit(a ma.Multiaddr) bool {
	_, err := a.ValueForProtocol(ma.P_CIRCUIT)
	return err == nil
}

// natGater stands for two NATs that defeat hole punching: it refuses direct
// connections with the far peer and lets relayed ones (/p2p-circuit) pass.
// It records the remote address of every connection with the far peer.
type natGater struct {
	far peer.ID

	mu   sync.Mutex
	seen []ma.Multiaddr
}

func (g *natGater) InterceptPeerDial(peer.ID) bool { return true }
func (g *natGater) InterceptAddrDial(p peer.ID, a ma.Multiaddr) bool {
	return p != g.far || isCircuit(a)
}
func (g *natGater) InterceptAccept(network.ConnMultiaddrs) bool { return true }
func (g *natGater) InterceptSecured(_ network.Direction, p peer.ID, c network.ConnMultiaddrs) bool {
	return p != g.far || isCircuit(c.RemoteMultiaddr())
}
func (g *natGater) InterceptUpgraded(c network.Conn) (bool, control.DisconnectReason) {
	if c.RemotePeer() == g.far {
		g.mu.Lock()
		g.seen = append(g.seen, c.RemoteMultiaddr())
		g.mu.Unlock()
	}
	return true, 0
}

// connections returns the remote addresses of the connections with the far
// peer so far.
func (g *natGater) connections() []ma.Multiaddr {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]ma.Multiaddr(nil), g.seen...)
}

// keyedDir returns a data directory holding a fresh node key, and the peer ID
// the node will have.
func keyedDir(t *testing.T) (string, peer.ID) {
	t.Helper()
	dir := t.TempDir()
	key, err := LoadOrCreateKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	p, err := p2p.PeerIDFromKey(key.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	return dir, p
}

type relayStatus struct {
	Reachability string   `json:"reachability"`
	RelayService bool     `json:"relay_service"`
	Relayed      bool     `json:"relayed"`
	Addrs        []string `json:"addrs"`
	Rooms        int      `json:"rooms"`
}

func getStatus(t *testing.T, tn *testNode) relayStatus {
	t.Helper()
	resp, err := http.Get("http://" + tn.HTTPAddr() + "/_parley/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st relayStatus
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

// TestRoomAcrossARelay: B and C cannot reach each other directly (two NATs
// that defeat hole punching); both reach R, which offers the relay service.
// Bob on B creates a room and invites Carol on C by user ID: B finds C's
// circuit address through the DHT on R, and the invite, make_join/send_join
// and the messages both ways all cross R. R relays bytes only: it is in no
// room and stores no event.
func TestRoomAcrossARelay(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dirB, idB := keyedDir(t)
	dirC, idC := keyedDir(t)
	gateB, gateC := &natGater{far: idC}, &natGater{far: idB}
	r := newTestNode(t, testOpts{relayService: true})
	// B names R as its relay; C only knows R as a bootstrap peer, which
	// offers the relay service. No periodic catch-up within the test: the
	// messages must come by gossip over the relayed connection.
	b := newTestNode(t, testOpts{dir: dirB, bootstrap: []*testNode{r}, relays: []*testNode{r}, private: true, gater: gateB, reconnect: time.Hour})
	c := newTestNode(t, testOpts{dir: dirC, bootstrap: []*testNode{r}, private: true, gater: gateC, reconnect: time.Hour})

	for _, tn := range []*testNode{b, c} {
		testkit.WaitFor(t, 10*time.Second, "a relay reservation", func() bool { return getStatus(t, tn).Relayed })
		testkit.WaitFor(t, 10*time.Second, "R to learn the circuit address", func() bool {
			for _, a := range r.Host().LibP2P().Peerstore().Addrs(tn.PeerID()) {
				if isCircuit(a) {
					return true
				}
			}
			return false
		})
	}
	for _, tc := range []struct {
		name  string
		tn    *testNode
		reach string
		relay bool
	}{
		{"R", r, "public", true},
		{"B", b, "private", false},
		{"C", c, "private", false},
	} {
		st := getStatus(t, tc.tn)
		if st.Reachability != tc.reach || st.RelayService != tc.relay || st.Relayed == tc.relay {
			t.Errorf("%s status: reachability %q, relay_service %v, relayed %v", tc.name, st.Reachability, st.RelayService, st.Relayed)
		}
		circuit := false
		for _, a := range st.Addrs {
			circuit = circuit || strings.Contains(a, "/p2p/"+r.PeerID().String()+"/p2p-circuit/p2p/")
		}
		if circuit != st.Relayed {
			t.Errorf("%s addrs %v: circuit address through R present: %v, want %v", tc.name, st.Addrs, circuit, st.Relayed)
		}
	}

	bob, carol := b.register(ctx, "bob"), c.register(ctx, "carol")
	room := privateRoom(t, ctx, bob)
	joinThrough(t, ctx, room, bob, carol)
	syncB, syncC := testkit.NewSyncer(t, ctx, bob), testkit.NewSyncer(t, ctx, carol)
	for _, s := range []*testkit.Syncer{syncB, syncC} {
		if _, err := s.Next(ctx, 0); err != nil {
			t.Fatal(err)
		}
	}
	sent, err := bob.SendText(ctx, room, "hello carol, via R")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := carol.SendText(ctx, room, "hello bob, via R"); err != nil {
		t.Fatal(err)
	}
	sees := func(from id.UserID, body string) func(*mautrix.RespSync) bool {
		return func(resp *mautrix.RespSync) bool {
			joined := resp.Rooms.Join[room]
			if joined == nil {
				return false
			}
			for _, ev := range joined.Timeline.Events {
				if ev.Sender != from || ev.Type != event.EventMessage {
					continue
				}
				if raw, _ := ev.Content.Raw["body"].(string); raw == body {
					return true
				}
			}
			return false
		}
	}
	syncC.Until(t, 10*time.Second, "carol to see bob's message", sees(bob.UserID, "hello carol, via R"))
	syncB.Until(t, 10*time.Second, "bob to see carol's message", sees(carol.UserID, "hello bob, via R"))

	// B and C never had a direct connection; they had relayed ones.
	for name, g := range map[string]*natGater{"B": gateB, "C": gateC} {
		conns := g.connections()
		if len(conns) == 0 {
			t.Errorf("%s never connected to the other side", name)
		}
		for _, a := range conns {
			if !isCircuit(a) {
				t.Errorf("%s had a direct connection with the other side, at %s", name, a)
			}
		}
	}

	// R is in no room and stores nothing of this one.
	if r.getRoom(room.String()) != nil || getStatus(t, r).Rooms != 0 {
		t.Error("R joined the room")
	}
	err = r.store.View(func(txn *store.Txn) error {
		rooms, err := txn.Rooms()
		if err != nil {
			return err
		}
		if len(rooms) != 0 {
			t.Errorf("R stores %d rooms", len(rooms))
		}
		has, err := txn.HasEvent(sent.EventID.String())
		if has {
			t.Error("R stores bob's message")
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}
