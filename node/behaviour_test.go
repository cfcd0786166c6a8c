package node

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/parley-p2p/parley/internal/testkit"
)

// seenFromSync is what a client that starts from a room's /sync
// timeline sees of the room's history: the timeline's events, and, if it
// is limited, every event /messages pages back to from its prev_batch,
// oldest first. It fails the test if paging back repeats an event.
func seenFromSync(t testing.TB, ctx context.Context, c *mautrix.Client, room id.RoomID, tl mautrix.SyncTimeline) []*event.Event {
	t.Helper()
	var older []*event.Event
	if tl.Limited {
		if tl.PrevBatch == "" {
			t.Fatalf("%s: a limited timeline without prev_batch", c.UserID)
		}
		from := tl.PrevBatch
		for range 100 {
			resp, err := c.Messages(ctx, room, from, "", mautrix.DirectionBackward, nil, 7)
			if err != nil {
				t.Fatalf("%s /messages from %s: %v", c.UserID, from, err)
			}
			older = append(older, resp.Chunk...)
			if resp.End == "" {
				break
			}
			from = resp.End
		}
		slices.Reverse(older)
	}
	all := append(older, tl.Events...)
	seen := map[id.EventID]bool{}
	for _, ev := range all {
		if seen[ev.ID] {
			t.Fatalf("%s sees event %s (%s) twice", c.UserID, ev.ID, ev.Type)
		}
		seen[ev.ID] = true
	}
	return all
}

// checkHistory fails the test unless evs start at m.room.create and hold
// the n messages "history NN" in order.
func checkHistory(t testing.TB, evs []*event.Event, n int) {
	t.Helper()
	if len(evs) == 0 || evs[0].Type != event.StateCreate {
		var first string
		if len(evs) > 0 {
			first = evs[0].Type.Type
		}
		t.Fatalf("history starts with %q (of %d events), want m.room.create", first, len(evs))
	}
	var bodies []string
	for _, ev := range evs {
		if ev.Type == event.EventMessage {
			ev.Content.ParseRaw(ev.Type)
			bodies = append(bodies, ev.Content.AsMessage().Body)
		}
	}
	if len(bodies) != n {
		t.Fatalf("%d messages in the history, want %d: %q", len(bodies), n, bodies)
	}
	for i, b := range bodies {
		if want := fmt.Sprintf("history %02d", i); b != want {
			t.Fatalf("message %d is %q, want %q", i, b, want)
		}
	}
}

// TestJoinerSeesHistoryFromFirstSync: a user who joins a room from
// another node finds, in the first /sync that shows the room, either the
// room's history or a limited timeline whose prev_batch pages back
// through all of it to m.room.create, each event once, in order: what
// matrix-js-sdk needs to show earlier messages. The same holds for an
// initial sync, and after the joiner's node restarts.
func TestJoinerSeesHistoryFromFirstSync(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	a, b, alice, bob := twoNodes(t, ctx, testOpts{}, testOpts{dir: dir})
	room := privateRoom(t, ctx, alice)
	const n = 30
	for i := range n {
		if _, err := alice.SendText(ctx, room, fmt.Sprintf("history %02d", i)); err != nil {
			t.Fatal(err)
		}
	}
	bs := &testkit.Syncer{Client: bob}
	if _, err := bs.Next(ctx, 0); err != nil {
		t.Fatal(err)
	}
	joinThrough(t, ctx, room, alice, bob)

	t.Run("the incremental sync that shows the join", func(t *testing.T) {
		var tl mautrix.SyncTimeline
		bs.Until(t, 30*time.Second, "bob's room in rooms.join", func(r *mautrix.RespSync) bool {
			jr, ok := r.Rooms.Join[room]
			if ok {
				tl = jr.Timeline
			}
			return ok
		})
		// The history's keys reach bob's node just after his join (a
		// handover from alice's node): until then the earlier messages
		// page back still encrypted. Page again until they are not.
		var evs []*event.Event
		decrypted := testkit.Eventually(20*time.Second, func() bool {
			evs = seenFromSync(t, ctx, bob, room, tl)
			messages := 0
			for _, ev := range evs {
				if ev.Type == event.EventMessage {
					messages++
				}
			}
			return messages >= n
		})
		if !decrypted {
			t.Logf("the history was still not all decrypted after 20 s")
		}
		checkHistory(t, evs, n)
		for _, ev := range tl.Events {
			if ev.Type == event.StateMember && ev.GetStateKey() == bob.UserID.String() && ev.Unsigned.Membership != event.MembershipJoin {
				t.Errorf("bob's join in /sync has unsigned.membership %q, want join", ev.Unsigned.Membership)
			}
			if ev.Unsigned.Membership == "" {
				t.Errorf("%s %s in /sync has no unsigned.membership", ev.Type, ev.ID)
			}
		}
	})
	initial := func(t *testing.T, c *mautrix.Client) {
		resp, err := c.SyncRequest(ctx, 0, "", "", false, "")
		if err != nil {
			t.Fatal(err)
		}
		jr, ok := resp.Rooms.Join[room]
		if !ok {
			t.Fatal("the room is not in an initial sync's rooms.join")
		}
		checkHistory(t, seenFromSync(t, ctx, c, room, jr.Timeline), n)
	}
	t.Run("an initial sync", func(t *testing.T) { initial(t, bob) })
	t.Run("an initial sync after a restart", func(t *testing.T) {
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		b2 := newTestNode(t, testOpts{dir: dir, bootstrap: []*testNode{a}})
		c := b2.client()
		c.SetCredentials(bob.UserID, bob.AccessToken)
		initial(t, c)
	})
}

// oneNode starts a node with alice, bob and carol on it.
func oneNode(t *testing.T, ctx context.Context) (n *testNode, alice, bob, carol *mautrix.Client) {
	t.Helper()
	n = newTestNode(t, testOpts{regToken: "behaviour"})
	return n, n.register(ctx, "alice"), n.register(ctx, "bob"), n.register(ctx, "carol")
}

// wantHTTP fails the test unless err is a Matrix error with this status
// and errcode.
func wantHTTP(t testing.TB, what string, err error, status int, code string) {
	t.Helper()
	var he mautrix.HTTPError
	if !errors.As(err, &he) || he.RespError == nil || he.Response == nil {
		t.Fatalf("%s: got %v, want %d %s", what, err, status, code)
	}
	if he.Response.StatusCode != status || he.RespError.ErrCode != code {
		t.Fatalf("%s: got %d %s, want %d %s", what, he.Response.StatusCode, he.RespError.ErrCode, status, code)
	}
}

func TestKickAndUnbanNeedSomeoneToRemove(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, alice, bob, carol := oneNode(t, ctx)
	room := privateRoom(t, ctx, alice)
	_, err := alice.KickUser(ctx, room, &mautrix.ReqKickUser{UserID: carol.UserID})
	wantHTTP(t, "kicking a user who never came", err, 403, "M_FORBIDDEN")
	_, err = alice.UnbanUser(ctx, room, &mautrix.ReqUnbanUser{UserID: carol.UserID})
	wantHTTP(t, "unbanning a user who is not banned", err, 403, "M_FORBIDDEN")
	joinThrough(t, ctx, room, alice, bob)
	if _, err := alice.KickUser(ctx, room, &mautrix.ReqKickUser{UserID: bob.UserID, Reason: "out"}); err != nil {
		t.Fatalf("kicking a member: %v", err)
	}
	_, err = alice.KickUser(ctx, room, &mautrix.ReqKickUser{UserID: bob.UserID})
	wantHTTP(t, "kicking a user who was kicked", err, 403, "M_FORBIDDEN")
	if _, err := alice.BanUser(ctx, room, &mautrix.ReqBanUser{UserID: carol.UserID}); err != nil {
		t.Fatalf("banning a user who never came: %v", err)
	}
	if _, err := alice.UnbanUser(ctx, room, &mautrix.ReqUnbanUser{UserID: carol.UserID}); err != nil {
		t.Fatalf("unbanning a banned user: %v", err)
	}
	if _, err := alice.InviteUser(ctx, room, &mautrix.ReqInviteUser{UserID: carol.UserID}); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.KickUser(ctx, room, &mautrix.ReqKickUser{UserID: carol.UserID}); err != nil {
		t.Fatalf("kicking an invited user (revoking the invite): %v", err)
	}
}

func TestTransactionIDsAreScopedByRoomAndEndpoint(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n := newTestNode(t, testOpts{})
	alice := n.register(ctx, "alice")
	r1, r2 := privateRoom(t, ctx, alice), privateRoom(t, ctx, alice)
	send := func(room id.RoomID, body string) id.EventID {
		t.Helper()
		resp, err := alice.SendMessageEvent(ctx, room, event.EventMessage, map[string]string{"msgtype": "m.text", "body": body}, mautrix.ReqSendEvent{TransactionID: "same-txn"})
		if err != nil {
			t.Fatal(err)
		}
		return resp.EventID
	}
	first := send(r1, "one")
	if again := send(r1, "one, retried"); again != first {
		t.Errorf("a retry in the same room made %s, want the first event %s", again, first)
	}
	other := send(r2, "two")
	if other == first {
		t.Fatalf("the same txnId in another room returned the first room's event")
	}
	ev, err := alice.GetEvent(ctx, r2, other)
	if err != nil || ev.RoomID != r2 {
		t.Fatalf("the event in the second room: %v, %v", ev, err)
	}
	red, err := alice.RedactEvent(ctx, r1, first, mautrix.ReqRedact{TxnID: "same-txn"})
	if err != nil {
		t.Fatal(err)
	}
	if red.EventID == first {
		t.Fatal("a redaction with a message's txnId returned the message")
	}
	red2, err := alice.RedactEvent(ctx, r1, first, mautrix.ReqRedact{TxnID: "same-txn"})
	if err != nil || red2.EventID != red.EventID {
		t.Fatalf("a retried redaction: %v, %v; want %s", red2, err, red.EventID)
	}
}

func TestSettingStateToWhatItIsReturnsTheSameEvent(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, alice, bob, _ := oneNode(t, ctx)
	room := privateRoom(t, ctx, alice)
	topic := func(c *mautrix.Client, s string) id.EventID {
		t.Helper()
		resp, err := c.SendStateEvent(ctx, room, event.StateTopic, "", map[string]string{"topic": s})
		if err != nil {
			t.Fatal(err)
		}
		return resp.EventID
	}
	first := topic(alice, "tea")
	if again := topic(alice, "tea"); again != first {
		t.Errorf("the same topic again made %s, want %s", again, first)
	}
	changed := topic(alice, "coffee")
	if changed == first {
		t.Fatal("a new topic returned the old event")
	}
	if back := topic(alice, "tea"); back == first || back == changed {
		t.Error("the first topic set again, after another, returned an old event")
	}
	// Another sender with the same content makes an event of their own.
	joinThrough(t, ctx, room, alice, bob)
	var pl event.PowerLevelsEventContent
	if err := alice.StateEvent(ctx, room, event.StatePowerLevels, "", &pl); err != nil {
		t.Fatal(err)
	}
	pl.SetUserLevel(bob.UserID, 100)
	if _, err := alice.SendStateEvent(ctx, room, event.StatePowerLevels, "", &pl); err != nil {
		t.Fatal(err)
	}
	cur := topic(alice, "milk")
	if got := topic(bob, "milk"); got == cur {
		t.Error("bob setting alice's topic again returned alice's event")
	}
	resp, err := alice.SyncRequest(ctx, 0, "", "", false, "")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, ev := range resp.Rooms.Join[room].Timeline.Events {
		if ev.Type == event.StateTopic {
			n++
		}
	}
	if n != 5 {
		t.Errorf("%d topic events in the timeline, want 5 (tea, coffee, tea, milk, milk)", n)
	}
}

// setVisibility has c set the room's history visibility.
func setVisibility(t testing.TB, ctx context.Context, c *mautrix.Client, room id.RoomID, v string) {
	t.Helper()
	if _, err := c.SendStateEvent(ctx, room, event.StateHistoryVisibility, "", map[string]string{"history_visibility": v}); err != nil {
		t.Fatal(err)
	}
}

func sendText(t testing.TB, ctx context.Context, c *mautrix.Client, room id.RoomID, body string) id.EventID {
	t.Helper()
	resp, err := c.SendText(ctx, room, body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.EventID
}

func TestEventHonoursHistoryVisibility(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, alice, bob, carol := oneNode(t, ctx)

	room := privateRoom(t, ctx, alice)
	setVisibility(t, ctx, alice, room, "joined")
	before := sendText(t, ctx, alice, room, "before bob")
	joinThrough(t, ctx, room, alice, bob)
	after := sendText(t, ctx, alice, room, "after bob")

	_, err := bob.GetEvent(ctx, room, before)
	wantHTTP(t, "bob reads a message from before his join in a 'joined' room", err, 404, "M_NOT_FOUND")
	ev, err := bob.GetEvent(ctx, room, after)
	if err != nil {
		t.Fatalf("bob reads a message from after his join: %v", err)
	}
	if ev.Unsigned.Membership != event.MembershipJoin {
		t.Errorf("unsigned.membership of a message after bob's join = %q, want join", ev.Unsigned.Membership)
	}
	msgs, err := bob.Messages(ctx, room, "", "", mautrix.DirectionBackward, nil, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range msgs.Chunk {
		if ev.ID == before {
			t.Error("bob's /messages shows a message from before his join")
		}
		if ev.Unsigned.Membership == "" {
			t.Errorf("/messages event %s (%s) has no unsigned.membership", ev.ID, ev.Type)
		}
	}
	if _, err := carol.GetEvent(ctx, room, after); err == nil {
		t.Error("carol, never in the room, reads its message")
	} else {
		wantHTTP(t, "carol reads a message of a room she is not in", err, 404, "M_NOT_FOUND")
	}
	ev, err = alice.GetEvent(ctx, room, before)
	if err != nil || ev.Unsigned.Membership != event.MembershipJoin {
		t.Fatalf("alice reads her own message: %v, %v", ev, err)
	}

	t.Run("shared history is bob's once he joined", func(t *testing.T) {
		room := privateRoom(t, ctx, alice)
		old := sendText(t, ctx, alice, room, "before bob")
		joinThrough(t, ctx, room, alice, bob)
		ev, err := bob.GetEvent(ctx, room, old)
		if err != nil {
			t.Fatal(err)
		}
		if ev.Unsigned.Membership != event.MembershipLeave {
			t.Errorf("unsigned.membership from before bob's invite = %q, want leave", ev.Unsigned.Membership)
		}
	})
	t.Run("a world_readable room is readable by a local user who is not in it", func(t *testing.T) {
		room := privateRoom(t, ctx, alice)
		hidden := sendText(t, ctx, alice, room, "while shared")
		setVisibility(t, ctx, alice, room, "world_readable")
		open := sendText(t, ctx, alice, room, "while world readable")
		ev, err := carol.GetEvent(ctx, room, open)
		if err != nil {
			t.Fatalf("carol reads a world-readable message: %v", err)
		}
		if ev.Unsigned.Membership != event.MembershipLeave {
			t.Errorf("unsigned.membership of a non-member = %q, want leave", ev.Unsigned.Membership)
		}
		_, err = carol.GetEvent(ctx, room, hidden)
		wantHTTP(t, "carol reads a message sent before the room was world readable", err, 404, "M_NOT_FOUND")
		page, err := carol.Messages(ctx, room, "", "", mautrix.DirectionBackward, nil, 100)
		if err != nil {
			t.Fatalf("carol pages a world-readable room: %v", err)
		}
		if got := fmt.Sprint(bodies(page.Chunk)); got != "[while world readable]" {
			t.Errorf("carol's /messages shows %s, want only what was sent while world readable", got)
		}
		_, err = carol.GetEvent(ctx, room, "$nosuchevent")
		wantHTTP(t, "carol reads an event that does not exist", err, 404, "M_NOT_FOUND")
	})
}

func TestForgetRoom(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, alice, bob, _ := oneNode(t, ctx)
	room := privateRoom(t, ctx, alice)
	joinThrough(t, ctx, room, alice, bob)
	sendText(t, ctx, alice, room, "hello")

	_, err := bob.ForgetRoom(ctx, room)
	wantHTTP(t, "forgetting a room bob is still in", err, 400, "M_INVALID_PARAM")
	_, err = bob.ForgetRoom(ctx, "!unknown:nowhere")
	wantHTTP(t, "forgetting a room bob was never in", err, 404, "M_NOT_FOUND")

	if _, err := bob.LeaveRoom(ctx, room); err != nil {
		t.Fatal(err)
	}
	includeLeave := `{"room":{"include_leave":true}}`
	left := func() bool {
		resp, err := bob.SyncRequest(ctx, 0, "", includeLeave, false, "")
		if err != nil {
			t.Fatal(err)
		}
		_, ok := resp.Rooms.Leave[room]
		return ok
	}
	if !left() {
		t.Fatal("the room bob left is not in his initial sync's rooms.leave")
	}
	if _, err := bob.Messages(ctx, room, "", "", mautrix.DirectionBackward, nil, 10); err != nil {
		t.Fatalf("bob reads the room he left: %v", err)
	}
	bs := &testkit.Syncer{Client: bob}
	if _, err := bs.Next(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.ForgetRoom(ctx, room); err != nil {
		t.Fatalf("forgetting a room bob left: %v", err)
	}
	if left() {
		t.Error("the room bob forgot is still in his sync's rooms.leave")
	}
	resp, err := bs.Next(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := resp.Rooms.Leave[room]; ok {
		t.Error("an incremental sync after forgetting shows the room")
	}
	_, err = bob.Messages(ctx, room, "", "", mautrix.DirectionBackward, nil, 10)
	wantHTTP(t, "paginating a forgotten room", err, 403, "M_FORBIDDEN")
	if _, err := bob.ForgetRoom(ctx, room); err != nil {
		t.Errorf("forgetting a room twice: %v", err)
	}

	// Joining again undoes it.
	joinThrough(t, ctx, room, alice, bob)
	if _, err := bob.Messages(ctx, room, "", "", mautrix.DirectionBackward, nil, 10); err != nil {
		t.Fatalf("bob reads the room he forgot and joined again: %v", err)
	}
}

func TestTimelineLimitZero(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, alice, bob, _ := oneNode(t, ctx)
	joined, gone := privateRoom(t, ctx, alice), privateRoom(t, ctx, alice)
	joinThrough(t, ctx, joined, alice, bob)
	joinThrough(t, ctx, gone, alice, bob)
	sendText(t, ctx, alice, gone, "before bob left")
	if _, err := bob.LeaveRoom(ctx, gone); err != nil {
		t.Fatal(err)
	}
	last := sendText(t, ctx, alice, joined, "latest")
	resp, err := bob.SyncRequest(ctx, 0, "", `{"room":{"include_leave":true,"timeline":{"limit":0}}}`, false, "")
	if err != nil {
		t.Fatal(err)
	}
	jr, ok := resp.Rooms.Join[joined]
	if !ok {
		t.Fatal("the joined room is not in the sync")
	}
	if len(jr.Timeline.Events) != 0 || !jr.Timeline.Limited || jr.Timeline.PrevBatch == "" {
		t.Errorf("joined room: %d timeline events, limited %v, prev_batch %q; want none, limited, a prev_batch", len(jr.Timeline.Events), jr.Timeline.Limited, jr.Timeline.PrevBatch)
	}
	if page, err := bob.Messages(ctx, joined, jr.Timeline.PrevBatch, "", mautrix.DirectionBackward, nil, 1); err != nil || len(page.Chunk) != 1 || page.Chunk[0].ID != last {
		t.Errorf("paging back from the empty timeline's prev_batch: %v, %v; want the latest message first", page, err)
	}
	lr, ok := resp.Rooms.Leave[gone]
	if !ok {
		t.Fatal("the left room is not in the sync")
	}
	if len(lr.Timeline.Events) != 0 {
		t.Errorf("left room: %d timeline events with a limit of 0", len(lr.Timeline.Events))
	}
	resp, err = bob.SyncRequest(ctx, 0, "", `{"room":{"include_leave":true}}`, false, "")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(resp.Rooms.Join[joined].Timeline.Events); n == 0 {
		t.Error("without a limit, the joined room's timeline is empty")
	}
}
