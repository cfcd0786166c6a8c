package node

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/parley-p2p/parley/internal/testkit"
	"github.com/parley-p2p/parley/node/peers"
	"github.com/parley-p2p/parley/p2p"
)

// recorder keeps every byte a hostile host reads from any stream.
type recorder struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (r *recorder) add(p []byte) {
	r.mu.Lock()
	r.buf.Write(p)
	r.mu.Unlock()
}

func (r *recorder) bytes() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return bytes.Clone(r.buf.Bytes())
}

// recStream records what is read from a stream.
type recStream struct {
	network.Stream
	rec *recorder
}

func (s recStream) Read(p []byte) (int, error) {
	n, err := s.Stream.Read(p)
	if n > 0 {
		s.rec.add(p[:n])
	}
	return n, err
}

// recHost is a libp2p host whose streams, those it opens and those it
// accepts, record what they read.
type recHost struct {
	host.Host
	rec *recorder
}

func (h recHost) SetStreamHandler(pid protocol.ID, handler network.StreamHandler) {
	h.Host.SetStreamHandler(pid, func(s network.Stream) { handler(recStream{s, h.rec}) })
}

func (h recHost) SetStreamHandlerMatch(pid protocol.ID, m func(protocol.ID) bool, handler network.StreamHandler) {
	h.Host.SetStreamHandlerMatch(pid, m, func(s network.Stream) { handler(recStream{s, h.rec}) })
}

func (h recHost) NewStream(ctx context.Context, p peer.ID, pids ...protocol.ID) (network.Stream, error) {
	s, err := h.Host.NewStream(ctx, p, pids...)
	if err != nil {
		return nil, err
	}
	return recStream{s, h.rec}, nil
}

// greedyFilter accepts every subscription and remembers the topics peers
// announce.
type greedyFilter struct {
	mu     sync.Mutex
	topics map[string]bool
}

func (f *greedyFilter) CanSubscribe(string) bool { return true }

func (f *greedyFilter) FilterIncomingSubscriptions(_ peer.ID, subs []*pb.RPC_SubOpts) ([]*pb.RPC_SubOpts, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range subs {
		f.topics[s.GetTopicid()] = true
	}
	return subs, nil
}

func (f *greedyFilter) seen() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for t := range f.topics {
		out = append(out, t)
	}
	return out
}

// hostile is a plain libp2p host, not a parley node: it runs parley's DHT
// as a server and GossipSub, subscribes to every topic it hears of, and
// records every byte it reads.
type hostile struct {
	h      recHost
	kad    *dht.IpfsDHT
	ps     *pubsub.PubSub
	filter *greedyFilter
	rec    *recorder

	mu       sync.Mutex
	subs     map[string]*pubsub.Subscription
	messages int
}

func newHostile(t *testing.T, ctx context.Context) *hostile {
	t.Helper()
	lh, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	x := &hostile{rec: &recorder{}, filter: &greedyFilter{topics: map[string]bool{}}, subs: map[string]*pubsub.Subscription{}}
	x.h = recHost{lh, x.rec}
	if x.kad, err = dht.New(x.h, dht.Mode(dht.ModeServer), dht.ProtocolPrefix(p2p.DHTProtocolPrefix)); err != nil {
		t.Fatal(err)
	}
	if x.ps, err = pubsub.NewGossipSub(ctx, x.h, pubsub.WithSubscriptionFilter(x.filter),
		pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign), pubsub.WithNoAuthor(),
		pubsub.WithMaxMessageSize(2<<20)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		x.kad.Close()
		lh.Close()
	})
	return x
}

// subscribeAll subscribes to every topic announced so far, and counts
// what arrives on them.
func (x *hostile) subscribeAll(t *testing.T, ctx context.Context) int {
	for _, topic := range x.filter.seen() {
		x.mu.Lock()
		_, ok := x.subs[topic]
		x.mu.Unlock()
		if ok {
			continue
		}
		tp, err := x.ps.Join(topic)
		if err != nil {
			t.Fatalf("hostile joins %s: %v", topic, err)
		}
		sub, err := tp.Subscribe()
		if err != nil {
			t.Fatal(err)
		}
		x.mu.Lock()
		x.subs[topic] = sub
		x.mu.Unlock()
		go func() {
			for {
				if _, err := sub.Next(ctx); err != nil {
					return
				}
				x.mu.Lock()
				x.messages++
				x.mu.Unlock()
			}
		}()
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	return len(x.subs)
}

func (x *hostile) received() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.messages
}

// request sends a raw request of parley's protocol and returns the status
// byte and the rest of the answer.
func (x *hostile) request(ctx context.Context, p peer.ID, method string, body []byte) (byte, []byte, error) {
	s, err := x.h.NewStream(ctx, p, p2p.RequestProtocol)
	if err != nil {
		return 0, nil, err
	}
	defer s.Close()
	msg := binary.AppendUvarint(nil, uint64(len(method)))
	msg = append(msg, method...)
	msg = binary.AppendUvarint(msg, uint64(len(body)))
	msg = append(msg, body...)
	if _, err := s.Write(msg); err != nil {
		return 0, nil, err
	}
	s.CloseWrite()
	out, err := io.ReadAll(s)
	if err != nil || len(out) == 0 {
		return 0, nil, err
	}
	return out[0], out[1:], nil
}

// encodings are the forms a canary could take in what the hostile host
// recorded: raw; standard and URL base64, padded or not, at each of the
// three alignments; hex, lower and upper case.
func encodings(canary string) []string {
	c := []byte(canary)
	out := []string{canary, hex.EncodeToString(c), strings.ToUpper(hex.EncodeToString(c))}
	for k := range 3 {
		in := append(make([]byte, k), c...)
		start := (8*k + 5) / 6
		end := 8 * len(in) / 6
		for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
			out = append(out, enc.EncodeToString(in)[start:end])
		}
	}
	return out
}

// TestAHostilePeerLearnsNothingOfARoom: a peer outside a room, a plain
// libp2p host that connects to every member's node, runs the DHT,
// subscribes to every topic it hears announced and records every byte it
// reads, learns neither the room's ID, name or topic, nor its users, their
// display names or what they say, in any common encoding; and it gets
// none of the room's messages.
func TestAHostilePeerLearnsNothingOfARoom(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const (
		bodyCanary  = "bodycanaryq7x1"
		nameCanary  = "namecanaryq7x2"
		topicCanary = "topiccanaryq7x3"
		dispCanary  = "dispcanaryq7x4"
	)
	users := []string{"alicecanaryq7x", "bobcanaryq7x", "carolcanaryq7x"}

	a := newTestNode(t, testOpts{})
	b := newTestNode(t, testOpts{bootstrap: []*testNode{a}})
	c := newTestNode(t, testOpts{bootstrap: []*testNode{a}})
	nodes := []*testNode{a, b, c}
	x := newHostile(t, ctx)
	for _, n := range nodes {
		ai, err := peer.AddrInfoFromString(n.Addrs()[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := x.h.Connect(ctx, *ai); err != nil {
			t.Fatalf("hostile connects to a member: %v", err)
		}
	}
	clients := []*mautrix.Client{a.register(ctx, users[0]), b.register(ctx, users[1]), c.register(ctx, users[2])}
	alice := clients[0]
	resp, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Name: nameCanary, Topic: topicCanary})
	if err != nil {
		t.Fatal(err)
	}
	room := resp.RoomID
	joinThrough(t, ctx, room, alice, clients[1])
	joinThrough(t, ctx, room, alice, clients[2])
	for _, u := range clients {
		testkit.WaitFor(t, 30*time.Second, "all three joined", func() bool {
			m, err := u.JoinedMembers(ctx, room)
			return err == nil && len(m.Joined) == 3
		})
	}
	testkit.WaitFor(t, 30*time.Second, "the hostile host to hear of the room's topic", func() bool {
		return x.subscribeAll(t, ctx) > 0
	})
	if err := clients[1].SetDisplayName(ctx, dispCanary); err != nil {
		t.Fatal(err)
	}
	var last id.EventID
	for i, u := range clients {
		sent, err := u.SendText(ctx, room, bodyCanary+" from "+users[i])
		if err != nil {
			t.Fatal(err)
		}
		last = sent.EventID
		x.subscribeAll(t, ctx)
	}
	for _, u := range clients {
		s := &testkit.Syncer{Client: u}
		s.Until(t, 30*time.Second, "the last message everywhere", func(r *mautrix.RespSync) bool {
			jr := r.Rooms.Join[room]
			if jr == nil { // a sync with other news only
				return false
			}
			for _, ev := range jr.Timeline.Events {
				if ev.ID == last {
					return true
				}
			}
			return false
		})
	}

	// Requests a stranger could make knowing (or guessing) the room's ID:
	// a plain room request, and a sealed one under a made-up key id.
	guess, _ := json.Marshal(peers.IDsReq{RoomID: room.String()})
	for _, n := range nodes {
		status, out, err := x.request(ctx, n.PeerID(), peers.MethodExtremities, guess)
		if err != nil || status != 1 {
			t.Errorf("a plain extremities request: status %d, %q, %v; want a refusal", status, out, err)
		}
		status, out, err = x.request(ctx, n.PeerID(), peers.MethodRoom, append([]byte{1}, make([]byte, 100)...))
		if err != nil || status != 1 {
			t.Errorf("a sealed request under a made-up key: status %d, %q, %v; want a refusal", status, out, err)
		}
		if bytes.Contains(out, []byte(room.String())) {
			t.Errorf("a refusal names the room: %q", out)
		}
	}
	// Let gossip and the DHT run a little more, announcing and relaying.
	more, err := alice.SendText(ctx, room, bodyCanary+" last")
	if err != nil {
		t.Fatal(err)
	}
	s := &testkit.Syncer{Client: clients[2]}
	s.Until(t, 30*time.Second, "the final message at carol's", func(r *mautrix.RespSync) bool {
		for _, ev := range r.Rooms.Join[room].Timeline.Events {
			if ev.ID == more.EventID {
				return true
			}
		}
		return false
	})

	got := x.rec.bytes()
	// The recording works: it holds the topics announced to the hostile
	// host, and the refusals of its requests.
	for _, topic := range x.filter.seen() {
		if !bytes.Contains(got, []byte(topic)) {
			t.Errorf("the recording lacks the topic %q the hostile host heard of", topic)
		}
	}
	if !bytes.Contains(got, []byte("M_FORBIDDEN")) {
		t.Error("the recording lacks the refusals of the hostile host's requests")
	}
	canaries := map[string]string{
		"a message body": bodyCanary, "the room name": nameCanary, "the room topic": topicCanary,
		"a display name": dispCanary,
		"the room ID":    strings.SplitN(strings.TrimPrefix(room.String(), "!"), ":", 2)[0],
	}
	for _, u := range users {
		canaries["the user "+u] = u
	}
	for what, canary := range canaries {
		for _, enc := range encodings(canary) {
			if bytes.Contains(got, []byte(enc)) {
				t.Errorf("the hostile host read %s (%q as %q)", what, canary, enc)
			}
		}
	}
	if n := x.received(); n != 0 {
		t.Errorf("the hostile host got %d of the room's messages, want 0", n)
	}
	t.Logf("the hostile host recorded %d bytes and heard of %d topics", len(got), len(x.filter.seen()))
}

// TestABanRotatesTheRoomSecret: when carol is banned, the remaining
// members' nodes move to a new room secret, and so to topics her node
// cannot name; her node is not given it, even when it asks, and alice and
// bob keep talking.
func TestABanRotatesTheRoomSecret(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	nodes, clients, room := threeNodeRoom(t, ctx)
	a, b, c := nodes[0], nodes[1], nodes[2]
	alice, bob, carol := clients[0], clients[1], clients[2]
	for _, n := range nodes {
		if e := n.roomEpoch(room.String()); e != 0 {
			t.Fatalf("epoch %d before any departure, want 0", e)
		}
	}
	if _, err := alice.BanUser(ctx, room, &mautrix.ReqBanUser{UserID: carol.UserID}); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 30*time.Second, "alice's and bob's nodes to move to epoch 1", func() bool {
		return a.roomEpoch(room.String()) == 1 && b.roomEpoch(room.String()) == 1
	})
	ka, kb := a.roomKeys(t, room.String()), b.roomKeys(t, room.String())
	if ka.Publish.Topic != kb.Publish.Topic {
		t.Errorf("alice's and bob's nodes publish on different topics")
	}
	// Carol's node asks, as at a catch-up, and is refused.
	c.peers.CatchUp(ctx, c.getRoom(room.String()), a.PeerID())
	if e := c.roomEpoch(room.String()); e != 0 {
		t.Errorf("the banned node holds epoch %d", e)
	}
	if k, ok := c.peers.RoomKeys(room.String()); ok && k.Publish.Topic == ka.Publish.Topic {
		t.Error("the banned node names the room's new topic")
	}

	for _, step := range []struct {
		from, to *mautrix.Client
	}{{alice, bob}, {bob, alice}} {
		sent, err := step.from.SendText(ctx, room, "after the ban, from "+step.from.UserID.String())
		if err != nil {
			t.Fatal(err)
		}
		s := &testkit.Syncer{Client: step.to}
		s.Until(t, 30*time.Second, "the message after the ban", func(r *mautrix.RespSync) bool {
			for _, ev := range r.Rooms.Join[room].Timeline.Events {
				if ev.ID == sent.EventID {
					return true
				}
			}
			return false
		})
	}
}
