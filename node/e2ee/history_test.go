package e2ee

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/parley-p2p/parley/internal/testkit"
	"github.com/parley-p2p/parley/rooms"
)

// visibleByLog is a history visibility a test can follow: what a server
// may read, by the position of events in the log.
func visibleByLog(net *tnet, hv, user string) func(roomID, eventID, server string) bool {
	return func(_, eventID, _ string) bool {
		pos, invited, joined := -1, -1, -1
		for i, ev := range net.events() {
			switch {
			case ev.ID() == eventID:
				pos = i
			case ev.Type() == "m.room.member" && *ev.StateKey() == user && ev.Membership() == "invite" && invited < 0:
				invited = i
			case ev.Type() == "m.room.member" && *ev.StateKey() == user && ev.Membership() == "join" && joined < 0:
				joined = i
			}
		}
		switch hv {
		case "invited":
			return invited >= 0 && pos > invited
		case "joined":
			return joined >= 0 && pos > joined
		}
		return true
	}
}

func TestAJoinerDecryptsExactlyWhatItsHistoryVisibilityAllows(t *testing.T) {
	cases := []struct {
		hv      string
		allowed []string
	}{
		{"shared", []string{"c1", "m1", "m2", "m3"}},
		{"world_readable", []string{"c1", "m1", "m2", "m3"}},
		{"invited", []string{"m2", "m3"}},
		{"joined", []string{"m3"}},
	}
	for _, tc := range cases {
		t.Run(tc.hv, func(t *testing.T) {
			testkit.CheckGoroutines(t)
			net := &tnet{}
			a, c, j := newNode(t, net, "alice"), newNode(t, net, "carol"), newNode(t, net, "joiner")
			a.vis = visibleByLog(net, tc.hv, j.user)
			c.vis = a.vis
			r := a.createRoom(tc.hv)
			rc := joinRoom(a, c, r)
			sent := map[string]*rooms.Event{}
			sent["c1"] = c.msg(rc, "c1")
			a.deliver(nil)
			sent["m1"] = a.msg(r, "m1")
			a.member(r, j.user, "invite")
			sent["m2"] = a.msg(r, "m2")
			j.deliver(nil)
			rj := j.room(r.ID)
			j.send(rj, j.user, "m.room.member", &j.user, `{"membership":"join"}`)
			a.deliver(nil)
			fromA := func(ev *rooms.Event) bool { return isHistoryFor(j.name)(ev) && ev.Sender() == a.user }
			waitLog(t, net, "alice's handover", fromA)
			sent["m3"] = a.msg(r, "m3")
			// carol's node was away at the join: it hands over its own
			// sessions when it catches up.
			c.deliver(nil)
			waitLog(t, net, "carol's handover", func(ev *rooms.Event) bool { return isHistoryFor(j.name)(ev) && ev.Sender() == c.user })
			j.deliver(nil)

			for _, name := range tc.allowed {
				testkit.WaitFor(t, 10*time.Second, "the joiner reads "+name, func() bool { return j.body(sent[name].ID()) == name })
			}
			// Every handover has been taken in; a forbidden event stays
			// unreadable.
			j.idle()
			for name, ev := range sent {
				allowed := false
				for _, a := range tc.allowed {
					allowed = allowed || a == name
				}
				if !allowed && j.body(ev.ID()) != "" {
					t.Errorf("the joiner reads %s, which %s history visibility hides", name, tc.hv)
				}
			}
		})
	}
}

func TestAFullHandoverEventStaysUnderTheSizeLimit(t *testing.T) {
	net := &tnet{}
	x := newNode(t, net, "alice")
	r := x.createRoom("shared")
	var list []handed
	for range handedPerEvent {
		o, err := x.k.newOutbound(r.ID, x.k.view(r))
		if err != nil {
			t.Fatal(err)
		}
		in := x.k.inbound(o.id)
		exp, err := exportAt(in.s, 0)
		if err != nil {
			t.Fatal(err)
		}
		list = append(list, handed{S: o.id, O: x.name, B: o.binding, I: 0, K: string(exp)})
	}
	pt, _ := json.Marshal(list)
	ct, err := Seal(newKEMServer(t, 1).pk, historyInfo(r.ID, x.name, "someone", "nonce"), pt)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := json.Marshal(share{V: 1, Kind: kindHistory, KEM: KEMAlg, Part: [2]int{1, 1}, For: strings.Repeat("f", 64), Nonce: "bm9uY2Vub25jZW5vbmNl", Seal: b64.EncodeToString(ct)})
	if len(c) > maxShareBytes {
		t.Fatalf("a handover of %d sessions is %d bytes", handedPerEvent, len(c))
	}
}

func TestAProfileChangeIsNoNewJoinToHandHistoryTo(t *testing.T) {
	net := &tnet{}
	a, b := newNode(t, net, "alice"), newNode(t, net, "bob")
	r := a.createRoom("shared")
	a.msg(r, "history")
	rb := joinRoom(a, b, r)
	waitLog(t, net, "alice's handover", isHistoryFor(b.name))
	b.deliver(nil)
	b.send(rb, b.user, "m.room.member", &b.user, `{"membership":"join","displayname":"new name"}`)
	a.deliver(nil)
	a.idle()
	n := 0
	for _, ev := range net.events() {
		if isHistoryFor(b.name)(ev) {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d handovers to bob's node", n)
	}
}
