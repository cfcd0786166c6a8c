package e2ee

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/parley-p2p/parley/internal/testkit"
	"github.com/parley-p2p/parley/rooms"
)

func TestMessagesTravelAsMegolmCiphertextAndOpenAtTheOtherMember(t *testing.T) {
	net := &tnet{}
	a, b := newNode(t, net, "alice"), newNode(t, net, "bob")
	r := a.createRoom("shared")
	joinRoom(a, b, r)

	m := a.msg(r, "canary-hello-7q")
	if m.Type() != EncryptedType || strings.Contains(string(m.JSON()), "canary") {
		t.Fatalf("the message went out in the clear: %s", m.JSON())
	}
	var enc encrypted
	if err := json.Unmarshal(m.Content(), &enc); err != nil || enc.Algorithm != Algorithm || enc.SessionID == "" || enc.Ciphertext == "" {
		t.Fatalf("content is not m.megolm.v1.aes-sha2: %s", m.Content())
	}
	if got := a.body(m.ID()); got != "canary-hello-7q" {
		t.Fatalf("the sender's own clients see %q", got)
	}
	b.deliver(nil)
	if got := b.body(m.ID()); got != "canary-hello-7q" {
		t.Fatalf("the other member sees %q", got)
	}
	if p := b.shown(m.ID()); p.Type != "m.room.message" {
		t.Fatalf("the other member sees type %q", p.Type)
	}

	// And back: bob's node shares its own session with alice's.
	rb := b.room(r.ID)
	reply := b.msg(rb, "canary-reply-9z")
	a.deliver(nil)
	if got := a.body(reply.ID()); got != "canary-reply-9z" {
		t.Fatalf("alice sees %q", got)
	}
}

func TestStateEventsKeepTheKeysTheAuthRulesRead(t *testing.T) {
	net := &tnet{}
	a, b := newNode(t, net, "alice"), newNode(t, net, "bob")
	r := a.createRoom("shared")
	rb := joinRoom(a, b, r)

	name := a.send(r, a.user, "m.room.name", new(string), `{"name":"canary room name"}`)
	var c map[string]json.RawMessage
	json.Unmarshal(name.Content(), &c)
	if name.Type() != "m.room.name" || c["name"] != nil || c[EncryptedField] == nil {
		t.Fatalf("a room name is not encrypted in place: %s", name.JSON())
	}
	b.deliver(nil)
	if p := b.shown(name.ID()); p == nil || !strings.Contains(string(p.Content), "canary room name") {
		t.Fatalf("bob's node shows %+v", p)
	}

	// bob's join: membership and the KEM key stay readable, the display
	// name does not.
	var join map[string]json.RawMessage
	for _, ev := range net.events() {
		if ev.Type() == "m.room.member" && *ev.StateKey() == b.user && ev.Membership() == "join" {
			json.Unmarshal(ev.Content(), &join)
			if strings.Contains(string(ev.JSON()), "B secret name") {
				t.Fatalf("a display name went out in the clear: %s", ev.JSON())
			}
		}
	}
	if string(join["membership"]) != `"join"` || join[KEMField] == nil || join[EncryptedField] == nil {
		t.Fatalf("bob's join lacks what it must show: %v", join)
	}
	if _, err := ParseKEMDoc(join[KEMField]); err != nil {
		t.Fatalf("the KEM key in the join does not parse: %v", err)
	}

	// Types whose every key the auth rules read stay as they are.
	pl := a.send(r, a.user, "m.room.power_levels", new(string), `{"ban":50,"events_default":0,"invite":0,"kick":50,"redact":50,"state_default":50,"users_default":0,"users":{}}`)
	if pl.Type() != "m.room.power_levels" || strings.Contains(string(pl.Content()), EncryptedField) || a.shown(pl.ID()) != nil {
		t.Fatalf("power levels were encrypted: %s", pl.Content())
	}

	// A redaction keeps redacts.
	m := b.msg(rb, "to be redacted")
	a.deliver(nil)
	red := a.send(r, a.user, "m.room.redaction", nil, `{"redacts":"`+m.ID()+`","reason":"canary reason"}`)
	if red.Type() != "m.room.redaction" || red.Redacts() != m.ID() || strings.Contains(string(red.JSON()), "canary reason") {
		t.Fatalf("the redaction: %s", red.JSON())
	}
	b.deliver(nil)
	if p := b.shown(red.ID()); p == nil || p.Type != "m.room.redaction" || !strings.Contains(string(p.Content), "canary reason") {
		t.Fatalf("bob's node shows the redaction as %+v", p)
	}
}

func TestALateKeyDecryptsTheEventsThatWaitedForIt(t *testing.T) {
	testkit.CheckGoroutines(t)
	net := &tnet{}
	a, b := newNode(t, net, "alice"), newNode(t, net, "bob")
	r := a.createRoom("shared")
	rb := joinRoom(a, b, r)

	// bob's join was encrypted before bob's node was in the room, so
	// with a session no one else held: alice's node waits for its key.
	join := rb.Head().State[memberKey(b.user)]
	if p := a.shown(join); p != nil {
		t.Fatalf("alice's node opened bob's join without its key: %+v", p)
	}
	// bob's next event shares that session with alice's node.
	m := b.msg(rb, "after the join")
	a.deliver(nil)
	if got := a.body(m.ID()); got != "after the join" {
		t.Fatalf("alice sees %q", got)
	}
	testkit.WaitFor(t, 10*time.Second, "the late plaintext of bob's join", func() bool {
		p := a.shown(join)
		return p != nil && strings.Contains(string(p.Content), "B secret name")
	})
	a.mu.Lock()
	calls := a.late[join]
	a.mu.Unlock()
	if calls != 1 {
		t.Fatalf("SetPlain was called %d times for bob's join", calls)
	}
}

func memberKey(user string) rooms.StateKey {
	return rooms.StateKey{Type: "m.room.member", StateKey: user}
}

func TestARestartedNodeReadsItsOwnHistoryAndStartsANewSession(t *testing.T) {
	net := &tnet{}
	a, b := newNode(t, net, "alice"), newNode(t, net, "bob")
	r := a.createRoom("shared")
	joinRoom(a, b, r)
	m1 := a.msg(r, "before the restart")
	before := a.sessionID(r)
	a.restart()
	r = a.e.Room(r.ID)
	if r == nil {
		t.Fatal("the room is gone after the restart")
	}
	// Its own events open with its stored inbound copy.
	a.mu.Lock()
	delete(a.plain, m1.ID())
	a.mu.Unlock()
	if p := a.k.Open(r, m1); p == nil || !strings.Contains(string(p), "before the restart") {
		t.Fatalf("the restarted node opens its own message as %s", p)
	}
	m2 := a.msg(r, "after the restart")
	if after := a.sessionID(r); after == before || after == "" {
		t.Fatal("the restarted node went on with its session: an index could be used twice")
	}
	b.deliver(nil)
	if got := b.body(m2.ID()); got != "after the restart" {
		t.Fatalf("bob sees %q", got)
	}
}
