package node

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/parley-p2p/parley/internal/testkit"
	"github.com/parley-p2p/parley/node/links"
	"github.com/parley-p2p/parley/node/peers"
	"github.com/parley-p2p/parley/p2p"
	"github.com/parley-p2p/parley/rooms"
	"github.com/parley-p2p/parley/webui"
)

// linkContent is the content of a link's state event on n.
func linkContent(t *testing.T, n *testNode, room id.RoomID, linkID string) map[string]any {
	t.Helper()
	r := n.getRoom(room.String())
	evID := r.State()[rooms.StateKey{Type: links.EventType, StateKey: linkID}]
	i, err := n.dag.Event(evID)
	if err != nil {
		return nil
	}
	var c map[string]any
	json.Unmarshal(i.Event.Content(), &c)
	return c
}

// TestLinkSpamIsCapped: an ordinary member (power 0) of a private room
// tries to make 2,000 invite links (100 by default, to keep the suite
// quick). It gets 20, then a clear refusal that stores nothing on either
// node; a revoked link and a used-up one leave only a tombstone in the
// room's state.
func TestLinkSpamIsCapped(t *testing.T) {
	t.Parallel()
	attempts := 100
	if s := os.Getenv("PARLEY_LINK_ATTEMPTS"); s != "" {
		attempts, _ = strconv.Atoi(s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	a := newTestNode(t, testOpts{})
	b := newTestNode(t, testOpts{bootstrap: []*testNode{a}})
	c := newTestNode(t, testOpts{bootstrap: []*testNode{a}})
	alice, bob, carol := a.register(ctx, "alice"), b.register(ctx, "bob"), c.register(ctx, "carol")
	room := privateRoom(t, ctx, alice)
	joinThrough(t, ctx, room, alice, bob)
	testkit.WaitFor(t, 20*time.Second, "bob's join to reach alice's node", func() bool {
		return a.membership(a.getRoom(room.String()), bob.UserID.String()) == "join"
	})

	usage := func(n *testNode) (int64, int64) {
		_, ss, err := n.store.StateUsage()
		if err != nil {
			t.Fatal(err)
		}
		return ss, dirBytes(t, filepath.Join(n.dir, "db"))
	}
	aSS, aDir := usage(a)
	bSS, bDir := usage(b)
	made, refused := 0, 0
	var lastErr error
	var madeLinks []map[string]any
	for range attempts {
		var out map[string]any
		_, err := bob.MakeRequest(ctx, http.MethodPost, bob.BuildURL(mautrix.BaseURLPath{"_parley", "v1", "rooms", room.String(), "links"}), map[string]any{}, &out)
		if err != nil {
			refused++
			lastErr = err
			continue
		}
		made++
		madeLinks = append(madeLinks, out)
	}
	aSS2, aDir2 := usage(a)
	bSS2, bDir2 := usage(b)
	t.Logf("bob tried %d links: %d made, %d refused (%v); states grew %d bytes on alice's node and %d on bob's; database dirs %d and %d bytes",
		attempts, made, refused, lastErr, aSS2-aSS, bSS2-bSS, aDir2-aDir, bDir2-bDir)
	if made != links.MaxPerUser {
		t.Fatalf("bob made %d links, want %d", made, links.MaxPerUser)
	}
	var herr mautrix.HTTPError
	if refused > 0 && (!asHTTPError(lastErr, &herr) || herr.Response.StatusCode != 403 || !strings.Contains(lastErr.Error(), "live links")) {
		t.Errorf("refusal: %v, want 403 naming the live links", lastErr)
	}

	t.Run("refused links store nothing on either node", func(t *testing.T) {
		posA, posB := a.store.Pos(), b.store.Pos()
		_, err := bob.MakeRequest(ctx, http.MethodPost, bob.BuildURL(mautrix.BaseURLPath{"_parley", "v1", "rooms", room.String(), "links"}), map[string]any{}, nil)
		if err == nil {
			t.Fatal("a 21st link was made")
		}
		if a.store.Pos() != posA || b.store.Pos() != posB {
			t.Errorf("a refused link moved the streams: alice %d -> %d, bob %d -> %d", posA, a.store.Pos(), posB, b.store.Pos())
		}
	})

	t.Run("a revoked link leaves a tombstone and frees a place", func(t *testing.T) {
		lid := madeLinks[0]["id"].(string)
		if _, err := bob.MakeRequest(ctx, http.MethodDelete, bob.BuildURL(mautrix.BaseURLPath{"_parley", "v1", "rooms", room.String(), "links", lid}), nil, nil); err != nil {
			t.Fatal(err)
		}
		testkit.WaitFor(t, 20*time.Second, "the revocation to reach alice's node", func() bool {
			return linkContent(t, a, room, lid)["ended"] == "revoked"
		})
		for _, n := range []*testNode{a, b} {
			if c := linkContent(t, n, room, lid); len(c) != 1 {
				t.Errorf("revoked link's state is %v, want only why it ended", c)
			}
		}
		_, code, err := useLink(ctx, carol, madeLinks[0]["link"].(string))
		if err == nil || code != "M_FORBIDDEN" || !strings.Contains(err.Error(), "revoked") {
			t.Errorf("using the revoked link: %v (%s)", err, code)
		}
		if _, err := bob.MakeRequest(ctx, http.MethodPost, bob.BuildURL(mautrix.BaseURLPath{"_parley", "v1", "rooms", room.String(), "links"}), map[string]any{}, nil); err != nil {
			t.Errorf("after revoking one, bob cannot make another: %v", err)
		}
	})

	t.Run("a used-up link leaves a tombstone", func(t *testing.T) {
		once := makeLink(t, ctx, alice, room, map[string]any{"max_uses": 1})
		if got, code, err := useLink(ctx, carol, once["link"].(string)); err != nil || got != room.String() {
			t.Fatalf("carol's use: %v %s", err, code)
		}
		lid := once["id"].(string)
		testkit.WaitFor(t, 20*time.Second, "the link to be buried", func() bool {
			return linkContent(t, a, room, lid)["ended"] == "used up"
		})
		if c := linkContent(t, a, room, lid); len(c) != 1 {
			t.Errorf("used-up link's state is %v, want only why it ended", c)
		}
	})
}

func asHTTPError(err error, out *mautrix.HTTPError) bool {
	e, ok := err.(mautrix.HTTPError)
	if ok && e.Response != nil {
		*out = e
	}
	return ok && e.Response != nil
}

// TestRoomLinksAreCapped: ten members with 20 live links each fill a
// room's 200; the next link is refused by the room's cap, and nothing is
// stored.
func TestRoomLinksAreCapped(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	a := newTestNode(t, testOpts{})
	alice := a.register(ctx, "alice")
	room := privateRoom(t, ctx, alice)
	r := a.getRoom(room.String())
	// Local members without accounts, joined by events the node builds:
	// the cap is the node's, whichever client asks.
	var members []string
	for i := range links.MaxPerRoom/links.MaxPerUser + 1 {
		u := fmt.Sprintf("@m%d:%s", i, a.serverName)
		for _, step := range []struct{ sender, membership string }{{alice.UserID.String(), "invite"}, {u, "join"}} {
			c, _ := rooms.MarshalCanonical(map[string]string{"membership": step.membership})
			if _, err := a.dag.Send(ctx, r.Room, step.sender, "m.room.member", &u, c, "", ""); err != nil {
				t.Fatalf("%s %s: %v", u, step.membership, err)
			}
		}
		members = append(members, u)
	}
	for _, u := range members[:links.MaxPerRoom/links.MaxPerUser] {
		for range links.MaxPerUser {
			if _, err := a.api.CreateLink(ctx, &webui.Session{UserID: u}, r.ID, 0, 0); err != nil {
				t.Fatalf("%s making a link: %v", u, err)
			}
		}
	}
	pos := a.store.Pos()
	_, err := a.api.CreateLink(ctx, &webui.Session{UserID: members[len(members)-1]}, r.ID, 0, 0)
	if err == nil || !strings.Contains(err.Error(), "this room already has 200 live links") {
		t.Errorf("link number %d: %v, want the room's cap", links.MaxPerRoom+1, err)
	}
	if a.store.Pos() != pos {
		t.Errorf("the refused link moved the stream %d -> %d", pos, a.store.Pos())
	}
	if got := len(a.peers.LinkStates(r)); got != links.MaxPerRoom {
		t.Errorf("%d links in the room's state, want %d", got, links.MaxPerRoom)
	}
}

// TestLinkJoinerThatNeverAnswersBlocksNoOne: mallory's node uses a link
// and then never answers the invite alice's node sends it. While that
// invite hangs, carol joins through the same link, and dave is refused
// because mallory's pending use and carol's fill its two uses. Once
// mallory's node answers, the link is used up.
func TestLinkJoinerThatNeverAnswersBlocksNoOne(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// Long timeouts: only the order of events decides this test.
	a := newTestNode(t, testOpts{requestTimeout: 2 * time.Minute})
	hanging := make(chan struct{})
	release := make(chan struct{})
	var hung atomic.Bool
	h := newTestNode(t, testOpts{bootstrap: []*testNode{a}, requestTimeout: 2 * time.Minute, wrap: func(next p2p.Handler) p2p.Handler {
		return func(ctx context.Context, from peer.ID, method string, body []byte) ([]byte, error) {
			if method == peers.MethodInvite && hung.CompareAndSwap(false, true) {
				close(hanging)
				<-release
			}
			return next(ctx, from, method, body)
		}
	}})
	c := newTestNode(t, testOpts{bootstrap: []*testNode{a}})
	d := newTestNode(t, testOpts{bootstrap: []*testNode{a}})
	alice, mallory, carol, dave := a.register(ctx, "alice"), h.register(ctx, "mallory"), c.register(ctx, "carol"), d.register(ctx, "dave")
	room := privateRoom(t, ctx, alice)
	link := makeLink(t, ctx, alice, room, map[string]any{"max_uses": 2})
	l, lid := link["link"].(string), link["id"].(string)

	malloryDone := make(chan struct{})
	var malloryErr error
	go func() {
		defer close(malloryDone)
		_, _, malloryErr = useLink(ctx, mallory, l)
	}()
	var releaseOnce sync.Once
	unhang := func() { releaseOnce.Do(func() { close(release) }) }
	defer func() {
		unhang()
		<-malloryDone
	}()
	select {
	case <-hanging:
	case <-ctx.Done():
		t.Fatal("mallory's node was never sent the invite")
	}

	if got, code, err := useLink(ctx, carol, l); err != nil || got != room.String() {
		t.Fatalf("carol's join while mallory's invite hangs: %v %s", err, code)
	}
	select {
	case <-malloryDone:
		t.Fatalf("mallory's use ended (%v) before carol's could: carol waited for it", malloryErr)
	default:
	}
	_, code, err := useLink(ctx, dave, l)
	if err == nil || code != "M_FORBIDDEN" || !strings.Contains(err.Error(), "used up") {
		t.Errorf("dave's use with one use counted and one pending: %v (%s), want used up", err, code)
	}

	unhang()
	<-malloryDone
	if malloryErr != nil {
		t.Errorf("mallory's use, once her node answered: %v", malloryErr)
	}
	testkit.WaitFor(t, 30*time.Second, "the link's two uses to be counted", func() bool {
		return linkContent(t, a, room, lid)["ended"] == "used up"
	})
}
