package dag_test

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-p2p/parley/node/dag"
	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/rooms"
)

// These tests run the engine on a real Badger store in a temporary
// directory and no network: events are built by hand, signed by several
// fake servers, and fed to the engine as a peer would hand them over.

// server is a homeserver in a test: a deterministic key (so a failure
// reproduces) and the users on it.
type server struct {
	name string
	key  ed25519.PrivateKey
}

func newServer(label string) server {
	seed := sha256.Sum256([]byte("parley dag test server " + label))
	key := ed25519.NewKeyFromSeed(seed[:])
	return server{name: rooms.ServerName(key.Public().(ed25519.PublicKey)), key: key}
}

func (s server) user(local string) string { return "@" + local + ":" + s.name }

var (
	serverA = newServer("A")
	serverB = newServer("B")
	serverC = newServer("C")
	serverE = newServer("E")
	// serverL is the engine's own server in tests of local events.
	serverL = newServer("L")

	alice  = serverA.user("alice") // creates the room
	bob    = serverB.user("bob")   // a moderator (level 50)
	dave   = serverB.user("dave")  // on bob's server, level 0
	carol  = serverC.user("carol") // level 0
	carol2 = serverC.user("carol2")
	eve    = serverE.user("eve") // never invited
)

var servers = map[string]server{
	serverA.name: serverA, serverB.name: serverB, serverC.name: serverC,
	serverE.name: serverE, serverL.name: serverL,
}

// branch builds a line of events: each one follows the branch's tip,
// cites the auth events the selection rules pick from the branch's state,
// and is signed by its sender's server. It checks nothing: the engine
// does. Forks share the clock, so timestamps never repeat.
type branch struct {
	t       testing.TB
	version string
	roomID  string
	create  *rooms.Event
	tips    []*rooms.Event
	state   map[rooms.StateKey]*rooms.Event
	depth   int64
	clock   *int64
}

// roomCount gives each room its own clock, so no two rooms share a create
// event (a v12 room's ID is its create event's hash).
var roomCount atomic.Int64

// newBranch starts a room: alice's create event.
func newBranch(t testing.TB, version string) *branch {
	t.Helper()
	clock := 1_700_000_000_000 + roomCount.Add(1)*1_000_000
	b := &branch{t: t, version: version, state: map[rooms.StateKey]*rooms.Event{}, clock: &clock}
	p := rooms.ProtoEvent{
		Sender: alice, Type: "m.room.create", StateKey: rooms.NewStateKey(""),
		Content:    json.RawMessage(`{"room_version":"` + version + `"}`),
		PrevEvents: []string{}, AuthEvents: []string{}, Depth: 1, OriginServerTS: b.tick(),
	}
	if version == rooms.V10 {
		p.Content = json.RawMessage(`{"room_version":"10","creator":"` + alice + `"}`)
	}
	if rooms.RoomIDHasServer(version) {
		p.RoomID = fmt.Sprintf("!r%d:%s", clock, serverA.name)
	}
	create, err := rooms.Build(p, version, serverA.name, serverA.key)
	if err != nil {
		t.Fatalf("build create: %v", err)
	}
	b.roomID, b.create = create.RoomID(), create
	b.advance(create)
	return b
}

func (b *branch) tick() int64 { *b.clock++; return *b.clock }

// proto prepares an event on the branch's tip. stateKey "-" means a
// message-like event; content is JSON with the names ALICE, BOB, CAROL2,
// CAROL, DAVE and EVE replaced by the user IDs.
func (b *branch) proto(sender, typ, stateKey, content string) rooms.ProtoEvent {
	p := rooms.ProtoEvent{
		RoomID: b.roomID, Sender: sender, Type: typ, Content: json.RawMessage(expand(content)),
		PrevEvents: []string{}, AuthEvents: []string{}, Depth: b.depth + 1, OriginServerTS: b.tick(),
	}
	for _, tip := range b.tips {
		p.PrevEvents = append(p.PrevEvents, tip.ID())
	}
	if stateKey != "-" {
		p.StateKey = rooms.NewStateKey(expand(stateKey))
	}
	for _, k := range rooms.AuthEventKeys(p, b.version) {
		if ev := b.state[k]; ev != nil {
			p.AuthEvents = append(p.AuthEvents, ev.ID())
		}
	}
	return p
}

// sign builds a prepared event, signed by its sender's server.
func (b *branch) sign(p rooms.ProtoEvent) *rooms.Event {
	b.t.Helper()
	srv, err := rooms.ServerOf(p.Sender)
	if err != nil {
		b.t.Fatal(err)
	}
	ev, err := rooms.Build(p, b.version, srv, servers[srv].key)
	if err != nil {
		b.t.Fatalf("build %s: %v", p.Type, err)
	}
	return ev
}

// build makes an event on the branch's tip without moving the branch:
// for events the engine is to refuse.
func (b *branch) build(sender, typ, stateKey, content string) *rooms.Event {
	b.t.Helper()
	return b.sign(b.proto(sender, typ, stateKey, content))
}

// add makes an event on the branch's tip and moves the branch to it.
func (b *branch) add(sender, typ, stateKey, content string) *rooms.Event {
	b.t.Helper()
	ev := b.build(sender, typ, stateKey, content)
	b.advance(ev)
	return ev
}

func (b *branch) advance(ev *rooms.Event) {
	b.tips = []*rooms.Event{ev}
	b.depth = max(b.depth, ev.Depth())
	if ev.IsState() {
		b.state[ev.Key()] = ev
	}
}

func (b *branch) msg(sender, body string) *rooms.Event {
	b.t.Helper()
	return b.add(sender, "m.room.message", "-", `{"msgtype":"m.text","body":"`+body+`"}`)
}

func (b *branch) member(sender, target, membership string) *rooms.Event {
	b.t.Helper()
	return b.add(sender, "m.room.member", target, `{"membership":"`+membership+`"}`)
}

// fork is a second branch from the same tip and state.
func (b *branch) fork() *branch {
	c := *b
	c.tips = slices.Clone(b.tips)
	c.state = maps.Clone(b.state)
	return &c
}

// merge makes the branch's next event follow both its tip and other's;
// state is the state the merged branch is to cite auth events from.
func (b *branch) merge(other *branch, state map[rooms.StateKey]*rooms.Event) {
	b.tips = append(b.tips, other.tips...)
	b.depth = max(b.depth, other.depth)
	b.state = state
}

func expand(s string) string {
	return strings.NewReplacer("ALICE", alice, "BOB", bob, "CAROL2", carol2, "CAROL", carol, "DAVE", dave, "EVE", eve).Replace(s)
}

// powerLevels is the room's power levels with bob at the given level
// (50 makes him a moderator), alice 100 in v11 (in v12 she is the
// creator, above every level).
func powerLevels(version string, bobLevel int) string {
	return powerLevelsFor(version, fmt.Sprintf(`"BOB":%d`, bobLevel))
}

// powerLevelsFor is the room's power levels with the given users
// entries, plus alice's in v11.
func powerLevelsFor(version, users string) string {
	if version != rooms.V12 {
		users = `"ALICE":100,` + users
	}
	return `{"users":{` + users + `},"users_default":0,"events_default":0,"state_default":50,"ban":50,"kick":50,"redact":50,"invite":0}`
}

// setupRoom is a room alice made: her join, power levels, an invite-only
// join rule, a topic, and bob, carol, carol2 and dave invited and joined.
// It returns the branch and the events in order.
func setupRoom(t testing.TB, version string) (*branch, []*rooms.Event) {
	t.Helper()
	b := newBranch(t, version)
	evs := []*rooms.Event{b.create, b.member(alice, alice, "join")}
	evs = append(evs,
		b.add(alice, "m.room.power_levels", "", powerLevels(version, 50)),
		b.add(alice, "m.room.join_rules", "", `{"join_rule":"invite"}`),
		b.add(alice, "m.room.topic", "", `{"topic":"first"}`),
	)
	for _, u := range []string{bob, carol, carol2, dave} {
		evs = append(evs, b.member(alice, u, "invite"), b.member(u, u, "join"))
	}
	return b, evs
}

// fixture is an engine over a store in a temporary directory.
type fixture struct {
	t   testing.TB
	dir string
	cfg dag.Config
	st  *store.Store
	e   *dag.Engine
}

// newFixture opens a store and an engine whose own server is serverL.
// adjust, if set, changes the engine's config.
func newFixture(t testing.TB, adjust func(*dag.Config)) *fixture {
	t.Helper()
	f := &fixture{t: t, dir: t.TempDir(), cfg: dag.Config{Key: serverL.key}}
	if adjust != nil {
		adjust(&f.cfg)
	}
	f.open()
	t.Cleanup(f.close)
	return f
}

func (f *fixture) open() {
	f.t.Helper()
	st, err := store.Open(f.dir, store.Options{})
	if err != nil {
		f.t.Fatal(err)
	}
	f.st = st
	f.cfg.Store = st
	f.e = dag.New(f.cfg)
}

// close closes the engine and then the store; it may be called twice.
func (f *fixture) close() {
	if f.e == nil {
		return
	}
	f.e.Close()
	if err := f.st.Close(); err != nil {
		f.t.Errorf("close store: %v", err)
	}
	f.e, f.st = nil, nil
}

// reopen closes the engine and the store, opens them again and loads the
// stored rooms.
func (f *fixture) reopen() []*dag.Room {
	f.t.Helper()
	f.close()
	f.open()
	rs, err := f.e.Load()
	if err != nil {
		f.t.Fatalf("load: %v", err)
	}
	return rs
}

// room registers an empty room for the branch's room ID, as a node does
// before the first event of a room it joins arrives.
func (f *fixture) room(b *branch) *dag.Room {
	r, _ := f.e.Add(dag.NewRoom(b.roomID, b.version))
	return r
}

// admit admits events from a peer that must be accepted and stored.
func (f *fixture) admit(r *dag.Room, evs ...*rooms.Event) {
	f.t.Helper()
	for _, ev := range evs {
		out, err := f.e.Admit(r, ev, dag.Opts{})
		if err != nil {
			f.t.Fatalf("admit %s %s: %v", ev.Type(), ev.ID(), err)
		}
		if out.Rejected != nil {
			f.t.Fatalf("admit %s %s: %v", ev.Type(), ev.ID(), out.Rejected)
		}
		if err := <-out.Committed; err != nil {
			f.t.Fatalf("write %s %s: %v", ev.Type(), ev.ID(), err)
		}
	}
}

// admitted is the outcome of admitting an event from a peer, once its
// write has ended successfully.
func (f *fixture) admitted(r *dag.Room, ev *rooms.Event) *dag.Outcome {
	f.t.Helper()
	out, err := f.e.Admit(r, ev, dag.Opts{})
	if err != nil {
		f.t.Fatalf("admit %s %s: %v", ev.Type(), ev.ID(), err)
	}
	if err := <-out.Committed; err != nil {
		f.t.Fatalf("write %s %s: %v", ev.Type(), ev.ID(), err)
	}
	return out
}

// stored reads an event's record from the store itself, not the
// engine's cache; ok is false when the store does not hold it.
func (f *fixture) stored(id string) (rec *store.EventRecord, ok bool) {
	f.t.Helper()
	err := f.st.View(func(t *store.Txn) error {
		var err error
		rec, err = t.Event(id)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, false
	}
	if err != nil {
		f.t.Fatalf("read %s: %v", id, err)
	}
	return rec, true
}

// storedRoom reads the room's record from the store.
func (f *fixture) storedRoom(id string) *store.RoomRecord {
	f.t.Helper()
	var rec *store.RoomRecord
	err := f.st.View(func(t *store.Txn) error {
		var err error
		rec, err = t.Room(id)
		return err
	})
	if err != nil {
		f.t.Fatalf("read room %s: %v", id, err)
	}
	return rec
}

// stateOf names the events of a state, for comparisons.
func stateOf(evs ...*rooms.Event) store.StateMap {
	m := store.StateMap{}
	for _, ev := range evs {
		m[ev.Key()] = ev.ID()
	}
	return m
}

// ids lists event IDs.
func ids(evs ...*rooms.Event) []string {
	out := make([]string, 0, len(evs))
	for _, ev := range evs {
		out = append(out, ev.ID())
	}
	return out
}

// sameSet reports whether two lists hold the same strings in any order.
func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// waitFor waits until cond holds, or fails the test after a deadline.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
