package node

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/parley-p2p/parley/internal/testkit"
	"github.com/parley-p2p/parley/node/peers"
	"github.com/parley-p2p/parley/p2p"
	"github.com/parley-p2p/parley/rooms"
)

// knockRoom has c create a room whose join rule is "knock".
func knockRoom(t testing.TB, ctx context.Context, c *mautrix.Client) id.RoomID {
	t.Helper()
	room := privateRoom(t, ctx, c)
	if _, err := c.SendStateEvent(ctx, room, event.StateJoinRules, "", map[string]string{"join_rule": "knock"}); err != nil {
		t.Fatalf("set the join rule to knock: %v", err)
	}
	return room
}

// knockOn has c knock on room through server.
func knockOn(t testing.TB, ctx context.Context, c *mautrix.Client, room id.RoomID, server, reason string) {
	t.Helper()
	resp, err := c.KnockRoom(ctx, room.String(), &mautrix.ReqKnockRoom{Via: []string{server}, Reason: reason})
	if err != nil {
		t.Fatalf("%s knocks on %s: %v", c.UserID, room, err)
	}
	if resp.RoomID != room {
		t.Fatalf("knock answered room %s, want %s", resp.RoomID, room)
	}
}

// memberOf is the membership a client reads for user in room.
func memberOf(ctx context.Context, c *mautrix.Client, room id.RoomID, user id.UserID) string {
	var m event.MemberEventContent
	if err := c.StateEvent(ctx, room, event.StateMember, user.String(), &m); err != nil {
		return ""
	}
	return string(m.Membership)
}

// TestKnockSeenInvitedJoined: bob, on a node not in alice's knock room,
// knocks through her server; his /sync shows the room under knock with
// its stripped state and his knock; alice reads the knock (and its
// reason) in the room's state; she invites him, which turns his knock
// into an invite, and he joins and reads the room.
func TestKnockSeenInvitedJoined(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a, b, alice, bob := twoNodes(t, ctx, testOpts{}, testOpts{})
	room := knockRoom(t, ctx, alice)
	if _, err := alice.SendStateEvent(ctx, room, event.StateRoomName, "", map[string]string{"name": "The Knock Room"}); err != nil {
		t.Fatal(err)
	}
	sendText(t, ctx, alice, room, "before the knock")
	bobSync := &testkit.Syncer{Client: bob}
	bobSync.Until(t, 10*time.Second, "bob's first sync", func(*mautrix.RespSync) bool { return true })

	knockOn(t, ctx, bob, room, a.ServerName(), "let me in")

	bobSync.Until(t, 20*time.Second, "the knock in bob's /sync", func(r *mautrix.RespSync) bool {
		kr, ok := r.Rooms.Knock[room]
		if !ok {
			return false
		}
		var knock, rule, name bool
		for _, ev := range kr.State.Events {
			_ = ev.Content.ParseRaw(ev.Type)
			switch ev.Type {
			case event.StateMember:
				knock = ev.GetStateKey() == bob.UserID.String() && ev.Content.AsMember().Membership == event.MembershipKnock
			case event.StateJoinRules:
				rule = ev.Content.AsJoinRules().JoinRule == event.JoinRuleKnock
			case event.StateRoomName:
				name = ev.Content.AsRoomName().Name == "The Knock Room"
			}
		}
		if !knock || !rule || !name {
			t.Fatalf("knock_state shows bob's knock %v, the join rule %v, the name %v; want all", knock, rule, name)
		}
		return true
	})
	testkit.WaitFor(t, 20*time.Second, "alice to read bob's knock", func() bool {
		return memberOf(ctx, alice, room, bob.UserID) == "knock"
	})
	var m event.MemberEventContent
	if err := alice.StateEvent(ctx, room, event.StateMember, bob.UserID.String(), &m); err != nil || m.Reason != "let me in" {
		t.Errorf("alice reads bob's knock with reason %q (%v), want %q", m.Reason, err, "let me in")
	}
	if b.getRoom(room.String()) != nil {
		t.Error("bob's node holds the room after a knock alone")
	}

	if _, err := alice.InviteUser(ctx, room, &mautrix.ReqInviteUser{UserID: bob.UserID}); err != nil {
		t.Fatalf("alice invites the knocking bob: %v", err)
	}
	bobSync.Until(t, 20*time.Second, "bob's knock to become an invite", func(r *mautrix.RespSync) bool {
		if _, still := r.Rooms.Knock[room]; still {
			t.Fatal("the room still shows under knock once bob is invited")
		}
		_, ok := r.Rooms.Invite[room]
		return ok
	})
	if _, err := bob.JoinRoomByID(ctx, room); err != nil {
		t.Fatalf("bob joins after the invite: %v", err)
	}
	sendText(t, ctx, alice, room, "welcome")
	testkit.WaitFor(t, 30*time.Second, "bob to read the room", func() bool {
		got, waiting := readTimeline(t, ctx, bob, room)
		return waiting == 0 && slices.Contains(got, "welcome")
	})
	resp, err := bob.SyncRequest(ctx, 0, "", "", false, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := resp.Rooms.Knock[room]; ok {
		t.Error("an initial sync after the join still shows the knock")
	}
	if _, ok := resp.Rooms.Join[room]; !ok {
		t.Error("an initial sync after the join does not show the room joined")
	}
}

// TestKnockDenied: alice kicks bob's knock; his node hears of it, and his
// /sync moves the room from knock to leave, with alice's kick.
func TestKnockDenied(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, _, alice, bob := twoNodes(t, ctx, testOpts{}, testOpts{})
	room := knockRoom(t, ctx, alice)
	bobSync := &testkit.Syncer{Client: bob}
	bobSync.Until(t, 10*time.Second, "bob's first sync", func(*mautrix.RespSync) bool { return true })
	knockOn(t, ctx, bob, room, a.ServerName(), "")
	bobSync.Until(t, 20*time.Second, "the knock in bob's /sync", func(r *mautrix.RespSync) bool {
		_, ok := r.Rooms.Knock[room]
		return ok
	})
	testkit.WaitFor(t, 20*time.Second, "bob's knock to reach a", func() bool {
		return a.membership(a.getRoom(room.String()), bob.UserID.String()) == "knock"
	})
	if _, err := alice.KickUser(ctx, room, &mautrix.ReqKickUser{UserID: bob.UserID, Reason: "not today"}); err != nil {
		t.Fatalf("alice refuses the knock: %v", err)
	}
	bobSync.Until(t, 20*time.Second, "the refusal in bob's /sync", func(r *mautrix.RespSync) bool {
		lr, ok := r.Rooms.Leave[room]
		if !ok {
			return false
		}
		for _, ev := range lr.Timeline.Events {
			_ = ev.Content.ParseRaw(ev.Type)
			if ev.Type == event.StateMember && ev.Sender == alice.UserID && ev.Content.AsMember().Membership == event.MembershipLeave {
				return true
			}
		}
		t.Fatalf("the left room's timeline does not hold alice's kick: %+v", lr.Timeline.Events)
		return false
	})
	resp, err := bob.SyncRequest(ctx, 0, "", "", false, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := resp.Rooms.Knock[room]; ok {
		t.Error("an initial sync after the refusal still shows the knock")
	}
}

// TestKnockWithdrawn: bob leaves a room he knocked on; the leave goes
// through a resident, so alice reads him left, and his /sync shows the
// room left; he may knock again.
func TestKnockWithdrawn(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, _, alice, bob := twoNodes(t, ctx, testOpts{}, testOpts{})
	room := knockRoom(t, ctx, alice)
	bobSync := &testkit.Syncer{Client: bob}
	bobSync.Until(t, 10*time.Second, "bob's first sync", func(*mautrix.RespSync) bool { return true })
	knockOn(t, ctx, bob, room, a.ServerName(), "")
	bobSync.Until(t, 20*time.Second, "the knock in bob's /sync", func(r *mautrix.RespSync) bool {
		_, ok := r.Rooms.Knock[room]
		return ok
	})
	if _, err := bob.LeaveRoom(ctx, room); err != nil {
		t.Fatalf("bob withdraws his knock: %v", err)
	}
	testkit.WaitFor(t, 20*time.Second, "alice to read bob's withdrawal", func() bool {
		return memberOf(ctx, alice, room, bob.UserID) == "leave"
	})
	bobSync.Until(t, 20*time.Second, "the withdrawal in bob's /sync", func(r *mautrix.RespSync) bool {
		_, ok := r.Rooms.Leave[room]
		return ok
	})
	knockOn(t, ctx, bob, room, a.ServerName(), "again")
	testkit.WaitFor(t, 20*time.Second, "alice to read bob's second knock", func() bool {
		return memberOf(ctx, alice, room, bob.UserID) == "knock"
	})
}

// TestKnockRefusals: knocking where the join rule does not allow it
// (invite-only, public) is 403, word for word the answer for a room that
// does not exist; a room the node does not know, with no server named,
// is 404; a bad server name 400. None leaves a knock in /sync.
func TestKnockRefusals(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, _, alice, bob := twoNodes(t, ctx, testOpts{}, testOpts{})
	private := privateRoom(t, ctx, alice)
	public := publicRoom(t, ctx, alice)
	via := &mautrix.ReqKnockRoom{Via: []string{a.ServerName()}}

	_, errPrivate := bob.KnockRoom(ctx, private.String(), via)
	wantHTTP(t, "knock on an invite-only room", errPrivate, 403, "M_FORBIDDEN")
	_, err := bob.KnockRoom(ctx, public.String(), via)
	wantHTTP(t, "knock on a public room", err, 403, "M_FORBIDDEN")
	_, errUnknown := bob.KnockRoom(ctx, "!NoSuchRoomOnAnyNode0000000000000000000000", via)
	wantHTTP(t, "knock on a room that does not exist", errUnknown, 403, "M_FORBIDDEN")
	if p, u := respError(errPrivate), respError(errUnknown); p != u {
		t.Errorf("the refusals differ: invite-only room %q, no such room %q", p, u)
	}
	_, err = bob.KnockRoom(ctx, private.String(), nil)
	wantHTTP(t, "knock naming no server", err, 404, "M_NOT_FOUND")
	_, err = bob.KnockRoom(ctx, private.String(), &mautrix.ReqKnockRoom{Via: []string{"example.org"}})
	wantHTTP(t, "knock through a bad server name", err, 400, "M_INVALID_PARAM")
	if m := a.membership(a.getRoom(private.String()), bob.UserID.String()); m != "" {
		t.Errorf("a refused knock left membership %q", m)
	}
	resp, err := bob.SyncRequest(ctx, 0, "", "", false, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Rooms.Knock) != 0 {
		t.Errorf("refused knocks show in /sync: %v", resp.Rooms.Knock)
	}
}

// TestKnockOnARoomOfTheSameNode: bob knocks on a room his own node
// follows (alice, on it, is in the room): the knock is sent there and
// then, needs no server named, and shows under knock in his /sync until
// alice invites him.
func TestKnockOnARoomOfTheSameNode(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, alice, bob, _ := oneNode(t, ctx)
	room := knockRoom(t, ctx, alice)
	bobSync := &testkit.Syncer{Client: bob}
	bobSync.Until(t, 10*time.Second, "bob's first sync", func(*mautrix.RespSync) bool { return true })
	if _, err := bob.KnockRoom(ctx, room.String(), &mautrix.ReqKnockRoom{Reason: "hi"}); err != nil {
		t.Fatalf("bob knocks on a room of his node: %v", err)
	}
	bobSync.Until(t, 20*time.Second, "the knock in bob's /sync", func(r *mautrix.RespSync) bool {
		kr, ok := r.Rooms.Knock[room]
		if !ok {
			return false
		}
		for _, ev := range kr.State.Events {
			_ = ev.Content.ParseRaw(ev.Type)
			if ev.Type == event.StateMember && ev.GetStateKey() == bob.UserID.String() && ev.Content.AsMember().Membership == event.MembershipKnock {
				return true
			}
		}
		t.Fatalf("knock_state lacks bob's knock: %+v", kr.State.Events)
		return false
	})
	if m := memberOf(ctx, alice, room, bob.UserID); m != "knock" {
		t.Fatalf("alice reads bob as %q, want knock", m)
	}
	_, err := bob.KnockRoom(ctx, room.String(), nil)
	if err != nil {
		t.Errorf("knocking again while knocking: %v", err)
	}
	if _, err := alice.InviteUser(ctx, room, &mautrix.ReqInviteUser{UserID: bob.UserID}); err != nil {
		t.Fatal(err)
	}
	bobSync.Until(t, 20*time.Second, "the invite in bob's /sync", func(r *mautrix.RespSync) bool {
		_, ok := r.Rooms.Invite[room]
		return ok
	})
	_, err = bob.KnockRoom(ctx, room.String(), nil)
	wantHTTP(t, "knocking once invited", err, 403, "M_FORBIDDEN")
}

// TestKnockMethodsRefuseHostilePeers: a stranger's node asking the
// knocking methods directly gets a template only for its own user of a
// room that allows knocking, the same refusal for an invite-only room as
// for one that does not exist, and cannot admit anything but its own
// user's knock; nor can it end bob's knock with a refusal it signed while
// the room still shows him knocking.
func TestKnockMethodsRefuseHostilePeers(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, b, alice, bob := twoNodes(t, ctx, testOpts{}, testOpts{})
	knock := knockRoom(t, ctx, alice)
	private := privateRoom(t, ctx, alice)
	evil := newStranger(t, a)
	ask := func(to peer.ID, method string, req any) (*peers.MakeJoinResp, error) {
		body, _ := json.Marshal(req)
		out, err := evil.host.Request(ctx, to, method, body)
		if err != nil {
			return nil, err
		}
		var resp peers.MakeJoinResp
		return &resp, json.Unmarshal(out, &resp)
	}
	refusal := func(what string, err error) string {
		t.Helper()
		var re *p2p.RemoteError
		if !errors.As(err, &re) || re.Code != "M_FORBIDDEN" {
			t.Fatalf("%s: %v, want M_FORBIDDEN", what, err)
		}
		return re.Message
	}

	_, err := ask(a.PeerID(), peers.MethodMakeKnock, peers.MakeJoinReq{RoomID: knock.String(), UserID: bob.UserID.String()})
	refusal("make_knock for another server's user", err)
	for _, method := range []string{peers.MethodMakeKnock, peers.MethodMakeJoin} {
		_, errPrivate := ask(a.PeerID(), method, peers.MakeJoinReq{RoomID: private.String(), UserID: evil.user})
		_, errUnknown := ask(a.PeerID(), method, peers.MakeJoinReq{RoomID: "!NoSuchRoom000000000000000000000000000000", UserID: evil.user})
		if p, u := refusal(method+" of an invite-only room", errPrivate), refusal(method+" of no room", errUnknown); p != u {
			t.Errorf("%s: the refusals differ: %q and %q", method, p, u)
		}
	}
	_, err = ask(a.PeerID(), peers.MethodMakeLeave, peers.MakeJoinReq{RoomID: knock.String(), UserID: evil.user})
	refusal("make_leave by a user who is not knocking", err)

	tmpl, err := ask(a.PeerID(), peers.MethodMakeKnock, peers.MakeJoinReq{RoomID: knock.String(), UserID: evil.user})
	if err != nil {
		t.Fatalf("make_knock of a knock room for the stranger's own user: %v", err)
	}
	build := func(sender, membership string) *rooms.Event {
		c, _ := rooms.MarshalCanonical(map[string]string{"membership": membership})
		ev, err := rooms.Build(rooms.ProtoEvent{
			RoomID: knock.String(), Sender: sender, Type: "m.room.member", StateKey: &sender, Content: c,
			PrevEvents: tmpl.Event.PrevEvents, AuthEvents: tmpl.Event.AuthEvents, Depth: tmpl.Event.Depth, OriginServerTS: nowMS(),
		}, tmpl.RoomVersion, evil.server, evil.key)
		if err != nil {
			t.Fatal(err)
		}
		return ev
	}
	send := func(ev *rooms.Event) error {
		_, err := ask(a.PeerID(), peers.MethodSendKnock, peers.SendJoinReq{RoomID: knock.String(), Event: ev.JSON()})
		return err
	}
	if err := send(build(evil.user, "join")); err == nil {
		t.Error("send_knock admitted a join")
	}
	if m := a.membership(a.getRoom(knock.String()), evil.user); m != "" {
		t.Fatalf("refused sends left the stranger's user %q", m)
	}
	if err := send(build(evil.user, "knock")); err != nil {
		t.Fatalf("send_knock of the stranger's own knock: %v", err)
	}
	if m := a.membership(a.getRoom(knock.String()), evil.user); m != "knock" {
		t.Fatalf("the stranger's user is %q after its knock, want knock", m)
	}

	// bob knocks; the stranger "refuses" it with a kick it signed itself.
	knockOn(t, ctx, bob, knock, a.ServerName(), "")
	kicked := bob.UserID.String()
	c, _ := rooms.MarshalCanonical(map[string]string{"membership": "leave"})
	kick, err := rooms.Build(rooms.ProtoEvent{
		RoomID: knock.String(), Sender: evil.user, Type: "m.room.member", StateKey: &kicked, Content: c,
		PrevEvents: tmpl.Event.PrevEvents, AuthEvents: tmpl.Event.AuthEvents, Depth: tmpl.Event.Depth, OriginServerTS: nowMS(),
	}, tmpl.RoomVersion, evil.server, evil.key)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(peers.KnockDeniedReq{RoomVersion: tmpl.RoomVersion, Event: kick.JSON()})
	_, err = evil.host.Request(ctx, b.PeerID(), peers.MethodKnockDenied, body)
	refusal("a refusal the room does not show", err)
	resp, err := bob.SyncRequest(ctx, 0, "", "", false, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := resp.Rooms.Knock[knock]; !ok {
		t.Error("a forged refusal ended bob's knock")
	}
}

// TestKnockRefusedByAMemberOfAnotherNode: bob knocks through carol's node;
// alice, on a third, refuses the knock; bob's node, told by alice's,
// checks with carol's (which the refusal reaches by gossip) and moves the
// room to leave.
func TestKnockRefusedByAMemberOfAnotherNode(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a := newTestNode(t, testOpts{})
	b, c := newTestNode(t, testOpts{bootstrap: []*testNode{a}}), newTestNode(t, testOpts{bootstrap: []*testNode{a}})
	alice, bob, carol := a.register(ctx, "alice"), b.register(ctx, "bob"), c.register(ctx, "carol")
	room := knockRoom(t, ctx, alice)
	joinThrough(t, ctx, room, alice, carol)
	testkit.WaitFor(t, 20*time.Second, "carol's join to reach a", func() bool {
		return a.membership(a.getRoom(room.String()), carol.UserID.String()) == "join"
	})
	bobSync := &testkit.Syncer{Client: bob}
	bobSync.Until(t, 10*time.Second, "bob's first sync", func(*mautrix.RespSync) bool { return true })
	knockOn(t, ctx, bob, room, c.ServerName(), "")
	testkit.WaitFor(t, 20*time.Second, "bob's knock to reach a", func() bool {
		return a.membership(a.getRoom(room.String()), bob.UserID.String()) == "knock"
	})
	if _, err := alice.KickUser(ctx, room, &mautrix.ReqKickUser{UserID: bob.UserID}); err != nil {
		t.Fatalf("alice refuses the knock: %v", err)
	}
	bobSync.Until(t, 30*time.Second, "the refusal in bob's /sync", func(r *mautrix.RespSync) bool {
		_, ok := r.Rooms.Leave[room]
		return ok
	})
}
