package dag_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-p2p/parley/node/dag"
	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/rooms"
)

// fakeCodec stands in for node/e2ee: it "encrypts" by hex-encoding (hex,
// so that no content holds the user names the test helpers expand),
// keeps membership in the clear as auth needs it, and withholds the
// "key" of any content that mentions "withheld" until the test hands
// it over with SetPlain. Its Prepare sends a key share of its own
// through Engine.Send, as the real codec does.
type fakeCodec struct {
	e *dag.Engine

	mu       sync.Mutex
	prepared []string // event types Prepare was called for
	sealed   []string // event types Seal was called for
	opened   []string // event IDs Open was called for
	shares   []string // the key shares Prepare sent
}

const (
	shareType  = "org.parley.room_key"
	wrappedKey = "org.parley.encrypted"
)

func (c *fakeCodec) Sealed(evType string) bool { return evType == shareType }

func (c *fakeCodec) Prepare(ctx context.Context, r *dag.Room, sender, evType string, stateKey *string) error {
	c.mu.Lock()
	c.prepared = append(c.prepared, evType)
	c.mu.Unlock()
	// Sending takes the room's lock: were it held by the caller, this
	// would never return.
	type result struct {
		ev  *rooms.Event
		err error
	}
	done := make(chan result, 1)
	go func() {
		ev, err := c.e.Send(ctx, r, sender, shareType, nil, json.RawMessage(`{"session":"s1"}`), "", "")
		done <- result{ev, err}
	}()
	select {
	case res := <-done:
		if res.err != nil {
			return res.err
		}
		c.mu.Lock()
		c.shares = append(c.shares, res.ev.ID())
		c.mu.Unlock()
		return nil
	case <-time.After(10 * time.Second):
		return errors.New("fake codec: Prepare ran under the room's lock")
	}
}

// seals reports whether the fake encrypts events of a type.
func seals(evType string, stateKey *string) bool {
	if stateKey == nil {
		return true
	}
	return evType == "m.room.name" || evType == "m.room.topic" || evType == "m.room.member"
}

// wrap is the fake's encryption.
func wrap(evType string, stateKey *string, content json.RawMessage) (string, json.RawMessage) {
	inner := content
	if stateKey == nil {
		inner, _ = json.Marshal(map[string]any{"type": evType, "content": content})
		evType = "m.room.encrypted"
	}
	wire := map[string]any{wrappedKey: hex.EncodeToString(inner)}
	var kept struct {
		Membership string `json:"membership"`
	}
	if json.Unmarshal(content, &kept) == nil && kept.Membership != "" && stateKey != nil {
		wire["membership"] = kept.Membership
	}
	b, _ := rooms.MarshalCanonical(wire)
	return evType, b
}

func plainJSON(evType string, content json.RawMessage) []byte {
	b, _ := json.Marshal(dag.Plain{Type: evType, Content: content})
	return b
}

func (c *fakeCodec) Seal(r *dag.Room, sender, evType string, stateKey *string, content json.RawMessage) (string, json.RawMessage, []byte, error) {
	c.mu.Lock()
	c.sealed = append(c.sealed, evType)
	c.mu.Unlock()
	if !seals(evType, stateKey) {
		return evType, content, nil, nil
	}
	wireType, wire := wrap(evType, stateKey, content)
	return wireType, wire, plainJSON(evType, content), nil
}

func (c *fakeCodec) Open(r *dag.Room, ev *rooms.Event) []byte {
	c.mu.Lock()
	c.opened = append(c.opened, ev.ID())
	c.mu.Unlock()
	return unwrap(ev)
}

// unwrap is the fake's decryption, ignoring withheld keys.
func unwrap(ev *rooms.Event) []byte {
	var wire map[string]json.RawMessage
	if json.Unmarshal(ev.Content(), &wire) != nil || wire[wrappedKey] == nil {
		return nil
	}
	var h string
	json.Unmarshal(wire[wrappedKey], &h)
	inner, err := hex.DecodeString(h)
	if err != nil || strings.Contains(string(inner), "withheld") {
		return nil
	}
	if ev.StateKey() != nil {
		return plainJSON(ev.Type(), inner)
	}
	var p dag.Plain
	if json.Unmarshal(inner, &p) != nil {
		return nil
	}
	return plainJSON(p.Type, p.Content)
}

func (c *fakeCodec) calls() (prepared, sealed, opened, shares []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.prepared), slices.Clone(c.sealed), slices.Clone(c.opened), slices.Clone(c.shares)
}

// newCodecFixture is a fixture whose engine has the fake codec.
func newCodecFixture(t *testing.T, adjust func(*dag.Config)) (*fixture, *fakeCodec) {
	t.Helper()
	c := &fakeCodec{}
	f := newFixture(t, func(cfg *dag.Config) {
		cfg.Codec = c
		if adjust != nil {
			adjust(cfg)
		}
	})
	c.e = f.e
	return f, c
}

// sealedMsg is a message from a peer, encrypted as the fake does.
func (b *branch) sealedMsg(sender, body string) *rooms.Event {
	content, _ := json.Marshal(map[string]string{"msgtype": "m.text", "body": body})
	typ, wire := wrap("m.room.message", nil, content)
	return b.add(sender, typ, "-", string(wire))
}

// sealedState is a state event from a peer, encrypted as the fake does.
func (b *branch) sealedState(sender, typ, content string) *rooms.Event {
	empty := ""
	_, wire := wrap(typ, &empty, json.RawMessage(content))
	return b.add(sender, typ, "", string(wire))
}

// plainOf decodes a record's Plain; the zero Plain if it has none.
func plainOf(t *testing.T, rec *store.EventRecord) dag.Plain {
	t.Helper()
	if len(rec.Plain) == 0 {
		return dag.Plain{}
	}
	p, err := dag.DecodePlain(rec.Plain)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// wireHas reports whether an event's content, as stored, holds s.
func wireHas(ev *rooms.Event, s string) bool { return strings.Contains(string(ev.Content()), s) }

// TestLocalEventsAreSealedWithTheirPlainKept: a new room's steps and a
// local user's events go into the DAG sealed, their records keep the
// plain view, the create event is left as it is, Prepare runs before a
// local event outside the room's lock (its key share is the event's
// ancestor) and never for the codec's own events or a retried
// transaction, and the plain views survive a restart.
func TestLocalEventsAreSealedWithTheirPlainKept(t *testing.T) {
	f, c := newCodecFixture(t, nil)
	owner := serverL.user("owner")
	r, err := f.e.CreateRoom(rooms.V12, owner, []byte(`{"room_version":"12"}`), []dag.Step{
		{Type: "m.room.member", StateKey: owner, Content: []byte(`{"displayname":"Owner Name","membership":"join"}`)},
		{Type: "m.room.power_levels", Content: []byte(`{"users_default":0,"state_default":50}`)},
		{Type: "m.room.name", Content: []byte(`{"name":"secret name"}`)},
	})
	if err != nil {
		t.Fatal(err)
	}
	prepared, sealed, opened, _ := c.calls()
	if len(opened) != 0 {
		t.Errorf("local events were opened: %v", opened)
	}
	if len(prepared) != 0 {
		t.Errorf("Prepare was called for %v during CreateRoom", prepared)
	}
	if want := []string{"m.room.member", "m.room.power_levels", "m.room.name"}; !slices.Equal(sealed, want) {
		t.Errorf("Seal was called for %v, want the steps %v", sealed, want)
	}
	state := r.State()
	create, _ := f.e.Event(dag.CreateEventID(r))
	if wireHas(create.Event, wrappedKey) || create.Rec.Plain != nil {
		t.Errorf("the create event was sealed: %s", create.Event.Content())
	}
	name, _ := f.e.Event(state[rooms.StateKey{Type: "m.room.name"}])
	if wireHas(name.Event, "secret name") || !wireHas(name.Event, wrappedKey) {
		t.Errorf("the room name is in the clear in the DAG: %s", name.Event.Content())
	}
	member, _ := f.e.Event(state[rooms.StateKey{Type: "m.room.member", StateKey: owner}])
	if wireHas(member.Event, "Owner Name") || member.Event.Membership() != "join" {
		t.Errorf("the member event's wire content: %s", member.Event.Content())
	}

	msg, err := f.e.Send(t.Context(), r, owner, "m.room.message", nil, []byte(`{"body":"secret body","msgtype":"m.text"}`), "txn1", "dev")
	if err != nil {
		t.Fatal(err)
	}
	if msg.Type() != "m.room.encrypted" || wireHas(msg, "secret body") {
		t.Errorf("the message went into the DAG as %s %s", msg.Type(), msg.Content())
	}
	prepared, _, _, shares := c.calls()
	if !slices.Equal(prepared, []string{"m.room.message"}) {
		t.Errorf("Prepare was called for %v, want the message only (not its key share)", prepared)
	}
	if len(shares) != 1 || !slices.Contains(msg.PrevEvents(), shares[0]) {
		t.Errorf("the key share %v is not the message's prev event %v", shares, msg.PrevEvents())
	}
	again, err := f.e.Send(t.Context(), r, owner, "m.room.message", nil, []byte(`{"body":"secret body","msgtype":"m.text"}`), "txn1", "dev")
	if err != nil || again.ID() != msg.ID() {
		t.Fatalf("retried transaction: %v %v", again, err)
	}
	if prepared, _, _, _ := c.calls(); len(prepared) != 1 {
		t.Errorf("a retried transaction was prepared again: %v", prepared)
	}

	want := map[string]dag.Plain{
		name.Event.ID():   {Type: "m.room.name", Content: json.RawMessage(`{"name":"secret name"}`)},
		member.Event.ID(): {Type: "m.room.member", Content: json.RawMessage(`{"displayname":"Owner Name","membership":"join"}`)},
		msg.ID():          {Type: "m.room.message", Content: json.RawMessage(`{"body":"secret body","msgtype":"m.text"}`)},
	}
	check := func(when string) {
		for id, w := range want {
			rec, ok := f.stored(id)
			if !ok {
				t.Fatalf("%s: %s is not stored", when, id)
			}
			if got := plainOf(t, rec); got.Type != w.Type || string(got.Content) != string(w.Content) || got.Status != "" {
				t.Errorf("%s: stored plain of %s is %+v, want %+v", when, w.Type, got, w)
			}
			i, err := f.e.Event(id)
			if err != nil || string(i.Rec.Plain) != string(rec.Plain) {
				t.Errorf("%s: the engine's record of %s has plain %s, the store's %s", when, w.Type, i.Rec.Plain, rec.Plain)
			}
		}
		share, _ := f.stored(shares[0])
		if share.Plain != nil {
			t.Errorf("%s: the key share has a plain view %s", when, share.Plain)
		}
	}
	check("before restarting")
	f.reopen()
	check("after restarting")
}

// TestPeerEventsAreOpened: every event a room admits from a peer is
// opened, in the timeline, as an outlier or as history, and what Open
// returns is its record's plain view; a local event is not opened.
func TestPeerEventsAreOpened(t *testing.T) {
	f, c := newCodecFixture(t, nil)
	b, evs := setupRoom(t, rooms.V12)
	r := f.room(b)
	// The setup as outliers (a join's auth chain and state), with a
	// sealed topic among them.
	topic := b.sealedState(alice, "m.room.topic", `{"topic":"secret topic"}`)
	evs = append(evs, topic)
	if err := f.e.StoreOutliers(r, evs); err != nil {
		t.Fatal(err)
	}
	missed := []*rooms.Event{b.sealedMsg(carol, "history one"), b.sealedMsg(carol, "history two")}
	latest := b.sealedMsg(carol, "live")
	out, err := f.e.Admit(r, latest, dag.Opts{StateBefore: stateOf(mapValues(b.state)...)})
	if err != nil || out.Rejected != nil {
		t.Fatalf("admit: %v %v", err, out)
	}
	<-out.Committed
	withheld := b.sealedMsg(bob, "withheld key")
	clear := b.msg(bob, "in the clear")
	f.admit(r, withheld, clear)
	if _, err := f.e.PlaceHistory(r, []*rooms.Event{missed[1], missed[0]}); err != nil {
		t.Fatal(err)
	}

	_, _, opened, _ := c.calls()
	for _, ev := range append(slices.Clone(evs), latest, withheld, clear, missed[0], missed[1]) {
		if !slices.Contains(opened, ev.ID()) {
			t.Errorf("%s %s was not opened", ev.Type(), ev.ID())
		}
	}
	cases := []struct {
		name string
		ev   *rooms.Event
		want dag.Plain
	}{
		{"a sealed outlier", topic, dag.Plain{Type: "m.room.topic", Content: json.RawMessage(`{"topic":"secret topic"}`)}},
		{"a sealed live message", latest, dag.Plain{Type: "m.room.message", Content: json.RawMessage(`{"body":"live","msgtype":"m.text"}`)}},
		{"sealed history", missed[0], dag.Plain{Type: "m.room.message", Content: json.RawMessage(`{"body":"history one","msgtype":"m.text"}`)}},
		{"a message whose key has not come", withheld, dag.Plain{}},
		{"a message in the clear", clear, dag.Plain{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec, ok := f.stored(tc.ev.ID())
			if !ok {
				t.Fatal("not stored")
			}
			if got := plainOf(t, rec); got.Type != tc.want.Type || string(got.Content) != string(tc.want.Content) {
				t.Errorf("plain %+v, want %+v", got, tc.want)
			}
		})
	}

}

func mapValues[K comparable, V any](m map[K]V) []V {
	out := make([]V, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// TestSetPlainRedeliversAnEvent: a plain view that comes late is stored
// with the event, and the event is redelivered at a new stream position
// that moves the room's, wakes its members, and survives a restart; a
// second SetPlain with the same view changes nothing, and an outlier
// gets its view without a redelivery.
func TestSetPlainRedeliversAnEvent(t *testing.T) {
	var commits atomic.Int64
	f, _ := newCodecFixture(t, func(cfg *dag.Config) {
		cfg.OnCommitted = func(*dag.Room) { commits.Add(1) }
	})
	b, evs := setupRoom(t, rooms.V12)
	r := f.room(b)
	f.admit(r, evs...)
	withheld := b.sealedMsg(bob, "withheld key")
	f.admit(r, withheld, b.msg(bob, "after it"))
	posBefore := r.Pos()
	first, _ := f.e.Event(withheld.ID())
	firstPos := first.Pos()
	waitFor(t, "the commits to be heard", func() bool { return commits.Load() == int64(len(evs)+2) })

	content := json.RawMessage(`{"body":"withheld key","msgtype":"m.text"}`)
	plain := plainJSON("m.room.message", content)
	if err := f.e.SetPlain(r, withheld.ID(), plain); err != nil {
		t.Fatal(err)
	}
	if r.Pos() <= posBefore {
		t.Fatalf("room position %d did not move past %d", r.Pos(), posBefore)
	}
	waitFor(t, "OnCommitted to hear of the redelivery", func() bool { return commits.Load() == int64(len(evs)+3) })
	redeliveries := func() []store.TimelineEntry {
		var out []store.TimelineEntry
		if err := f.st.View(func(tx *store.Txn) error {
			var err error
			out, err = tx.Redeliveries(r.ID, 0, f.st.Pos(), 0)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	rd := redeliveries()
	if len(rd) != 1 || rd[0].EventID != withheld.ID() || rd[0].Order != store.LiveBase+r.Pos() {
		t.Fatalf("redeliveries %+v, want the event at the room's position %d", rd, r.Pos())
	}
	if rec, _ := f.stored(withheld.ID()); string(rec.Plain) != string(plain) || rec.Pos != firstPos {
		t.Errorf("stored record: plain %s at %d, want %s at its first position %d", rec.Plain, rec.Pos, plain, firstPos)
	}
	if i, _ := f.e.Event(withheld.ID()); string(i.Rec.Plain) != string(plain) {
		t.Errorf("the engine's record has plain %s", i.Rec.Plain)
	}

	// The same view again: nothing to do.
	pos := r.Pos()
	if err := f.e.SetPlain(r, withheld.ID(), plain); err != nil || r.Pos() != pos || len(redeliveries()) != 1 {
		t.Errorf("a second SetPlain: %v, position %d (was %d), %d redeliveries", err, r.Pos(), pos, len(redeliveries()))
	}

	// A later event's write keeps the room's redelivery position.
	f.admit(r, b.msg(bob, "later still"))
	if rec := f.storedRoom(r.ID); rec.Redelivered != pos || rec.Pos != r.Pos() {
		t.Errorf("room record redelivered %d pos %d, want %d and %d", rec.Redelivered, rec.Pos, pos, r.Pos())
	}

	// An outlier gets its view, and is not redelivered.
	outlier := b.sealedState(alice, "m.room.topic", `{"topic":"withheld topic"}`)
	if err := f.e.StoreOutliers(r, []*rooms.Event{outlier}); err != nil {
		t.Fatal(err)
	}
	if err := f.e.SetPlain(r, outlier.ID(), plainJSON("m.room.topic", json.RawMessage(`{"topic":"withheld topic"}`))); err != nil {
		t.Fatal(err)
	}
	if rec, _ := f.stored(outlier.ID()); rec.Plain == nil || len(redeliveries()) != 1 {
		t.Errorf("outlier: plain %s, %d redeliveries", rec.Plain, len(redeliveries()))
	}

	// An event of another room is refused.
	other := newBranch(t, rooms.V12)
	if err := f.e.SetPlain(r, other.create.ID(), plain); err == nil {
		t.Error("SetPlain of an event the node does not hold succeeded")
	}

	posAfter := r.Pos()
	loaded := f.reopen()
	r = loadedRoom(t, loaded, r.ID)
	if r.Pos() != posAfter {
		t.Errorf("after restarting the room is at %d, was %d", r.Pos(), posAfter)
	}
	if i, err := f.e.Event(withheld.ID()); err != nil || string(i.Rec.Plain) != string(plain) {
		t.Errorf("after restarting the plain view is %s (%v)", i.Rec.Plain, err)
	}
	if rd := redeliveries(); len(rd) != 1 || rd[0].EventID != withheld.ID() {
		t.Errorf("after restarting, redeliveries %+v", rd)
	}
}

func loadedRoom(t *testing.T, rs []*dag.Room, id string) *dag.Room {
	t.Helper()
	for _, r := range rs {
		if r.ID == id {
			return r
		}
	}
	t.Fatalf("room %s was not loaded", id)
	return nil
}
