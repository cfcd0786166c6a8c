package rooms

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// testServer is a node with a deterministic key, so failures reproduce.
type testServer struct {
	name string
	key  ed25519.PrivateKey
}

func newTestServer(label string) testServer {
	seed := sha256.Sum256([]byte("parley rooms test server " + label))
	key := ed25519.NewKeyFromSeed(seed[:])
	return testServer{name: ServerName(key.Public().(ed25519.PublicKey)), key: key}
}

func (s testServer) user(local string) string { return "@" + local + ":" + s.name }

var (
	serverA = newTestServer("A")
	serverB = newTestServer("B")
	serverC = newTestServer("C")
	serverE = newTestServer("E")

	alice  = serverA.user("alice")
	alice2 = serverA.user("alice2") // another user on alice's server
	bob    = serverB.user("bob")
	dave   = serverB.user("dave") // shares bob's server
	carol  = serverC.user("carol")
	eve    = serverE.user("eve")
)

var testServers = map[string]testServer{
	serverA.name: serverA, serverB.name: serverB, serverC.name: serverC, serverE.name: serverE,
}

// expand replaces the names ALICE, ALICE2, BOB, CAROL, DAVE and EVE in s by
// the user IDs.
func expand(s string) string {
	return strings.NewReplacer("ALICE2", alice2, "ALICE", alice, "BOB", bob, "CAROL", carol, "DAVE", dave, "EVE", eve).Replace(s)
}

// testRoom builds a linear room: each event follows the previous one, cites the
// auth events the selection rules pick from the current state, and is signed by
// its sender's server.
type testRoom struct {
	t       testing.TB
	version string
	create  *Event
	last    *Event
	state   map[StateKey]*Event
	ts      int64
}

// roomCounter gives each v10 and v11 test room its own room ID.
var roomCounter int

// newBareRoom makes a room holding only alice's create event (createContent
// is merged into {"room_version": version}).
func newBareRoom(t testing.TB, version, createContent string) *testRoom {
	t.Helper()
	r := &testRoom{t: t, version: version, state: map[StateKey]*Event{}, ts: 1000}
	content := `{"room_version":"` + version + `"}`
	if version == V10 {
		content = `{"room_version":"10","creator":"ALICE"}`
	}
	if createContent != "" {
		content = createContent
		if version == V10 && !strings.Contains(content, `"creator"`) {
			// Version 10 needs it; tests of other create content get it.
			content = `{"creator":"ALICE",` + strings.TrimPrefix(content, "{")
		}
	}
	p := ProtoEvent{Sender: alice, Type: "m.room.create", StateKey: NewStateKey(""),
		Content: json.RawMessage(expand(content)), Depth: 1, OriginServerTS: r.ts}
	if RoomIDHasServer(version) {
		roomCounter++
		p.RoomID = fmt.Sprintf("!room%d:%s", roomCounter, serverA.name)
	}
	create, err := Build(p, version, serverA.name, serverA.key)
	if err != nil {
		t.Fatalf("build create: %v", err)
	}
	if err := Allowed(create, r.lookup); err != nil {
		t.Fatalf("create not allowed: %v", err)
	}
	r.create, r.last = create, create
	r.state[createKey] = create
	return r
}

// newTestRoom makes a room where alice has joined, power levels give alice 100
// (v11; in v12 she is the creator) and the join rule is "invite".
func newTestRoom(t testing.TB, version string) *testRoom {
	r := newBareRoom(t, version, "")
	r.member(alice, alice, "join", "")
	r.powerLevels("")
	r.send(alice, "m.room.join_rules", "", `{"join_rule":"invite"}`)
	return r
}

func (r *testRoom) lookup(k StateKey) *Event { return r.state[k] }

// proto prepares an event from sender; stateKey "-" means a non-state event.
func (r *testRoom) proto(sender, typ, stateKey, content string) ProtoEvent {
	r.ts++
	p := ProtoEvent{RoomID: r.create.RoomID(), Sender: expand(sender), Type: typ,
		Content: json.RawMessage(expand(content)), PrevEvents: []string{r.last.ID()},
		Depth: r.last.Depth() + 1, OriginServerTS: r.ts}
	if stateKey != "-" {
		p.StateKey = NewStateKey(expand(stateKey))
	}
	for _, k := range AuthEventKeys(p, r.version) {
		if ev := r.state[k]; ev != nil {
			p.AuthEvents = append(p.AuthEvents, ev.ID())
		}
	}
	return p
}

// buildProto signs p as its sender's server.
func (r *testRoom) buildProto(p ProtoEvent) *Event {
	r.t.Helper()
	server := testServers[serverOf(p.Sender)]
	e, err := Build(p, r.version, server.name, server.key)
	if err != nil {
		r.t.Fatalf("build %s: %v", p.Type, err)
	}
	return e
}

func (r *testRoom) build(sender, typ, stateKey, content string) *Event {
	r.t.Helper()
	return r.buildProto(r.proto(sender, typ, stateKey, content))
}

// apply adds e to the room (no auth check).
func (r *testRoom) apply(e *Event) *Event {
	r.last = e
	if e.IsState() {
		r.state[e.Key()] = e
	}
	return e
}

// sendEvent applies e after checking it passes auth and its auth events.
func (r *testRoom) sendEvent(e *Event) *Event {
	r.t.Helper()
	if err := Allowed(e, r.lookup); err != nil {
		r.t.Fatalf("setup event %s not allowed: %v", e, err)
	}
	if err := CheckAuthEvents(e, r.authEventsOf(e)); err != nil {
		r.t.Fatalf("setup event %s has bad auth events: %v", e, err)
	}
	return r.apply(e)
}

func (r *testRoom) send(sender, typ, stateKey, content string) *Event {
	r.t.Helper()
	return r.sendEvent(r.build(sender, typ, stateKey, content))
}

func memberContent(membership, extra string) string {
	return `{"membership":"` + membership + `"` + extra + `}`
}

// member sends a member event; extra is appended inside the content object.
func (r *testRoom) member(sender, target, membership, extra string) *Event {
	r.t.Helper()
	return r.send(sender, "m.room.member", target, memberContent(membership, extra))
}

// powerLevels sends a power_levels event from alice with the given extra
// content members; in v11 alice is given 100, in v12 she is a creator.
func (r *testRoom) powerLevels(users string, extra ...string) *Event {
	r.t.Helper()
	return r.send(alice, "m.room.power_levels", "", r.plContent(users, extra...))
}

func (r *testRoom) plContent(users string, extra ...string) string {
	entries := []string{}
	if r.version != V12 {
		entries = append(entries, `"ALICE":100`)
	}
	if users != "" {
		entries = append(entries, users)
	}
	parts := append([]string{`"users":{` + strings.Join(entries, ",") + `}`}, extra...)
	return "{" + strings.Join(parts, ",") + "}"
}

// joinRule sets the join rule.
func (r *testRoom) joinRule(rule string) {
	r.t.Helper()
	r.send(alice, "m.room.join_rules", "", `{"join_rule":"`+rule+`"}`)
}

// join invites (if the rule needs it) and joins user.
func (r *testRoom) join(user string) {
	r.t.Helper()
	rule, _ := r.state[joinRulesKey].content.getString("join_rule")
	if rule != "public" {
		r.member(alice, user, "invite", "")
	}
	r.member(user, user, "join", "")
}

func (r *testRoom) authEventsOf(e *Event) []*Event {
	byID := map[string]*Event{}
	for _, ev := range r.state {
		byID[ev.ID()] = ev
	}
	var out []*Event
	for _, id := range e.AuthEvents() {
		out = append(out, byID[id])
	}
	return out
}

func mustParse(t testing.TB, raw string, version string) *Event {
	t.Helper()
	e, err := ParseEvent([]byte(raw), version)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return e
}

// editJSON decodes an event's JSON, lets edit change it, and re-encodes it.
func editJSON(t testing.TB, raw []byte, edit func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	out, err := MarshalCanonical(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
