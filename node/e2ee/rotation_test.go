package e2ee

import (
	"fmt"
	"testing"

	"github.com/parley-p2p/parley/node/dag"
)

func TestTheSessionRotatesWhenTheRoomCallsForIt(t *testing.T) {
	cases := []struct {
		name   string
		change func(a, c *tnode, r *dag.Room)
		rotate bool
	}{
		{"a ban rotates", func(a, c *tnode, r *dag.Room) { a.member(r, c.user, "ban") }, true},
		{"a kick rotates", func(a, c *tnode, r *dag.Room) { a.member(r, c.user, "leave") }, true},
		{"a leave rotates", func(a, c *tnode, r *dag.Room) {
			rc := c.room(r.ID)
			c.send(rc, c.user, "m.room.member", &c.user, `{"membership":"leave"}`)
			a.deliver(nil)
		}, true},
		{"a withdrawn invite rotates", func(a, _ *tnode, r *dag.Room) {
			a.member(r, "@someone:elsewhere", "invite")
			a.msg(r, "with the invite")
			a.member(r, "@someone:elsewhere", "leave")
		}, true},
		{"a history visibility change rotates", func(a, _ *tnode, r *dag.Room) {
			a.send(r, a.user, "m.room.history_visibility", new(string), `{"history_visibility":"joined"}`)
		}, true},
		{"100 messages rotate", func(a, _ *tnode, r *dag.Room) {
			for i := range 99 { // one was sent already
				a.msg(r, fmt.Sprint(i))
			}
		}, true},
		{"99 messages do not", func(a, _ *tnode, r *dag.Room) {
			for i := range 98 {
				a.msg(r, fmt.Sprint(i))
			}
		}, false},
		{"a new invite does not", func(a, _ *tnode, r *dag.Room) { a.member(r, "@someone:elsewhere", "invite") }, false},
		{"a new join does not", func(a, _ *tnode, r *dag.Room) {
			d := newNode(a.t, a.net, "dan")
			joinRoom(a, d, r)
		}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			net := &tnet{}
			a, c := newNode(t, net, "alice"), newNode(t, net, "carol")
			r := a.createRoom("shared")
			joinRoom(a, c, r)
			a.msg(r, "first")
			before := a.sessionID(r)
			tc.change(a, c, r)
			after := a.msg(r, "after the change")
			if rotated := a.sessionID(r) != before; rotated != tc.rotate {
				t.Fatalf("rotated: %v, want %v", rotated, tc.rotate)
			}
			c.deliver(nil)
			readable := c.body(after.ID()) != ""
			if gone := tc.rotate && tc.name != "100 messages rotate" && tc.name != "a history visibility change rotates" && tc.name != "a withdrawn invite rotates"; gone && readable {
				t.Fatal("the removed member's node decrypts what was sent after its removal")
			} else if !gone && !readable {
				t.Fatal("a member's node cannot decrypt what was sent after the change")
			}
		})
	}
}
