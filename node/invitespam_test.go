package node

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/parley-p2p/parley/node/peers"
	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/p2p"
	"github.com/parley-p2p/parley/rooms"
)

// spammer is a libp2p host with an identity of its own that speaks
// parley's request protocol by hand: a server no one invited, sharing no
// room with the node it talks to.
type spammer struct {
	host *p2p.Host
	key  ed25519.PrivateKey
	name string
	to   *testNode
}

func newSpammer(t testing.TB, to *testNode) *spammer {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	h, err := p2p.New(p2p.Config{Key: key, ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, NoMDNS: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	h.AddAddrs(to.PeerID(), to.Addrs())
	return &spammer{host: h, key: key, name: rooms.ServerName(key.Public().(ed25519.PublicKey)), to: to}
}

// invite sends an invite for a made-up room, signed by the spammer, with
// the given stripped state. It returns the node's error code, if any.
func (s *spammer) invite(ctx context.Context, target string, state []json.RawMessage) (string, error) {
	roomID := "!" + randomHex(12) + ":" + s.name
	content, _ := rooms.MarshalCanonical(map[string]string{"membership": "invite"})
	ev, err := rooms.Build(rooms.ProtoEvent{
		RoomID: roomID, Sender: "@mallory:" + s.name, Type: "m.room.member", StateKey: &target, Content: content,
		PrevEvents: []string{"$" + strings.Repeat("P", 43)}, AuthEvents: []string{"$" + strings.Repeat("A", 43)},
		Depth: 3, OriginServerTS: nowMS(),
	}, rooms.V11, s.name, s.key)
	if err != nil {
		return "", err
	}
	body, err := peers.SealInvite(s.to.kemKey(s.to.t), s.name, s.to.serverName, peers.InviteReq{RoomVersion: rooms.V11, Event: ev.JSON(), InviteState: state}, [32]byte{1})
	if err != nil {
		return "", err
	}
	_, err = s.host.Request(ctx, s.to.PeerID(), peers.MethodInvite, body)
	var re *p2p.RemoteError
	if errors.As(err, &re) {
		return re.Code, nil
	}
	return "", err
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// spamState is the attack's stripped state: 15 entries of about 15 KB,
// one a forged room name from a made-up "bank" server. (The 15 x
// 60 KB no longer fits a request, p2p.MaxRequestSize: the request protocol
// refuses it before the invite handler sees it.)
func spamState() []json.RawMessage {
	const pad = 15000
	var out []json.RawMessage
	bank := "@bank:" + strings.Repeat("0", 64)
	for i := range 15 {
		typ, sk, content := "m.room.topic", fmt.Sprintf("k%d", i), map[string]string{"topic": strings.Repeat("x", pad)}
		switch i {
		case 0:
			typ, sk, content = "m.room.name", "", map[string]string{"name": "Your bank: urgent security check", "pad": strings.Repeat("y", pad)}
		case 1:
			typ, sk = "m.room.topic", ""
		case 2:
			typ, sk = "com.example.junk", ""
		}
		b, _ := json.Marshal(map[string]any{"type": typ, "state_key": sk, "sender": bank, "content": content})
		out = append(out, b)
	}
	return out
}

// storedInvites sums what the node holds for a user's invites.
func storedInvites(t testing.TB, n *testNode, user string) (pending int, bytes int, invs []*store.Invite) {
	t.Helper()
	err := n.store.View(func(tx *store.Txn) error {
		var err error
		invs, err = tx.Invites(user)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, inv := range invs {
		b, _ := json.Marshal(inv)
		bytes += len(b)
		if !inv.Left {
			pending++
		}
	}
	return pending, bytes, invs
}

// rawSync returns a /sync response's size and its invited rooms.
func rawSync(t testing.TB, ctx context.Context, c *mautrix.Client, since string) (int, map[string]json.RawMessage, string) {
	t.Helper()
	url := c.BuildClientURL("v3", "sync") + "?timeout=0"
	if since != "" {
		url += "&since=" + since
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+c.AccessToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("sync: %d %v", resp.StatusCode, err)
	}
	var out struct {
		NextBatch string `json:"next_batch"`
		Rooms     struct {
			Invite map[string]json.RawMessage `json:"invite"`
		} `json:"rooms"`
	}
	json.Unmarshal(body, &out)
	return len(body), out.Rooms.Invite, out.NextBatch
}

// TestInviteSpamFromStrangersIsBounded: strangers send a user invites to
// made-up rooms, each with 15 x 15 KB of stripped state. The node keeps a
// bounded number of invites, each with bounded state of the listed types,
// so /sync stays small; it keeps serving.
func TestInviteSpamFromStrangersIsBounded(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	a := newTestNode(t, testOpts{})
	alice := a.register(ctx, "alice")
	target := alice.UserID.String()
	heapBefore := heapInUse()

	// One spammer sends 100.
	m := newSpammer(t, a)
	accepted, refused := 0, map[string]int{}
	for range 100 {
		code, err := m.invite(ctx, target, spamState())
		if err != nil {
			t.Fatalf("invite request failed outright: %v", err)
		}
		if code == "" {
			accepted++
		} else {
			refused[code]++
		}
	}
	pending, stored, invs := storedInvites(t, a, target)
	size, invited, _ := rawSync(t, ctx, alice, "")
	t.Logf("one spammer, 100 invites: %d accepted, refused %v; %d pending, %d bytes stored; initial /sync %d bytes with %d invites; heap +%d KiB",
		accepted, refused, pending, stored, size, len(invited), (int64(heapInUse())-int64(heapBefore))/1024)
	if accepted > peers.MaxInvitesPerServer {
		t.Errorf("one server got %d invites accepted, want at most %d", accepted, peers.MaxInvitesPerServer)
	}
	for _, inv := range invs {
		total := 0
		for _, s := range inv.State {
			total += len(s)
			var st struct{ Type string }
			json.Unmarshal(s, &st)
			if !slicesContainsType(st.Type) {
				t.Errorf("stored stripped state of type %q", st.Type)
			}
		}
		if len(inv.State) > peers.MaxInviteStateEvents || total > peers.MaxInviteStateBytes {
			t.Errorf("an invite keeps %d stripped events, %d bytes; want at most %d and %d", len(inv.State), total, peers.MaxInviteStateEvents, peers.MaxInviteStateBytes)
		}
	}

	// Eleven more strangers, ten invites each: the user's cap holds.
	for range 11 {
		s := newSpammer(t, a)
		for range 10 {
			if _, err := s.invite(ctx, target, spamState()); err != nil {
				t.Fatalf("invite request failed outright: %v", err)
			}
		}
	}
	pending, stored, _ = storedInvites(t, a, target)
	size, invited, next := rawSync(t, ctx, alice, "")
	t.Logf("after 12 strangers: %d pending, %d bytes stored; initial /sync %d bytes with %d invites; heap +%d KiB",
		pending, stored, size, len(invited), (int64(heapInUse())-int64(heapBefore))/1024)
	if pending > peers.MaxPendingInvites {
		t.Errorf("%d invites pending, want at most %d", pending, peers.MaxPendingInvites)
	}
	if limit := peers.MaxPendingInvites * (peers.MaxInviteStateBytes + peers.MaxInviteEventBytes + 1024); size > limit {
		t.Errorf("initial /sync is %d bytes, want at most %d", size, limit)
	}
	if _, incr, _ := rawSync(t, ctx, alice, next); len(incr) != 0 {
		t.Errorf("an incremental /sync with nothing new lists %d invites", len(incr))
	}

	// The node still serves its user.
	if _, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Name: "still here"}); err != nil {
		t.Errorf("createRoom after the spam: %v", err)
	}
}

func slicesContainsType(typ string) bool {
	for _, k := range peers.StrippedStateTypes {
		if k == typ {
			return true
		}
	}
	return typ == "m.room.member"
}

// TestOwnerBlocksAServer: the owner blocks a server; its pending invites
// are dropped for every user, new ones are refused with nothing stored,
// the block outlives a restart, and only the owner may block.
func TestOwnerBlocksAServer(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a := newTestNode(t, testOpts{regToken: "family"})
	alice := a.register(ctx, "alice")
	bob := a.registerWithToken(ctx, "bob", "family")
	m, other := newSpammer(t, a), newSpammer(t, a)
	send := func(s *spammer, c *mautrix.Client) string {
		t.Helper()
		code, err := s.invite(ctx, c.UserID.String(), nil)
		if err != nil {
			t.Fatal(err)
		}
		return code
	}
	for range 3 {
		send(m, alice)
	}
	send(m, bob)
	send(other, alice)
	_, _, next := rawSync(t, ctx, alice, "")
	blockURL := func(n *testNode, server string) string {
		return "http://" + n.HTTPAddr() + "/_parley/v1/blocked_servers/" + server
	}

	if _, err := bob.MakeRequest(ctx, http.MethodPut, blockURL(a, m.name), struct{}{}, nil); !isErrCode(err, "M_FORBIDDEN") {
		t.Fatalf("bob (not the owner) blocking a server: %v, want M_FORBIDDEN", err)
	}
	if _, err := alice.MakeRequest(ctx, http.MethodPut, blockURL(a, m.name), struct{}{}, nil); err != nil {
		t.Fatalf("alice blocks %s: %v", m.name[:8], err)
	}
	for _, c := range []*mautrix.Client{alice, bob} {
		_, _, invs := storedInvites(t, a, c.UserID.String())
		for _, inv := range invs {
			if inv.Via == m.name && (!inv.Left || inv.State != nil || inv.Event != nil) {
				t.Errorf("%s still holds the blocked server's invite to %s (left %v, %d bytes of event)", c.UserID, inv.RoomID, inv.Left, len(inv.Event))
			}
		}
	}
	if pending, _, _ := storedInvites(t, a, alice.UserID.String()); pending != 1 {
		t.Errorf("alice has %d pending invites, want the other server's 1", pending)
	}
	var left struct {
		Rooms struct {
			Leave map[string]json.RawMessage `json:"leave"`
		} `json:"rooms"`
	}
	if _, err := alice.MakeRequest(ctx, http.MethodGet, alice.BuildClientURL("v3", "sync")+"?timeout=0&since="+next, nil, &left); err != nil {
		t.Fatal(err)
	}
	if len(left.Rooms.Leave) != 3 {
		t.Errorf("alice's next /sync shows %d rooms left, want the blocked server's 3", len(left.Rooms.Leave))
	}

	_, before, _ := storedInvites(t, a, alice.UserID.String())
	if code := send(m, alice); code != "M_FORBIDDEN" {
		t.Errorf("a blocked server's invite: %q, want M_FORBIDDEN", code)
	}
	if _, after, _ := storedInvites(t, a, alice.UserID.String()); after != before {
		t.Errorf("the refused invite changed what is stored: %d -> %d bytes", before, after)
	}

	// The block outlives a restart.
	a.Close()
	a2 := newTestNode(t, testOpts{dir: a.dir})
	alice.HomeserverURL.Host = a2.HTTPAddr()
	var list struct {
		Servers []string `json:"servers"`
	}
	if _, err := alice.MakeRequest(ctx, http.MethodGet, "http://"+a2.HTTPAddr()+"/_parley/v1/blocked_servers", nil, &list); err != nil || len(list.Servers) != 1 || list.Servers[0] != m.name {
		t.Fatalf("blocked servers after a restart: %v (%v), want [%s]", list.Servers, err, m.name)
	}
	m2 := &spammer{host: m.host, key: m.key, name: m.name, to: a2}
	m.host.AddAddrs(a2.PeerID(), a2.Addrs())
	if code := send(m2, alice); code != "M_FORBIDDEN" {
		t.Errorf("after a restart, the blocked server's invite: %q, want M_FORBIDDEN", code)
	}
	if _, err := alice.MakeRequest(ctx, http.MethodDelete, blockURL(a2, m.name), nil, nil); err != nil {
		t.Fatal(err)
	}
	if code := send(m2, alice); code != "" {
		t.Errorf("after unblocking, the server's invite: %q, want it taken", code)
	}

	// Declining drops what the inviter sent.
	_, _, invs := storedInvites(t, a2, alice.UserID.String())
	for _, inv := range invs {
		if inv.Via == other.name {
			if _, err := alice.LeaveRoom(ctx, id.RoomID(inv.RoomID)); err != nil {
				t.Fatal(err)
			}
		}
	}
	_, _, invs = storedInvites(t, a2, alice.UserID.String())
	for _, inv := range invs {
		if inv.Via == other.name && (!inv.Left || inv.Event != nil || inv.State != nil) {
			t.Errorf("after declining, the invite to %s keeps %d bytes of event and %d state entries", inv.RoomID, len(inv.Event), len(inv.State))
		}
	}
}

func isErrCode(err error, code string) bool {
	var he mautrix.HTTPError
	return errors.As(err, &he) && he.RespError != nil && he.RespError.ErrCode == code
}

// BenchmarkIncrementalSyncWithInviteSpam: an incremental /sync with
// nothing new, after 100 invites of 15 x 15 KB stripped state from 20
// strangers (what the node kept of them).
func BenchmarkIncrementalSyncWithInviteSpam(b *testing.B) {
	ctx := context.Background()
	a := newTestNode(b, testOpts{})
	alice := a.register(ctx, "alice")
	for range 20 {
		s := newSpammer(b, a)
		for range 5 {
			if _, err := s.invite(ctx, alice.UserID.String(), spamState()); err != nil {
				b.Fatal(err)
			}
		}
	}
	size, invited, next := rawSync(b, ctx, alice, "")
	b.Logf("%d invites kept; initial /sync %d bytes", len(invited), size)
	b.ResetTimer()
	for b.Loop() {
		rawSync(b, ctx, alice, next)
	}
}
