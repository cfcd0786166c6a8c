package e2ee

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/parley-p2p/parley/node/dag"
	"github.com/parley-p2p/parley/rooms"
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
		{"a week rotates", func(a, _ *tnode, r *dag.Room) {
			a.k.now = func() time.Time { return time.Now().Add(rotateAge) }
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
			if gone := tc.rotate && tc.name != "100 messages rotate" && tc.name != "a week rotates" && tc.name != "a history visibility change rotates" && tc.name != "a withdrawn invite rotates"; gone && readable {
				t.Fatal("the removed member's node decrypts what was sent after its removal")
			} else if !gone && !readable {
				t.Fatal("a member's node cannot decrypt what was sent after the change")
			}
		})
	}
}

func TestASessionIsSplitAcrossShareEventsPastTheSizeLimit(t *testing.T) {
	net := &tnet{}
	x := newNode(t, net, "alice")
	r := x.createRoom("shared")
	v := x.k.readView(r.Head()) // a copy of its own, to add servers to
	for i := range 40 {
		n := newKEMServer(t, i)
		v.joined[n.name] = n.pk
	}
	o, err := x.k.newOutbound(r.ID, v)
	if err != nil {
		t.Fatal(err)
	}
	contents, sealed, err := x.k.shareContents(r.ID, o.id, o.binding, 0, o.key0, v.joined)
	if err != nil {
		t.Fatal(err)
	}
	if len(contents) < 2 || len(sealed) != 40 {
		t.Fatalf("%d events sealed to %d servers", len(contents), len(sealed))
	}
	seen := map[string]int{}
	for i, c := range contents {
		var sh share
		json.Unmarshal(c, &sh)
		if len(c) > maxShareBytes+2000 || sh.Part != [2]int{i + 1, len(contents)} || sh.SessionID != o.id || sh.Binding != o.binding {
			t.Fatalf("part %d: %d bytes, part %v", i, len(c), sh.Part)
		}
		for s := range sh.Seals {
			seen[s]++
		}
	}
	for s := range v.joined {
		if seen[s] != 1 {
			t.Fatalf("server %s has %d seals", s, seen[s])
		}
	}
}

type kemServer struct {
	name string
	pk   PublicKey
}

func newKEMServer(t testing.TB, i int) kemServer {
	seed := sha256.Sum256([]byte(fmt.Sprint("kem server ", i)))
	key := ed25519.NewKeyFromSeed(seed[:])
	k, err := DeriveKEM(key)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(k.Doc())
	pk, err := ParseKEMDoc(raw)
	if err != nil {
		t.Fatal(err)
	}
	return kemServer{rooms.ServerName(key.Public().(ed25519.PublicKey)), pk}
}

func TestAMemberAwayThroughRotationsReadsEverythingWhenItCatchesUp(t *testing.T) {
	net := &tnet{}
	a, b, c := newNode(t, net, "alice"), newNode(t, net, "bob"), newNode(t, net, "carol")
	r := a.createRoom("shared")
	joinRoom(a, b, r)
	joinRoom(a, c, r)
	b.deliver(nil)
	a.msg(r, "before")
	first := a.sessionID(r)
	// bob's node is away: carol is banned and alice sends 250 messages,
	// three more sessions.
	a.member(r, c.user, "ban")
	var sent []string
	for i := range 250 {
		sent = append(sent, a.msg(r, fmt.Sprint("away ", i)).ID())
	}
	if a.sessionID(r) == first {
		t.Fatal("no rotation happened")
	}
	b.deliver(nil)
	for i, id := range sent {
		if got := b.body(id); got != fmt.Sprint("away ", i) {
			t.Fatalf("bob's node shows %q for message %d", got, i)
		}
	}
	c.deliver(nil)
	for _, id := range sent {
		if c.body(id) != "" {
			t.Fatal("the banned member's node reads what was sent after the ban")
		}
	}
}
