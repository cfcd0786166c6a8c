package node

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/parley-p2p/parley/internal/testkit"
	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/rooms"
)

// pduOf is the event as it is in n's DAG (what travels between nodes).
func pduOf(t testing.TB, n *testNode, eventID id.EventID) *rooms.Event {
	t.Helper()
	i, err := n.dag.Event(eventID.String())
	if err != nil {
		t.Fatalf("%s has no event %s: %v", n.ServerName()[:8], eventID, err)
	}
	return i.Event
}

// sendAll has c send bodies and returns their event IDs.
func sendAll(t testing.TB, ctx context.Context, c *mautrix.Client, room id.RoomID, bodies ...string) []id.EventID {
	t.Helper()
	var ids []id.EventID
	for _, b := range bodies {
		resp, err := c.SendText(ctx, room, b)
		if err != nil {
			t.Fatalf("%s sends %q: %v", c.UserID, b, err)
		}
		ids = append(ids, resp.EventID)
	}
	return ids
}

// TestRoomContentIsCiphertextInTheDAG: what a user sends (a message, the
// room's name and topic, a display name) is ciphertext in the events
// every member node stores and relays, while each member's client reads
// it as it was sent.
func TestRoomContentIsCiphertextInTheDAG(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, b, alice, bob, room := twoMembers(t, ctx, testOpts{}, testOpts{})
	const body, name, topic, display = "canary-body-q7", "canary-name-q7", "canary-topic-q7", "canary-display-q7"
	ids := sendAll(t, ctx, alice, room, body)
	nameResp, err := alice.SendStateEvent(ctx, room, event.StateRoomName, "", map[string]string{"name": name})
	if err != nil {
		t.Fatal(err)
	}
	topicResp, err := alice.SendStateEvent(ctx, room, event.StateTopic, "", map[string]string{"topic": topic})
	if err != nil {
		t.Fatal(err)
	}
	if err := bob.SetDisplayName(ctx, display); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 30*time.Second, "bob to read alice's message and the room's name", func() bool {
		got := readAll(t, ctx, bob, room)
		if len(got) == 0 || got[len(got)-1] != body {
			return false
		}
		var n struct {
			Name string `json:"name"`
		}
		return bob.StateEvent(ctx, room, event.StateRoomName, "", &n) == nil && n.Name == name
	})
	for _, n := range []*testNode{a, b} {
		for _, eid := range []id.EventID{ids[0], nameResp.EventID, topicResp.EventID} {
			testkit.WaitFor(t, 20*time.Second, "the event to reach "+n.ServerName()[:8], func() bool {
				_, err := n.dag.Event(eid.String())
				return err == nil
			})
			pdu := pduOf(t, n, eid)
			for _, canary := range []string{body, name, topic} {
				if bytes.Contains(pdu.JSON(), []byte(canary)) {
					t.Fatalf("%s holds %q in clear in event %s (%s)", n.ServerName()[:8], canary, eid, pdu.Type())
				}
			}
		}
	}
	if pduOf(t, a, ids[0]).Type() != "m.room.encrypted" {
		t.Fatalf("a message travels as %s", pduOf(t, a, ids[0]).Type())
	}
	testkit.WaitFor(t, 20*time.Second, "bob's display name to reach alice", func() bool {
		m, err := alice.JoinedMembers(ctx, room)
		if err != nil {
			return false
		}
		return m.Joined[bob.UserID].DisplayName == display
	})
	for _, n := range []*testNode{a, b} {
		for _, r := range n.dag.Rooms() {
			st := r.Head().State
			for k, eid := range st {
				if k.Type != "m.room.member" {
					continue
				}
				pdu := pduOf(t, n, id.EventID(eid))
				if bytes.Contains(pdu.JSON(), []byte(display)) {
					t.Fatalf("%s holds the display name in clear in %s", n.ServerName()[:8], eid)
				}
			}
		}
	}
}

// TestABannedNodeDecryptsNothingAfterTheBan is the test 2: three
// members; carol is banned while her node keeps running and subscribed.
// Alice and bob keep chatting; carol's node cannot decrypt any of it,
// even given the events.
func TestABannedNodeDecryptsNothingAfterTheBan(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ns, cs, room := threeNodeRoom(t, ctx)
	a, c := ns[0], ns[2]
	alice, bob, carol := cs[0], cs[1], cs[2]
	before := sendAll(t, ctx, alice, room, "before the ban")
	testkit.WaitFor(t, 30*time.Second, "carol to read the message before the ban", func() bool {
		got := readAll(t, ctx, carol, room)
		return len(got) == 1 && got[0] == "before the ban"
	})
	if _, err := alice.BanUser(ctx, room, &mautrix.ReqBanUser{UserID: carol.UserID}); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 30*time.Second, "bob to see the ban", func() bool {
		var m event.MemberEventContent
		return bob.StateEvent(ctx, room, event.StateMember, carol.UserID.String(), &m) == nil && m.Membership == event.MembershipBan
	})
	var after []id.EventID
	for i := range 5 {
		after = append(after, sendAll(t, ctx, alice, room, fmt.Sprintf("alice after the ban %d", i))...)
		after = append(after, sendAll(t, ctx, bob, room, fmt.Sprintf("bob after the ban %d", i))...)
	}
	var ga, gb []string
	defer func() {
		if t.Failed() {
			t.Logf("alice reads %q\nbob reads %q", ga, gb)
		}
	}()
	testkit.WaitFor(t, 30*time.Second, "alice and bob to read each other", func() bool {
		ga, gb = readAll(t, ctx, alice, room), readAll(t, ctx, bob, room)
		// Alice and bob send at once, so each may place the other's
		// messages differently: what counts is that both read all.
		return len(ga) == 11 && len(gb) == 11 && slices.Contains(ga, "bob after the ban 4") && slices.Contains(gb, "alice after the ban 4")
	})
	// Carol's node is handed every event sent after the ban: it opens
	// none of them.
	for _, eid := range after {
		if decryptAt(t, c, room, pduOf(t, a, eid)) {
			t.Errorf("carol's node decrypted %s (%s) after her ban", eid, pduOf(t, a, eid).Sender())
		}
	}
	if !decryptAt(t, c, room, pduOf(t, a, before[0])) {
		t.Fatal("carol's node cannot decrypt a message from before her ban: the check above proves nothing")
	}
	for _, body := range readAll(t, ctx, carol, room) {
		if strings.Contains(body, "after the ban") {
			t.Fatalf("carol reads %q", body)
		}
	}
}

// TestAnOfflineMemberCatchesUpThroughRotations is the test 3:
// bob's node is down while alice's rotates her session (a ban, then more
// than 100 messages); back up, bob's node catches up and decrypts every
// message, with none left waiting for a key.
func TestAnOfflineMemberCatchesUpThroughRotations(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ns, cs, room := threeNodeRoom(t, ctx)
	a, b := ns[0], ns[1]
	alice, bob := cs[0], cs[1]
	sendAll(t, ctx, alice, room, "before bob went away")
	testkit.WaitFor(t, 30*time.Second, "bob to read the first message", func() bool {
		return len(readAll(t, ctx, bob, room)) == 1
	})
	bdir := b.dir
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.BanUser(ctx, room, &mautrix.ReqBanUser{UserID: cs[2].UserID}); err != nil {
		t.Fatal(err)
	}
	var want []string
	want = append(want, "before bob went away")
	for i := range 130 {
		body := fmt.Sprintf("while bob was away %03d", i)
		sendAll(t, ctx, alice, room, body)
		want = append(want, body)
	}
	b2 := newTestNode(t, testOpts{dir: bdir, bootstrap: []*testNode{a}})
	bob2 := b2.client()
	bob2.SetCredentials(bob.UserID, bob.AccessToken)
	var got []string
	testkit.WaitFor(t, 60*time.Second, "bob to read every message", func() bool {
		got = readAll(t, ctx, bob2, room)
		return len(got) == len(want)
	})
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("bob's message %d is %q, want %q", i, got[i], want[i])
		}
	}
	if n := waitingEvents(t, b2, room); n != 0 {
		t.Fatalf("%d events still wait for a key on bob's node", n)
	}
}

// TestAJoinerDecryptsExactlyWhatHistoryVisibilityAllows is the issue's
// test 4: for each history visibility, a new joiner's node can decrypt
// exactly the events it may read, from both earlier members, and
// nothing else even when handed the events themselves.
func TestAJoinerDecryptsExactlyWhatHistoryVisibilityAllows(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		visibility string
		want       []string
	}{
		{"shared", []string{"c1", "m1", "m2", "m3"}},
		{"world_readable", []string{"c1", "m1", "m2", "m3"}},
		{"invited", []string{"m2", "m3"}},
		{"joined", []string{"m3"}},
	} {
		t.Run(tc.visibility, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			a, _, alice, bob, room := twoMembers(t, ctx, testOpts{}, testOpts{})
			j := newTestNode(t, testOpts{bootstrap: []*testNode{a}})
			jo := j.register(ctx, "jo")
			if _, err := alice.SendStateEvent(ctx, room, event.StateHistoryVisibility, "", map[string]string{"history_visibility": tc.visibility}); err != nil {
				t.Fatal(err)
			}
			// Bob's c1 must be sent under the new visibility: sent before
			// his node sees it, it is history of the old one.
			testkit.WaitFor(t, 30*time.Second, "bob to see the history visibility", func() bool {
				var hv struct {
					V string `json:"history_visibility"`
				}
				return bob.StateEvent(ctx, room, event.StateHistoryVisibility, "", &hv) == nil && hv.V == tc.visibility
			})
			ids := map[string]id.EventID{}
			ids["c1"] = sendAll(t, ctx, bob, room, "c1")[0]
			// The test reads c1 before m1: alice's node must have c1
			// before she sends m1, or the two are siblings in the room's
			// graph and either order is right.
			seesEvent(t, ctx, alice, room, ids["c1"])
			ids["m1"] = sendAll(t, ctx, alice, room, "m1")[0]
			if _, err := alice.InviteUser(ctx, room, &mautrix.ReqInviteUser{UserID: jo.UserID}); err != nil {
				t.Fatal(err)
			}
			ids["m2"] = sendAll(t, ctx, alice, room, "m2")[0]
			testkit.WaitFor(t, 30*time.Second, "jo's invite", func() bool {
				_, err := jo.JoinRoomByID(ctx, room)
				return err == nil
			})
			ids["m3"] = sendAll(t, ctx, alice, room, "m3")[0]
			var got []string
			defer func() {
				if t.Failed() {
					t.Logf("jo reads %q", readAll(t, ctx, jo, room))
					for name, eid := range ids {
						i, err := j.dag.Event(eid.String())
						if err != nil {
							t.Logf("%s: %v", name, err)
							continue
						}
						t.Logf("%s: pos %d order %d outlier %v soft %q rej %q plain %d", name, i.Pos(), i.Rec.Order, i.Rec.Outlier, i.Rec.SoftFailed, i.Rec.Rejected, len(i.Rec.Plain))
					}
				}
			}()
			testkit.WaitFor(t, 60*time.Second, "jo to read what she may", func() bool {
				got = nil
				for _, b := range readAll(t, ctx, jo, room) {
					if len(b) == 2 {
						got = append(got, b)
					}
				}
				return fmt.Sprint(got) == fmt.Sprint(tc.want)
			})
			allowed := map[string]bool{}
			for _, w := range tc.want {
				allowed[w] = true
			}
			for name, eid := range ids {
				ok := decryptAt(t, j, room, pduOf(t, a, eid))
				if allowed[name] != ok {
					t.Errorf("jo's node decrypts %s: %v, want %v", name, ok, allowed[name])
				}
			}
		})
	}
}

// TestAJoinerReadsTheNameTheRoomWasCreatedWith: the room's name, set
// when it was created and so encrypted before the joiner's node held
// any key, reads as its name for the joiner (through /sync and the
// state API) once its node has the key.
func TestAJoinerReadsTheNameTheRoomWasCreatedWith(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, b, alice, bob := twoNodes(t, ctx, testOpts{}, testOpts{})
	created, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Name: "named at creation"})
	if err != nil {
		t.Fatal(err)
	}
	joinThrough(t, ctx, created.RoomID, alice, bob)
	defer func() {
		if t.Failed() {
			var raw map[string]any
			err := bob.StateEvent(ctx, created.RoomID, event.StateRoomName, "", &raw)
			t.Logf("bob's name state: %v %v", raw, err)
			r := b.dag.Room(created.RoomID.String())
			for k, id := range r.Head().State {
				if k.Type == "m.room.name" {
					i, _ := b.dag.Event(id)
					_, cached := b.dag.Cached(id)
					var stored []byte
					b.store.View(func(tx *store.Txn) error {
						rec, err := tx.Event(id)
						if err == nil {
							stored = rec.Plain
						}
						return nil
					})
					t.Logf("name %s plain %s cached %v stored %s outlier %v pos %d order %d", id, i.Rec.Plain, cached, stored, i.Rec.Outlier, i.Pos(), i.Rec.Order)
				}
			}
		}
	}()
	testkit.WaitFor(t, 30*time.Second, "bob to read the room's name", func() bool {
		var n struct {
			Name string `json:"name"`
		}
		return bob.StateEvent(ctx, created.RoomID, event.StateRoomName, "", &n) == nil && n.Name == "named at creation"
	})
	s := &testkit.Syncer{Client: bob}
	s.Until(t, 30*time.Second, "bob's /sync to carry the name", func(r *mautrix.RespSync) bool {
		j, ok := r.Rooms.Join[created.RoomID]
		if !ok {
			return false
		}
		for _, ev := range append(j.State.Events, j.Timeline.Events...) {
			if ev.Type == event.StateRoomName {
				ev.Content.ParseRaw(ev.Type)
				if ev.Content.AsRoomName().Name == "named at creation" {
					return true
				}
			}
		}
		return false
	})
}
