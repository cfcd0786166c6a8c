package node

import (
	"context"
	"encoding/json"
	"maps"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/parley-p2p/parley/internal/testkit"
	"github.com/parley-p2p/parley/node/dag"
	"github.com/parley-p2p/parley/node/e2ee"
	"github.com/parley-p2p/parley/rooms"
)

func roomState(n *testNode, room id.RoomID) map[rooms.StateKey]string {
	r := n.getRoom(room.String())
	if r == nil {
		return nil
	}
	return maps.Clone(r.State())
}

// stateContent is the content of the event at (typ, key) in n's current
// state as n's clients are shown it: its plain view where what travels is
// ciphertext (a topic, say). It is nil when n holds no such event, or
// has not decrypted it yet.
func stateContent(t *testing.T, n *testNode, room id.RoomID, typ, key string) map[string]any {
	t.Helper()
	id, ok := roomState(n, room)[rooms.StateKey{Type: typ, StateKey: key}]
	if !ok {
		return nil
	}
	i, err := n.dag.Event(id)
	if err != nil {
		t.Fatal(err)
	}
	content := i.Event.Content()
	if len(i.Rec.Plain) > 0 {
		p, err := dag.DecodePlain(i.Rec.Plain)
		if err != nil {
			t.Fatal(err)
		}
		if p.Status != "" {
			t.Fatalf("node %s: the plain view of %s is %s", n.serverName[:8], id, p.Status)
		}
		content = p.Content
	}
	var c map[string]any
	if err := json.Unmarshal(content, &c); err != nil {
		t.Fatalf("node %s: the content of %s: %v", n.serverName[:8], id, err)
	}
	if _, waiting := c[e2ee.EncryptedField]; waiting {
		return nil
	}
	return c
}

// TestPartitionBanBeatsTheModeratorsChanges: four nodes in a room are split
// in two. On one side the admin bans the moderator; on the other the
// moderator changes the topic and the power levels. Once the split heals
// (nobody reconnects by hand: the nodes find each other again), all four
// nodes hold identical state, the ban stands and the moderator's changes
// from the other side do not.
func TestPartitionBanBeatsTheModeratorsChanges(t *testing.T) {
	t.Parallel()
	for _, version := range []string{rooms.V12, rooms.V11} {
		t.Run("room version "+version, func(t *testing.T) {
			t.Parallel()
			testPartition(t, version)
		})
	}
}

func testPartition(t *testing.T, version string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	mk := func(boot ...*testNode) *testNode {
		return newTestNode(t, testOpts{bootstrap: boot, reconnect: 100 * time.Millisecond})
	}
	a := mk()
	b, c, d := mk(a), mk(a), mk(a)
	alice, bob, carol, dave := a.register(ctx, "alice"), b.register(ctx, "bob"), c.register(ctx, "carol"), d.register(ctx, "dave")

	// The moderator may change power levels (up to her own level).
	override, _ := json.Marshal(map[string]any{
		"users":  map[string]int{carol.UserID.String(): 50},
		"events": map[string]int{"m.room.power_levels": 50, "m.room.topic": 50},
	})
	if version == rooms.V11 {
		override, _ = json.Marshal(map[string]any{
			"users":  map[string]int{alice.UserID.String(): 100, carol.UserID.String(): 50},
			"events": map[string]int{"m.room.power_levels": 50, "m.room.topic": 50},
		})
	}
	room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{
		Preset: "private_chat", Topic: "before the split", RoomVersion: id.RoomVersion(version),
		PowerLevelOverride: nil, Name: "partition",
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.SendStateEvent(ctx, room.RoomID, event.StatePowerLevels, "", json.RawMessage(override)); err != nil {
		t.Fatalf("power levels: %v", err)
	}
	for _, u := range []*mautrix.Client{bob, carol, dave} {
		joinThrough(t, ctx, room.RoomID, alice, u)
	}
	all := []*testNode{a, b, c, d}
	// The topic is encrypted: each node reads it once the key (handed over
	// on its user's join) has reached it, which must be before the split,
	// as carol's node, once she is banned, is handed nothing more.
	testkit.WaitFor(t, 30*time.Second, "all four nodes to agree, and read the topic, before the split", func() bool {
		ref := roomState(a, room.RoomID)
		for _, n := range all[1:] {
			if !maps.Equal(ref, roomState(n, room.RoomID)) {
				return false
			}
		}
		for _, n := range all {
			if stateContent(t, n, room.RoomID, "m.room.topic", "")["topic"] != "before the split" {
				return false
			}
		}
		return len(ref) > 0 && stateContent(t, d, room.RoomID, "m.room.member", dave.UserID.String())["membership"] == "join"
	})
	before := roomState(a, room.RoomID)

	split(t, []*testNode{a, b}, []*testNode{c, d})

	if _, err := alice.BanUser(ctx, room.RoomID, &mautrix.ReqBanUser{UserID: carol.UserID, Reason: "split test"}); err != nil {
		t.Fatalf("ban: %v", err)
	}
	if _, err := carol.SendStateEvent(ctx, room.RoomID, event.StateTopic, "", map[string]string{"topic": "carol was here"}); err != nil {
		t.Fatalf("carol's topic: %v", err)
	}
	var pl map[string]any
	json.Unmarshal(override, &pl)
	pl["users"].(map[string]any)[dave.UserID.String()] = 50
	if _, err := carol.SendStateEvent(ctx, room.RoomID, event.StatePowerLevels, "", pl); err != nil {
		t.Fatalf("carol's power levels: %v", err)
	}
	// Each side sees its own half's changes.
	testkit.WaitFor(t, 20*time.Second, "bob to see the ban", func() bool {
		return stateContent(t, b, room.RoomID, "m.room.member", carol.UserID.String())["membership"] == "ban"
	})
	testkit.WaitFor(t, 20*time.Second, "dave to see carol's topic and power levels", func() bool {
		users, _ := stateContent(t, d, room.RoomID, "m.room.power_levels", "")["users"].(map[string]any)
		_, daveRaised := users[dave.UserID.String()]
		return daveRaised && stateContent(t, d, room.RoomID, "m.room.topic", "")["topic"] == "carol was here"
	})
	if maps.Equal(roomState(a, room.RoomID), roomState(c, room.RoomID)) {
		t.Fatal("the halves did not diverge")
	}

	// Heal: lift the gaters; the nodes redial each other on their own.
	heal(all...)
	defer func() {
		if t.Failed() {
			ref := roomState(a, room.RoomID)
			for _, n := range all {
				st := roomState(n, room.RoomID)
				for k, v := range st {
					if ref[k] != v {
						t.Logf("node %s differs from a at %v: %s vs %s", n.serverName[:8], k, v, ref[k])
					}
				}
				r := n.getRoom(room.RoomID.String())
				t.Logf("node %s extremities %v", n.serverName[:8], r.Head().Ext)
			}
		}
	}()
	testkit.WaitFor(t, 60*time.Second, "all four nodes to converge", func() bool {
		ref := roomState(a, room.RoomID)
		for _, n := range all[1:] {
			if !maps.Equal(ref, roomState(n, room.RoomID)) {
				return false
			}
		}
		return ref[rooms.StateKey{Type: "m.room.member", StateKey: carol.UserID.String()}] != before[rooms.StateKey{Type: "m.room.member", StateKey: carol.UserID.String()}]
	})
	for _, n := range all {
		if m := stateContent(t, n, room.RoomID, "m.room.member", carol.UserID.String())["membership"]; m != "ban" {
			t.Errorf("node %s: carol's membership is %v, want ban", n.serverName[:8], m)
		}
		if topic := stateContent(t, n, room.RoomID, "m.room.topic", "")["topic"]; topic != "before the split" {
			t.Errorf("node %s: topic is %v, want the one from before the split", n.serverName[:8], topic)
		}
		users, _ := stateContent(t, n, room.RoomID, "m.room.power_levels", "")["users"].(map[string]any)
		if _, ok := users[dave.UserID.String()]; ok {
			t.Errorf("node %s: carol's power level change for dave took effect: %v", n.serverName[:8], users)
		}
	}
	// A's debug view names carol's two changes as soft-failed, with why.
	var dbg struct {
		Verdicts []struct {
			EventID string `json:"event_id"`
			Type    string `json:"type"`
			Soft    bool   `json:"soft_failed"`
			Reason  string `json:"reason"`
		} `json:"verdicts"`
	}
	// A's state does not change when it soft-fails them, so the states can
	// agree before A has seen carol's events: wait for them.
	soft := map[string]bool{}
	testkit.WaitFor(t, 20*time.Second, "a's debug view to list carol's soft-failed changes", func() bool {
		raw, err := alice.MakeRequest(ctx, "GET", alice.BuildURL(mautrix.BaseURLPath{"_parley", "v1", "rooms", room.RoomID.String(), "debug"}), nil, nil)
		if err != nil {
			t.Fatalf("debug view: %v", err)
		}
		json.Unmarshal(raw, &dbg)
		for _, v := range dbg.Verdicts {
			if v.Soft && v.Reason != "" {
				soft[v.Type] = true
			}
		}
		return soft["m.room.topic"] && soft["m.room.power_levels"]
	})

	// Clients see the same: dave's /state shows the ban.
	ev, err := dave.State(ctx, room.RoomID)
	if err != nil {
		t.Fatal(err)
	}
	if mem := ev[event.StateMember][carol.UserID.String()]; mem == nil || mem.Content.AsMember().Membership != event.MembershipBan {
		t.Errorf("dave's /state does not show carol banned")
	}
}
