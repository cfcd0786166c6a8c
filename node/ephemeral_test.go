package node

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/parley-p2p/parley/internal/testkit"
	"github.com/parley-p2p/parley/node/peers"
	"github.com/parley-p2p/parley/p2p"
)

// typingIn returns the users of the room's m.typing in a /sync answer,
// and whether it had one.
func typingIn(resp *mautrix.RespSync, room id.RoomID) ([]string, bool) {
	jr, ok := resp.Rooms.Join[room]
	if !ok {
		return nil, false
	}
	var users []string
	found := false
	for _, ev := range jr.Ephemeral.Events {
		if ev.Type != event.EphemeralEventTyping {
			continue
		}
		var c struct {
			UserIDs []string `json:"user_ids"`
		}
		if err := json.Unmarshal(ev.Content.VeryRaw, &c); err != nil {
			return nil, false
		}
		users, found = c.UserIDs, true
	}
	return users, found
}

// presenceIn returns a user's m.presence content in a /sync answer.
func presenceIn(resp *mautrix.RespSync, user id.UserID) (map[string]any, bool) {
	for _, ev := range resp.Presence.Events {
		if ev.Type != event.EphemeralEventPresence || ev.Sender != user {
			continue
		}
		var c map[string]any
		if json.Unmarshal(ev.Content.VeryRaw, &c) == nil {
			return c, true
		}
	}
	return nil, false
}

// put sends a raw PUT with a JSON body.
func put(ctx context.Context, c *mautrix.Client, body any, path ...any) error {
	_, err := c.MakeFullRequest(ctx, mautrix.FullRequest{Method: http.MethodPut, URL: c.BuildClientURL(append([]any{"v3"}, path...)...), RequestJSON: body, MaxAttempts: 1})
	return err
}

// TestTypingReachesMembersAndEnds: alice's typing on node a shows in
// bob's /sync on node b as the room's m.typing; it ends there when she
// stops, and when its timeout runs out.
func TestTypingReachesMembersAndEnds(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, _, alice, bob, room := twoMembers(t, ctx, testOpts{}, testOpts{})
	bs := testkit.NewSyncer(t, ctx, bob)
	if _, err := bs.Next(ctx, 0); err != nil {
		t.Fatal(err)
	}
	typing := func(want ...string) func(*mautrix.RespSync) bool {
		return func(r *mautrix.RespSync) bool {
			got, ok := typingIn(r, room)
			return ok && slices.Equal(got, want)
		}
	}

	if _, err := alice.UserTyping(ctx, room, true, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	bs.Until(t, 20*time.Second, "alice typing, on b", typing(alice.UserID.String()))
	as := testkit.NewSyncer(t, ctx, alice)
	as.Until(t, 10*time.Second, "alice typing, in her own /sync", typing(alice.UserID.String()))

	if _, err := alice.UserTyping(ctx, room, false, 0); err != nil {
		t.Fatal(err)
	}
	bs.Until(t, 20*time.Second, "alice no longer typing, on b", typing())

	if _, err := alice.UserTyping(ctx, room, true, 3*time.Second); err != nil {
		t.Fatal(err)
	}
	bs.Until(t, 20*time.Second, "alice typing again, on b", typing(alice.UserID.String()))
	bs.Until(t, 20*time.Second, "alice's typing to expire, on b", typing())
}

// TestTypingWakesAWaitingSync: bob's long-poll of a minute, waiting for
// news, returns with alice's typing as soon as it arrives (the test's
// deadline is shorter than the poll's).
func TestTypingWakesAWaitingSync(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, b, alice, bob, room := twoMembers(t, ctx, testOpts{}, testOpts{})
	bs := testkit.NewSyncer(t, ctx, bob)
	if _, err := bs.Next(ctx, 0); err != nil {
		t.Fatal(err)
	}
	before := b.api.SyncBuilds()
	answers := make(chan *mautrix.RespSync, 1)
	pollCtx, pollCancel := context.WithTimeout(ctx, 30*time.Second)
	defer pollCancel()
	go func() {
		defer close(answers)
		for { // until a poll brings the typing, or one is not woken in time
			resp, err := bs.Next(pollCtx, time.Minute)
			if err != nil {
				t.Errorf("bob's long-poll: %v", err)
				return
			}
			if u, _ := typingIn(resp, room); len(u) > 0 {
				answers <- resp
				return
			}
		}
	}()
	testkit.WaitFor(t, 10*time.Second, "bob's long-poll to be built once", func() bool { return b.api.SyncBuilds() > before })
	if _, err := alice.UserTyping(ctx, room, true, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	resp := <-answers
	if resp == nil {
		t.Fatal("bob's long-poll was not woken by the typing")
	}
	if u, _ := typingIn(resp, room); !slices.Equal(u, []string{alice.UserID.String()}) {
		t.Fatalf("bob's long-poll returned typing %v; want alice's", u)
	}
}

// TestTypingGoesOnlyToTheRoomsNodes: alice is in a room with bob and in
// another with carol; her typing in the first never reaches carol's
// node, which hears her typing in the second.
func TestTypingGoesOnlyToTheRoomsNodes(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var mu sync.Mutex
	var heard []string // rooms of the ephemeral requests c took
	a := newTestNode(t, testOpts{})
	b := newTestNode(t, testOpts{bootstrap: []*testNode{a}})
	c := newTestNode(t, testOpts{bootstrap: []*testNode{a}, wrap: func(h p2p.Handler) p2p.Handler {
		return func(ctx context.Context, from peer.ID, method string, body []byte) ([]byte, error) {
			if method == peers.MethodEphemeral {
				var req peers.EphemeralReq
				json.Unmarshal(body, &req)
				mu.Lock()
				heard = append(heard, req.RoomID)
				mu.Unlock()
			}
			return h(ctx, from, method, body)
		}
	}})
	alice, bob, carol := a.register(ctx, "alice"), b.register(ctx, "bob"), c.register(ctx, "carol")
	withBob := privateRoom(t, ctx, alice)
	joinThrough(t, ctx, withBob, alice, bob)
	withCarol := privateRoom(t, ctx, alice)
	joinThrough(t, ctx, withCarol, alice, carol)
	testkit.WaitFor(t, 20*time.Second, "carol's join to reach a", func() bool {
		return a.membership(a.getRoom(withCarol.String()), carol.UserID.String()) == "join"
	})

	bs, cs := testkit.NewSyncer(t, ctx, bob), testkit.NewSyncer(t, ctx, carol)
	if _, err := alice.UserTyping(ctx, withBob, true, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	bs.Until(t, 20*time.Second, "alice typing, on b", func(r *mautrix.RespSync) bool {
		u, _ := typingIn(r, withBob)
		return slices.Contains(u, alice.UserID.String())
	})
	if _, err := alice.UserTyping(ctx, withCarol, true, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	cs.Until(t, 20*time.Second, "alice typing, on c", func(r *mautrix.RespSync) bool {
		if _, ok := r.Rooms.Join[withBob]; ok {
			t.Fatalf("carol's /sync shows the room she is not in")
		}
		u, _ := typingIn(r, withCarol)
		return slices.Contains(u, alice.UserID.String())
	})
	mu.Lock()
	defer mu.Unlock()
	if slices.Contains(heard, withBob.String()) || !slices.Contains(heard, withCarol.String()) {
		t.Fatalf("c was sent ephemeral data of rooms %v; want only %s's", heard, withCarol)
	}
}

// TestTypingRefusesBadClientInput: a user can set only their own typing,
// only in a room they are joined to, with a typing flag and a timeout
// that is not negative; a huge timeout is capped before it leaves the
// node.
func TestTypingRefusesBadClientInput(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var mu sync.Mutex
	var timeouts []int64 // as b received them
	_, _, alice, bob, room := twoMembers(t, ctx, testOpts{}, testOpts{wrap: func(h p2p.Handler) p2p.Handler {
		return func(ctx context.Context, from peer.ID, method string, body []byte) ([]byte, error) {
			var req peers.EphemeralReq
			if method == peers.MethodEphemeral && json.Unmarshal(body, &req) == nil && req.Type == "m.typing" {
				var c struct {
					Typing []struct {
						Timeout int64 `json:"timeout"`
					} `json:"typing"`
				}
				json.Unmarshal(req.Content, &c)
				mu.Lock()
				for _, u := range c.Typing {
					timeouts = append(timeouts, u.Timeout)
				}
				mu.Unlock()
			}
			return h(ctx, from, method, body)
		}
	}})
	bobsOwn := privateRoom(t, ctx, bob)
	cases := []struct {
		name   string
		room   id.RoomID
		user   id.UserID
		body   any
		status int
		code   string
	}{
		{"another user's typing is forbidden", room, bob.UserID, map[string]any{"typing": true, "timeout": 1000}, 403, "M_FORBIDDEN"},
		{"typing in a room one is not in is forbidden", bobsOwn, alice.UserID, map[string]any{"typing": true, "timeout": 1000}, 403, "M_FORBIDDEN"},
		{"typing in an unknown room is forbidden", "!nowhere:" + id.RoomID(alice.UserID.Homeserver()), alice.UserID, map[string]any{"typing": true}, 403, "M_FORBIDDEN"},
		{"a body without typing is refused", room, alice.UserID, map[string]any{"timeout": 1000}, 400, "M_MISSING_PARAM"},
		{"a negative timeout is refused", room, alice.UserID, map[string]any{"typing": true, "timeout": -5}, 400, "M_INVALID_PARAM"},
		{"typing of the wrong type is refused", room, alice.UserID, map[string]any{"typing": "yes"}, 400, "M_BAD_JSON"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantMatrixError(t, tc.name, put(ctx, alice, tc.body, "rooms", tc.room, "typing", tc.user), tc.status, tc.code)
		})
	}
	if err := put(ctx, alice, map[string]any{"typing": true, "timeout": int64(1) << 50}, "rooms", room, "typing", alice.UserID); err != nil {
		t.Fatalf("a huge timeout: %v", err)
	}
	bs := testkit.NewSyncer(t, ctx, bob)
	bs.Until(t, 20*time.Second, "alice typing, on b", func(r *mautrix.RespSync) bool {
		u, _ := typingIn(r, room)
		return slices.Contains(u, alice.UserID.String())
	})
	mu.Lock()
	defer mu.Unlock()
	if len(timeouts) == 0 {
		t.Fatal("b received no typing")
	}
	for _, ms := range timeouts {
		if ms <= 0 || ms > 30000 {
			t.Fatalf("b received a typing timeout of %d ms; want at most 30 s", ms)
		}
	}
}

// TestTypingRefusesBadPeerInput: carol's node, a member of the room,
// sends a's node typing notices that name a user of another server, a
// user of its own who is not joined, a timeout beyond the cap, too many
// users, garbage, an unknown kind, and a room it is not in: each is
// refused and alice's /sync never shows them; its honest notice for
// carol, sent last, is shown.
func TestTypingRefusesBadPeerInput(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	nodes, users, room := threeNodeRoom(t, ctx)
	a, c := nodes[0], nodes[2]
	alice, bob, carol := users[0], users[1], users[2]
	elsewhere := privateRoom(t, ctx, alice)
	joinThrough(t, ctx, elsewhere, alice, bob)

	as := testkit.NewSyncer(t, ctx, alice)
	if _, err := as.Next(ctx, 0); err != nil {
		t.Fatal(err)
	}
	send := func(roomID id.RoomID, typ string, content string) error {
		var resp struct{}
		return c.peers.Request(ctx, a.host.ID(), peers.MethodEphemeral, peers.EphemeralReq{RoomID: roomID.String(), Type: typ, Content: json.RawMessage(content)}, &resp)
	}
	typingOf := func(users ...string) string {
		var parts []string
		for _, u := range users {
			parts = append(parts, fmt.Sprintf(`{"user_id":%q,"timeout":10000}`, u))
		}
		return `{"typing":[` + strings.Join(parts, ",") + `]}`
	}
	many := make([]string, 101)
	for k := range many {
		many[k] = carol.UserID.String()
	}
	cases := []struct {
		name    string
		room    id.RoomID
		typ     string
		content string
	}{
		{"a user of another server", room, "m.typing", typingOf(bob.UserID.String())},
		{"a user of its own who is not joined", room, "m.typing", typingOf("@nobody:" + c.ServerName())},
		{"a timeout beyond the cap", room, "m.typing", fmt.Sprintf(`{"typing":[{"user_id":%q,"timeout":600000}]}`, carol.UserID)},
		{"more users than allowed", room, "m.typing", typingOf(many...)},
		{"garbage", room, "m.typing", `{"typing":"everyone"}`},
		{"an unknown kind", room, "m.nonsense", `{}`},
		{"a room the node is not in", elsewhere, "m.typing", typingOf(carol.UserID.String())},
		{"presence of a user of another server", room, "m.presence", fmt.Sprintf(`{"user_id":%q,"presence":"online"}`, bob.UserID)},
		{"a receipt of a user of another server", room, "m.receipt", fmt.Sprintf(`{"user_id":%q,"event_id":%q,"ts":1}`, bob.UserID, room)},
		{"a receipt for an event the node does not hold", room, "m.receipt", fmt.Sprintf(`{"user_id":%q,"event_id":"$nothing","ts":1}`, carol.UserID)},
	}
	for _, tc := range cases {
		err := send(tc.room, tc.typ, tc.content)
		if err == nil {
			t.Errorf("a peer's typing notice naming %s was taken", tc.name)
		}
		t.Logf("%s: %v", tc.name, err)
	}
	if err := send(room, "m.typing", typingOf(carol.UserID.String())); err != nil {
		t.Fatalf("an honest typing notice: %v", err)
	}
	as.Until(t, 20*time.Second, "carol typing, on a", func(r *mautrix.RespSync) bool {
		if _, ok := r.Rooms.Join[elsewhere]; ok {
			if u, _ := typingIn(r, elsewhere); len(u) > 0 {
				t.Fatalf("a peer's notice for a room it is not in was shown: %v", u)
			}
		}
		if _, ok := presenceIn(r, bob.UserID); ok {
			t.Fatalf("a peer's presence for another server's user was shown")
		}
		u, ok := typingIn(r, room)
		if ok && !slices.Equal(u, []string{carol.UserID.String()}) && len(u) > 0 {
			t.Fatalf("typing shown %v; want carol's only", u)
		}
		return slices.Equal(u, []string{carol.UserID.String()})
	})

	// Once carol has left, her node's notices for the room are refused.
	if _, err := carol.LeaveRoom(ctx, room); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 20*time.Second, "carol's leave to reach a", func() bool {
		return a.membership(a.getRoom(room.String()), carol.UserID.String()) == "leave"
	})
	err := send(room, "m.typing", typingOf(carol.UserID.String()))
	if err == nil {
		t.Fatal("a typing notice from a node with no user joined was taken")
	}
	t.Logf("a node with no user joined: %v", err)
}

// TestPresenceReachesNodesSharingARoom: alice's presence set on a shows
// in bob's /sync on b and in GET /presence there; set_presence is
// honoured; a user sets only their own presence, to a valid value, and
// sees only the presence of users they share a room with.
func TestPresenceReachesNodesSharingARoom(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a, _, alice, bob, _ := twoMembers(t, ctx, testOpts{regToken: "let-loner-in"}, testOpts{})
	bs := testkit.NewSyncer(t, ctx, bob)
	if err := alice.SetPresence(ctx, mautrix.ReqPresence{Presence: event.PresenceUnavailable, StatusMsg: "at lunch"}); err != nil {
		t.Fatal(err)
	}
	bs.Until(t, 20*time.Second, "alice's presence, on b", func(r *mautrix.RespSync) bool {
		c, ok := presenceIn(r, alice.UserID)
		return ok && c["presence"] == "unavailable" && c["status_msg"] == "at lunch"
	})
	p, err := bob.GetPresence(ctx, alice.UserID)
	if err != nil || p.Presence != event.PresenceUnavailable || p.StatusMsg != "at lunch" {
		t.Fatalf("bob's GET of alice's presence = %+v, %v", p, err)
	}

	// A sync with set_presence=online does not undo what alice set; one
	// with set_presence=offline changes nothing either.
	if _, err := alice.FullSyncRequest(ctx, mautrix.ReqSync{SetPresence: event.PresenceOnline}); err != nil {
		t.Fatal(err)
	}
	if p, err := alice.GetOwnPresence(ctx); err != nil || p.Presence != event.PresenceUnavailable {
		t.Fatalf("alice's own presence after a sync = %+v, %v; want unavailable", p, err)
	}
	if err := alice.SetPresence(ctx, mautrix.ReqPresence{Presence: event.PresenceOffline}); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.FullSyncRequest(ctx, mautrix.ReqSync{SetPresence: event.PresenceUnavailable}); err != nil {
		t.Fatal(err)
	}
	if p, err := alice.GetOwnPresence(ctx); err != nil || p.Presence != event.PresenceUnavailable {
		t.Fatalf("alice's own presence after set_presence=unavailable = %+v, %v", p, err)
	}

	loner := a.register(ctx, "loner")
	cases := []struct {
		name   string
		err    error
		status int
		code   string
	}{
		{"setting another user's presence is forbidden", put(ctx, alice, map[string]any{"presence": "online"}, "presence", bob.UserID, "status"), 403, "M_FORBIDDEN"},
		{"an unknown presence is refused", put(ctx, alice, map[string]any{"presence": "busy"}, "presence", alice.UserID, "status"), 400, "M_INVALID_PARAM"},
		{"a missing presence is refused", put(ctx, alice, map[string]any{"status_msg": "hi"}, "presence", alice.UserID, "status"), 400, "M_MISSING_PARAM"},
		{"an oversized status is refused", put(ctx, alice, map[string]any{"presence": "online", "status_msg": strings.Repeat("x", 2000)}, "presence", alice.UserID, "status"), 400, "M_INVALID_PARAM"},
		{"a bad set_presence is refused", func() error {
			_, err := alice.FullSyncRequest(ctx, mautrix.ReqSync{SetPresence: "dancing"})
			return err
		}(), 400, "M_INVALID_PARAM"},
		{"the presence of a user sharing no room is forbidden", func() error {
			_, err := loner.GetPresence(ctx, bob.UserID)
			return err
		}(), 403, "M_FORBIDDEN"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { wantMatrixError(t, tc.name, tc.err, tc.status, tc.code) })
	}
}

// TestPresenceReachesNewcomers: presence set before two users share a
// room reaches each side once they do, without a change.
func TestPresenceReachesNewcomers(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a, _, alice, bob := twoNodes(t, ctx, testOpts{}, testOpts{})
	if err := alice.SetPresence(ctx, mautrix.ReqPresence{Presence: event.PresenceUnavailable, StatusMsg: "before you came"}); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.SyncRequest(ctx, 0, "", "", false, ""); err != nil { // bob is online
		t.Fatal(err)
	}
	room := privateRoom(t, ctx, alice)
	joinThrough(t, ctx, room, alice, bob)
	testkit.WaitFor(t, 20*time.Second, "bob's join to reach a", func() bool {
		return a.membership(a.getRoom(room.String()), bob.UserID.String()) == "join"
	})
	as, bs := testkit.NewSyncer(t, ctx, alice), testkit.NewSyncer(t, ctx, bob)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // alice's syncs announce her presence to b
		defer wg.Done()
		for ctx.Err() == nil {
			if r, err := as.Next(ctx, time.Second); err == nil {
				if c, ok := presenceIn(r, bob.UserID); ok && c["presence"] == "online" {
					return
				}
			}
		}
	}()
	bs.Until(t, 20*time.Second, "alice's earlier presence, on b", func(r *mautrix.RespSync) bool {
		c, ok := presenceIn(r, alice.UserID)
		return ok && c["status_msg"] == "before you came"
	})
	wg.Wait()
	if ctx.Err() != nil {
		t.Fatal("alice never saw bob online")
	}
}

// TestPresenceHidden: a node set to share no presence sends none of its
// users' (bob on b never sees alice's, though her typing arrives), and
// shows its users none of others' (GET answers 403).
func TestPresenceHidden(t *testing.T) {
	t.Parallel()
	for _, hiddenOnA := range []bool{true, false} {
		name := map[bool]string{true: "the sender hides it", false: "the receiver hides it"}[hiddenOnA]
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			_, _, alice, bob, room := twoMembers(t, ctx, testOpts{hidePresence: hiddenOnA}, testOpts{hidePresence: !hiddenOnA})
			bs := testkit.NewSyncer(t, ctx, bob)
			if err := alice.SetPresence(ctx, mautrix.ReqPresence{Presence: event.PresenceOnline, StatusMsg: "secret"}); err != nil {
				t.Fatal(err)
			}
			if _, err := alice.UserTyping(ctx, room, true, 20*time.Second); err != nil {
				t.Fatal(err)
			}
			bs.Until(t, 20*time.Second, "alice typing, on b", func(r *mautrix.RespSync) bool {
				if _, ok := presenceIn(r, alice.UserID); ok {
					t.Fatal("alice's presence reached bob")
				}
				u, _ := typingIn(r, room)
				return slices.Contains(u, alice.UserID.String())
			})
			p, err := bob.GetPresence(ctx, alice.UserID)
			if hiddenOnA {
				if err != nil || p.Presence != event.PresenceOffline || p.StatusMsg != "" {
					t.Fatalf("bob's GET of alice's presence = %+v, %v; want offline and no status", p, err)
				}
			} else {
				wantMatrixError(t, "GET of another's presence on a node that shows none", err, 403, "M_FORBIDDEN")
			}
			if p, err := alice.GetOwnPresence(ctx); err != nil || p.StatusMsg != "secret" {
				t.Fatalf("alice's own presence = %+v, %v", p, err)
			}
		})
	}
}

// TestSyncTokens: a /sync token without the ephemeral part (from before
// it existed) is taken, one with a malformed part is refused, and one
// from before a restart answers with the current sets.
func TestSyncTokens(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	a := newTestNode(t, testOpts{dir: dir})
	alice := a.register(ctx, "alice")
	first, err := alice.SyncRequest(ctx, 0, "", "", false, "")
	if err != nil {
		t.Fatal(err)
	}
	pos, _, ok := strings.Cut(first.NextBatch, "_")
	if !ok {
		t.Fatalf("next_batch %q has no ephemeral part", first.NextBatch)
	}
	if _, err := alice.SyncRequest(ctx, 0, pos, "", false, ""); err != nil {
		t.Fatalf("a token without the ephemeral part: %v", err)
	}
	_, err = alice.SyncRequest(ctx, 0, pos+"_x", "", false, "")
	wantMatrixError(t, "a malformed token", err, 400, "M_INVALID_PARAM")
	room := privateRoom(t, ctx, alice)
	if _, err := alice.Messages(ctx, room, first.NextBatch, "", mautrix.DirectionBackward, nil, 10); err != nil {
		t.Fatalf("/messages from a /sync token: %v", err)
	}

	a.Close()
	b := newTestNode(t, testOpts{dir: dir})
	c := b.client()
	c.SetCredentials(alice.UserID, alice.AccessToken)
	resp, err := c.SyncRequest(ctx, 0, first.NextBatch, "", false, "")
	if err != nil {
		t.Fatalf("a token from before the restart: %v", err)
	}
	if _, ok := presenceIn(resp, alice.UserID); !ok {
		t.Fatal("a sync from before the restart did not get the current presence")
	}
	if resp.NextBatch == first.NextBatch {
		t.Fatal("next_batch did not move across the restart")
	}
}

// TestReceiptsReachMembers: bob's public read receipt on b shows in
// alice's /sync on a; his private one never leaves b.
func TestReceiptsReachMembers(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var mu sync.Mutex
	var heard []string // receipts a took, as JSON
	_, _, alice, bob, room := twoMembers(t, ctx, testOpts{wrap: func(h p2p.Handler) p2p.Handler {
		return func(ctx context.Context, from peer.ID, method string, body []byte) ([]byte, error) {
			var req peers.EphemeralReq
			if method == peers.MethodEphemeral && json.Unmarshal(body, &req) == nil && req.Type == "m.receipt" {
				mu.Lock()
				heard = append(heard, string(req.Content))
				mu.Unlock()
			}
			return h(ctx, from, method, body)
		}
	}}, testOpts{})
	private, err := alice.SendText(ctx, room, "read privately")
	if err != nil {
		t.Fatal(err)
	}
	public, err := alice.SendText(ctx, room, "read publicly")
	if err != nil {
		t.Fatal(err)
	}
	bs := testkit.NewSyncer(t, ctx, bob)
	bs.Until(t, 20*time.Second, "alice's messages, on b", func(r *mautrix.RespSync) bool {
		for _, ev := range r.Rooms.Join[room].Timeline.Events {
			if ev.ID == public.EventID {
				return true
			}
		}
		return false
	})
	if err := bob.SendReceipt(ctx, room, private.EventID, event.ReceiptTypeReadPrivate, nil); err != nil {
		t.Fatal(err)
	}
	if err := bob.SendReceipt(ctx, room, public.EventID, event.ReceiptTypeRead, nil); err != nil {
		t.Fatal(err)
	}
	as := testkit.NewSyncer(t, ctx, alice)
	as.Until(t, 20*time.Second, "bob's receipt, on a", func(r *mautrix.RespSync) bool {
		jr, ok := r.Rooms.Join[room]
		if !ok {
			return false
		}
		for _, ev := range jr.Ephemeral.Events {
			if ev.Type != event.EphemeralEventReceipt {
				continue
			}
			var c map[string]map[string]map[string]any
			if json.Unmarshal(ev.Content.VeryRaw, &c) != nil {
				continue
			}
			if _, ok := c[public.EventID.String()]["m.read"][bob.UserID.String()]; ok {
				return true
			}
		}
		return false
	})
	mu.Lock()
	defer mu.Unlock()
	for _, h := range heard {
		if strings.Contains(h, private.EventID.String()) {
			t.Fatalf("a private receipt left b: %s", h)
		}
	}
}
