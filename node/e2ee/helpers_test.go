package e2ee

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-p2p/parley/internal/testkit"
	"github.com/parley-p2p/parley/node/dag"
	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/rooms"
)

// These tests run real keepers over real engines and real Badger stores
// in temporary directories, and no network: every event a node builds
// goes in a shared log (the engine's Publish hook), and a test hands
// other nodes the events it chooses, in the order it chooses, as gossip
// would. A delivered event is admitted and then opened, as the engine
// does once it is wired to a codec.

// tnet is the shared log of every event the nodes built.
type tnet struct {
	mu  sync.Mutex
	log []*rooms.Event
}

func (n *tnet) add(ev *rooms.Event) {
	n.mu.Lock()
	n.log = append(n.log, ev)
	n.mu.Unlock()
}

func (n *tnet) events() []*rooms.Event {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]*rooms.Event(nil), n.log...)
}

// tnode is one node: store, engine and keeper.
type tnode struct {
	t    testing.TB
	name string
	user string // its user
	key  ed25519.PrivateKey
	net  *tnet
	st   *store.Store
	e    *dag.Engine
	k    *Keeper
	vis  func(roomID, eventID, server string) bool
	dir  string

	mu    sync.Mutex
	plain map[string][]byte // event ID -> what its clients are shown
	late  map[string]int    // event ID -> SetPlain calls
}

func newNode(t testing.TB, net *tnet, label string) *tnode {
	t.Helper()
	seed := sha256.Sum256([]byte("parley e2ee test " + label))
	key := ed25519.NewKeyFromSeed(seed[:])
	name := rooms.ServerName(key.Public().(ed25519.PublicKey))
	n := &tnode{t: t, name: name, user: "@" + label + ":" + name, key: key, net: net,
		plain: map[string][]byte{}, late: map[string]int{}}
	n.dir = t.TempDir()
	n.open()
	t.Cleanup(n.close)
	return n
}

func (n *tnode) open() {
	t := n.t
	st, err := store.Open(n.dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	n.st = st
	n.e = dag.New(dag.Config{Store: st, Key: n.key, Publish: func(_ *dag.Room, ev *rooms.Event) { n.net.add(ev) }})
	if _, err := n.e.Load(); err != nil {
		t.Fatal(err)
	}
	n.k, err = New(Config{
		Store: st, Key: n.key,
		Visible: func(roomID, eventID, server string) bool {
			if n.vis == nil {
				return true
			}
			return n.vis(roomID, eventID, server)
		},
		SetPlain: func(_ *dag.Room, id string, plain []byte) error {
			n.mu.Lock()
			n.plain[id] = plain
			n.late[id]++
			n.mu.Unlock()
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	n.k.Attach(n.e)
}

// close closes the keeper, the engine and the store; twice is harmless.
func (n *tnode) close() {
	if n.st == nil {
		return
	}
	n.k.Close()
	n.e.Close()
	n.st.Close()
	n.st = nil
}

// restart closes the node and opens it again on the same store.
func (n *tnode) restart() {
	n.close()
	n.open()
}

// createRoom makes a room whose only member is the node's user, with
// the given history visibility; invites need power 0.
func (n *tnode) createRoom(hv string) *dag.Room {
	n.t.Helper()
	join, err := n.k.withKEM("m.room.member", &n.user, json.RawMessage(`{"membership":"join"}`))
	if err != nil {
		n.t.Fatal(err)
	}
	r, err := n.e.CreateRoom(rooms.V12, n.user, json.RawMessage(`{"room_version":"12"}`), []dag.Step{
		{Type: "m.room.member", StateKey: n.user, Content: join},
		{Type: "m.room.power_levels", Content: json.RawMessage(`{"ban":50,"events_default":0,"invite":0,"kick":50,"redact":50,"state_default":50,"users_default":0}`)},
		{Type: "m.room.join_rules", Content: json.RawMessage(`{"join_rule":"invite"}`)},
		{Type: "m.room.history_visibility", Content: json.RawMessage(`{"history_visibility":"` + hv + `"}`)},
	})
	if err != nil {
		n.t.Fatal(err)
	}
	// CreateRoom publishes nothing: the room's first events go in the
	// log from the store, in timeline order.
	err = n.st.View(func(t *store.Txn) error {
		page, err := t.Timeline(r.ID, 0, 0, true, 0)
		if err != nil {
			return err
		}
		for _, e := range page {
			rec, err := t.Event(e.EventID)
			if err != nil {
				return err
			}
			ev, err := rooms.ParseTrusted(rec.PDU, rec.Version, e.EventID)
			if err != nil {
				return err
			}
			n.net.add(ev)
		}
		return nil
	})
	if err != nil {
		n.t.Fatal(err)
	}
	return r
}

// send sends an event as the engine does with a codec: Prepare, Seal,
// build.
func (n *tnode) send(r *dag.Room, sender, typ string, stateKey *string, content string) *rooms.Event {
	n.t.Helper()
	ev, err := n.trySend(r, sender, typ, stateKey, content)
	if err != nil {
		n.t.Fatalf("%s sends %s: %v", n.user, typ, err)
	}
	return ev
}

func (n *tnode) trySend(r *dag.Room, sender, typ string, stateKey *string, content string) (*rooms.Event, error) {
	ctx := context.Background()
	if err := n.k.Prepare(ctx, r, sender, typ, stateKey); err != nil {
		return nil, err
	}
	wt, wire, plain, err := n.k.Seal(r, sender, typ, stateKey, json.RawMessage(content))
	if err != nil {
		return nil, err
	}
	ev, err := n.e.Send(ctx, r, sender, wt, stateKey, wire, "", "")
	if err != nil {
		return nil, err
	}
	n.mu.Lock()
	n.plain[ev.ID()] = plain
	n.mu.Unlock()
	return ev, nil
}

func (n *tnode) msg(r *dag.Room, body string) *rooms.Event {
	n.t.Helper()
	return n.send(r, n.user, "m.room.message", nil, `{"msgtype":"m.text","body":"`+body+`"}`)
}

func (n *tnode) member(r *dag.Room, target, membership string) *rooms.Event {
	n.t.Helper()
	return n.send(r, n.user, "m.room.member", &target, `{"membership":"`+membership+`"}`)
}

// room is the node's copy of a room, registered empty if it has none.
func (n *tnode) room(id string) *dag.Room {
	if r := n.e.Room(id); r != nil {
		return r
	}
	r, _ := n.e.Add(dag.NewRoom(id, rooms.V12))
	return r
}

// deliver admits, in log order, every event of the log the node does
// not hold yet (but those skip refuses), and opens each.
func (n *tnode) deliver(skip func(*rooms.Event) bool) {
	n.t.Helper()
	// Publish order is not always causal order: an event built on one
	// whose write is still in flight (a handover sent by a background
	// job) may be published first. Each pass admits the events whose
	// parents are held, and waits for the log to grow when none is.
	testkit.WaitFor(n.t, 10*time.Second, n.user+" to hold every published event", func() bool {
		for {
			progress, left := false, false
			for _, ev := range n.net.events() {
				if n.e.Known(ev.ID()) || (skip != nil && skip(ev)) {
					continue
				}
				if !n.holds(ev.PrevEvents()) || !n.holds(ev.AuthEvents()) {
					left = true
					continue
				}
				n.admit(ev)
				progress = true
			}
			if !left {
				return true
			}
			if !progress {
				return false
			}
		}
	})
}

func (n *tnode) holds(ids []string) bool {
	for _, id := range ids {
		if !n.e.Known(id) {
			return false
		}
	}
	return true
}

func (n *tnode) admit(ev *rooms.Event) {
	n.t.Helper()
	r := n.room(ev.RoomID())
	out, err := n.e.Admit(r, ev, dag.Opts{})
	if err != nil {
		n.t.Fatalf("%s admits %s %s: %v", n.user, ev.Type(), ev.ID(), err)
	}
	if err := <-out.Committed; err != nil {
		n.t.Fatal(err)
	}
	if plain := n.k.Open(r, ev); plain != nil {
		n.mu.Lock()
		n.plain[ev.ID()] = plain
		n.mu.Unlock()
	}
}

// shown is what the node's clients see of an event: its decrypted
// Plain, or nil.
func (n *tnode) shown(id string) *dag.Plain {
	n.mu.Lock()
	defer n.mu.Unlock()
	b := n.plain[id]
	if b == nil {
		return nil
	}
	var p dag.Plain
	if err := json.Unmarshal(b, &p); err != nil {
		n.t.Fatal(err)
	}
	return &p
}

// body is the body the node's clients are shown for a message, or "".
func (n *tnode) body(id string) string {
	p := n.shown(id)
	if p == nil || p.Status != "" {
		return ""
	}
	var c struct {
		Body string `json:"body"`
	}
	json.Unmarshal(p.Content, &c)
	return c.Body
}

func (n *tnode) sessionID(r *dag.Room) string {
	n.k.mu.Lock()
	defer n.k.mu.Unlock()
	if o := n.k.outs[r.ID]; o != nil {
		return o.id
	}
	return ""
}

// waitLog waits until the log holds an event that cond accepts.
func waitLog(t testing.TB, net *tnet, what string, cond func(*rooms.Event) bool) *rooms.Event {
	t.Helper()
	var found *rooms.Event
	testkit.WaitFor(t, 10*time.Second, what, func() bool {
		for _, ev := range net.events() {
			if cond(ev) {
				found = ev
				return true
			}
		}
		return false
	})
	return found
}

func isHistoryFor(server string) func(*rooms.Event) bool {
	return func(ev *rooms.Event) bool {
		return ev.Type() == ShareType && strings.Contains(string(ev.Content()), `"for":"`+server+`"`)
	}
}

// joinRoom has a invite b's user and b's user join, and hands the
// events to both sides.
func joinRoom(a, b *tnode, r *dag.Room) *dag.Room {
	a.t.Helper()
	a.member(r, b.user, "invite")
	b.deliver(nil)
	rb := b.room(r.ID)
	b.send(rb, b.user, "m.room.member", &b.user, `{"membership":"join","displayname":"B secret name"}`)
	a.deliver(nil)
	return rb
}

// idle waits until the keeper has no background job left.
func (n *tnode) idle() {
	n.t.Helper()
	testkit.WaitFor(n.t, 10*time.Second, "the keeper's jobs to end", func() bool {
		n.k.mu.Lock()
		defer n.k.mu.Unlock()
		return n.k.queued == 0
	})
}
