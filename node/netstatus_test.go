package node

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/p2p/protocol/ping"

	"github.com/parley-p2p/parley/internal/testkit"
	"github.com/parley-p2p/parley/node/peers"
)

// netStatus is the part of /_parley/v1/status that says how the node
// reaches and is reached, as the app reads it.
type netStatus struct {
	Network *struct {
		Reachability string `json:"reachability"`
		NATType      string `json:"nat_type"`
		PortMapping  *struct {
			Enabled bool     `json:"enabled"`
			Found   bool     `json:"found"`
			Mapped  []string `json:"mapped"`
		} `json:"port_mapping"`
		MemberRelay *struct {
			Enabled bool `json:"enabled"`
		} `json:"member_relay"`
		PublicNetwork bool `json:"public_network"`
	} `json:"network"`
	Members []struct {
		Server    string   `json:"server"`
		Peer      string   `json:"peer"`
		Path      string   `json:"path"`
		Via       *string  `json:"via"`
		ViaServer *string  `json:"via_server"`
		RTTms     *float64 `json:"rtt_ms"`
	} `json:"members"`
	// Reachability is the field the app read before "network".
	Reachability string `json:"reachability"`
}

func getNetStatus(t *testing.T, tn *testNode) netStatus {
	t.Helper()
	resp, err := http.Get("http://" + tn.HTTPAddr() + "/_parley/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st netStatus
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

// The status says how each member of the node's rooms is reached: bob's
// node, in alice's room, is "direct" from alice's, with a round trip once
// one was measured; then "offline" once it is gone. A node in no room
// lists no members.
func TestStatusSaysHowEachMemberIsReached(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	lonely := newTestNode(t, testOpts{})
	if st := getNetStatus(t, lonely); st.Members == nil || len(st.Members) != 0 {
		t.Fatalf("a node in no room lists members %+v, want an empty list", st.Members)
	}

	a, b, _, _, _ := twoMembers(t, ctx, testOpts{}, testOpts{})
	st := getNetStatus(t, a)
	if st.Network == nil || st.Network.PortMapping == nil || st.Network.MemberRelay == nil {
		t.Fatalf("status has no network part (or lacks port_mapping, member_relay): %+v", st.Network)
	}
	if st.Network.Reachability != st.Reachability {
		t.Errorf("network.reachability %q, but reachability %q", st.Network.Reachability, st.Reachability)
	}
	if st.Network.PublicNetwork {
		t.Errorf("network.public_network is on by default")
	}
	if len(st.Members) != 1 {
		t.Fatalf("a lists members %+v, want bob's node only", st.Members)
	}
	m := st.Members[0]
	if m.Server != b.ServerName() || m.Peer != b.PeerID().String() {
		t.Fatalf("member %s (peer %s), want %s (peer %s)", m.Server, m.Peer, b.ServerName(), b.PeerID())
	}
	if m.Path != "direct" || m.Via == nil || *m.Via != "" || m.ViaServer == nil || *m.ViaServer != "" {
		t.Fatalf("bob's node is reached %+v, want direct with via and via_server empty", m)
	}

	// A ping measures the round trip, as the host's own pings do.
	pctx, stopPing := context.WithCancel(ctx) // Ping pings until cancelled
	res := <-ping.Ping(pctx, a.Host().LibP2P(), b.PeerID())
	stopPing()
	if res.Error != nil {
		t.Fatalf("ping: %v", res.Error)
	}
	m = getNetStatus(t, a).Members[0]
	if m.RTTms == nil || *m.RTTms <= 0 {
		t.Fatalf("after a ping, rtt_ms is %v, want a positive number", m.RTTms)
	}
	t.Logf("rtt to bob's node on loopback: %.3f ms (ping said %v)", *m.RTTms, res.RTT)

	b.Close()
	testkit.WaitFor(t, 20*time.Second, "bob's node to show offline", func() bool {
		ms := getNetStatus(t, a).Members
		return len(ms) == 1 && ms[0].Path == "offline" && ms[0].RTTms == nil
	})
}

// Once the peers keep their set of room peers, the host asks it who may
// use this node's member relay: bob's node, which shares a room, and not
// a stranger.
func TestTheHostAsksThePeersWhoIsAMember(t *testing.T) {
	if _, ok := any((*peers.Peers)(nil)).(roomPeerSet); !ok {
		t.Skip("node/peers keeps no room peer set (IsRoomPeer, RoomPeers) on this branch")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, b, _, _, _ := twoMembers(t, ctx, testOpts{}, testOpts{})
	_, stranger := keyedDir(t)
	cfg := a.p2pConfig()
	testkit.WaitFor(t, 10*time.Second, "bob's node to count as a member", func() bool {
		return cfg.Members(b.PeerID())
	})
	if cfg.Members(stranger) {
		t.Errorf("a stranger counts as a member")
	}
	if got := cfg.MemberPeers(); len(got) != 1 || got[0] != b.PeerID() {
		t.Errorf("member peers %v, want [%s]", got, b.PeerID())
	}
}

// Before the peers exist (the host is made first), nobody is a member.
func TestNobodyIsAMemberBeforeThePeersExist(t *testing.T) {
	var none roomPeers
	_, p := keyedDir(t)
	if none.isMember(p) || none.members() != nil {
		t.Errorf("before the peers exist, someone counts as a member")
	}
	none.attach(struct{}{}) // peers without a room peer set
	if none.isMember(p) || none.members() != nil {
		t.Errorf("with peers that keep no room peer set, someone counts as a member")
	}
}
