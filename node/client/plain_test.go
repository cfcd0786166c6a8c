package client

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/parley-p2p/parley/node/dag"
	"github.com/parley-p2p/parley/node/peers"
	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/rooms"
	"github.com/parley-p2p/parley/webui"
)

// These tests run the client API over a real store and engine, with a
// fake codec in place of node/e2ee, and a peer whose events are built
// and signed here and admitted as gossip would admit them. No network:
// the room is never followed, so the peers' host is never used.

// fakeCodec "encrypts" by hex-encoding: a message becomes an
// m.room.encrypted event, a name, topic or member event keeps its type
// (and a member event its membership) with the rest wrapped. Content
// that mentions "withheld" cannot be opened until the test calls
// SetPlain; content that mentions "forged" opens as forged. Its Prepare
// sends a key share, which no client may see.
type fakeCodec struct {
	e *dag.Engine

	mu     sync.Mutex
	shares []string
}

const shareType = "org.parley.room_key"

func (c *fakeCodec) Sealed(evType string) bool { return evType == shareType }

func (c *fakeCodec) Prepare(ctx context.Context, r *dag.Room, sender, evType string, stateKey *string) error {
	if id, ok := r.State()[rooms.StateKey{Type: "m.room.member", StateKey: sender}]; !ok {
		return nil // a joiner has no session to share yet
	} else if m, _ := c.e.MembershipOf(id); m != "join" {
		return nil
	}
	ev, err := c.e.Send(ctx, r, sender, shareType, nil, json.RawMessage(`{"session":"s1"}`), "", "")
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.shares = append(c.shares, ev.ID())
	c.mu.Unlock()
	return nil
}

func fakeSeals(evType string, stateKey *string) bool {
	if stateKey == nil {
		return evType != "m.room.redaction"
	}
	return evType == "m.room.name" || evType == "m.room.topic" || evType == "m.room.member"
}

func fakeWrap(evType string, stateKey *string, content json.RawMessage) (string, json.RawMessage) {
	inner := content
	if stateKey == nil {
		inner, _ = json.Marshal(map[string]any{"type": evType, "content": content})
		evType = "m.room.encrypted"
	}
	wire := map[string]any{encryptedKey: hex.EncodeToString(inner)}
	var kept struct {
		Membership string `json:"membership"`
	}
	if stateKey != nil && json.Unmarshal(content, &kept) == nil && kept.Membership != "" {
		wire["membership"] = kept.Membership
	}
	b, _ := rooms.MarshalCanonical(wire)
	return evType, b
}

func fakePlain(evType string, content json.RawMessage, status string) []byte {
	b, _ := json.Marshal(dag.Plain{Type: evType, Content: content, Status: status})
	return b
}

func (c *fakeCodec) Seal(r *dag.Room, sender, evType string, stateKey *string, content json.RawMessage) (string, json.RawMessage, []byte, error) {
	if !fakeSeals(evType, stateKey) {
		return evType, content, nil, nil
	}
	wt, w := fakeWrap(evType, stateKey, content)
	return wt, w, fakePlain(evType, content, ""), nil
}

func (c *fakeCodec) Open(r *dag.Room, ev *rooms.Event) []byte { return fakeOpen(ev, false) }

// fakeOpen decrypts, as Open, or ignoring withheld keys.
func fakeOpen(ev *rooms.Event, keyCame bool) []byte {
	var wire map[string]json.RawMessage
	if json.Unmarshal(ev.Content(), &wire) != nil || wire[encryptedKey] == nil {
		return nil
	}
	var h string
	json.Unmarshal(wire[encryptedKey], &h)
	inner, err := hex.DecodeString(h)
	switch {
	case err != nil || (strings.Contains(string(inner), "withheld") && !keyCame):
		return nil
	case strings.Contains(string(inner), "forged"):
		return fakePlain("m.room.encrypted", nil, dag.PlainForged)
	case ev.StateKey() != nil:
		return fakePlain(ev.Type(), inner, "")
	}
	var p dag.Plain
	if json.Unmarshal(inner, &p) != nil {
		return nil
	}
	return fakePlain(p.Type, p.Content, "")
}

// e2eeRoom is a room on a node with the fake codec: alice is the
// node's user, bob a member on another server.
type e2eeRoom struct {
	t      testing.TB
	api    *API
	e      *dag.Engine
	st     *store.Store
	codec  *fakeCodec
	r      *dag.Room
	alice  *webui.Session
	bob    string
	bobKey ed25519.PrivateKey
}

func testKey(label string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("parley client test " + label))
	return ed25519.NewKeyFromSeed(seed[:])
}

func newE2EERoom(t testing.TB) *e2eeRoom { return newRoomWith(t, true) }

// newRoomWith is newE2EERoom, or, without encryption, the same room on
// a node without a codec.
func newRoomWith(t testing.TB, encrypting bool) *e2eeRoom {
	t.Helper()
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	key, bobKey := testKey("local"), testKey("bob")
	c := &fakeCodec{}
	var api *API
	cfg := dag.Config{Store: st, Key: key, OnCommitted: func(r *dag.Room) { api.Committed(r) }, OnTimeline: func(r *dag.Room, ev *rooms.Event, plain []byte, how dag.Arrival) func(*store.Txn, uint64) error {
		return api.OnTimeline(r, ev, plain, how)
	}}
	if encrypting {
		cfg.Codec = c
	}
	e := dag.New(cfg)
	c.e = e
	ps := peers.New(peers.Config{Engine: e, Store: st, Key: key})
	api = New(Config{Engine: e, Peers: ps, Store: st})
	t.Cleanup(func() {
		ps.Close()
		e.Close()
		st.Close()
	})
	alice := "@alice:" + e.ServerName()
	bob := "@bob:" + rooms.ServerName(bobKey.Public().(ed25519.PublicKey))
	r, err := e.CreateRoom(rooms.V12, alice, json.RawMessage(`{"room_version":"12"}`), []dag.Step{
		{Type: "m.room.member", StateKey: alice, Content: json.RawMessage(`{"displayname":"Alice Secretname","membership":"join"}`)},
		{Type: "m.room.power_levels", Content: json.RawMessage(`{"users_default":0,"events_default":0,"state_default":0,"redact":50,"users":{}}`)},
		{Type: "m.room.join_rules", Content: json.RawMessage(`{"join_rule":"public"}`)},
		{Type: "m.room.name", Content: json.RawMessage(`{"name":"Secret Roomname"}`)},
		{Type: "m.room.topic", Content: json.RawMessage(`{"topic":"Secret Topictext"}`)},
	})
	if err != nil {
		t.Fatal(err)
	}
	x := &e2eeRoom{t: t, api: api, e: e, st: st, codec: c, r: r, alice: &webui.Session{UserID: alice, DeviceID: "DEV"}, bob: bob, bobKey: bobKey}
	x.fromBob("m.room.member", &bob, `{"displayname":"Bob Secretname","membership":"join"}`)
	return x
}

// fromBob admits an event of bob's, built on the room's head, encrypted
// as the fake does, as if it came from bob's node.
func (x *e2eeRoom) fromBob(evType string, stateKey *string, content string) *rooms.Event {
	x.t.Helper()
	if x.e.Encrypting() && fakeSeals(evType, stateKey) {
		var wire json.RawMessage
		evType, wire = fakeWrap(evType, stateKey, json.RawMessage(content))
		content = string(wire)
	}
	p, err := x.e.Proto(x.r, x.bob, evType, stateKey, json.RawMessage(content))
	if err != nil {
		x.t.Fatal(err)
	}
	ev, err := rooms.Build(p, x.r.Version, rooms.ServerName(x.bobKey.Public().(ed25519.PublicKey)), x.bobKey)
	if err != nil {
		x.t.Fatal(err)
	}
	out, err := x.e.Admit(x.r, ev, dag.Opts{})
	if err != nil || out.Rejected != nil {
		x.t.Fatalf("admit bob's %s: %v %v", evType, err, out.Rejected)
	}
	if err := <-out.Committed; err != nil {
		x.t.Fatal(err)
	}
	return ev
}

func (x *e2eeRoom) bobSays(body string) *rooms.Event {
	return x.fromBob("m.room.message", nil, `{"body":"`+body+`","msgtype":"m.text"}`)
}

func (x *e2eeRoom) sync(since string) *webui.SyncResponse {
	x.t.Helper()
	resp, err := x.api.Sync(x.t.Context(), x.alice, webui.SyncRequest{Since: since})
	if err != nil {
		x.t.Fatal(err)
	}
	return resp
}

func (x *e2eeRoom) messages() []webui.ClientEvent {
	x.t.Helper()
	resp, err := x.api.Messages(x.t.Context(), x.alice, webui.MessagesRequest{RoomID: x.r.ID, Dir: "b", Limit: 100})
	if err != nil {
		x.t.Fatal(err)
	}
	return resp.Chunk
}

// find returns the events with the ID.
func find(evs []webui.ClientEvent, id string) []webui.ClientEvent {
	var out []webui.ClientEvent
	for _, ce := range evs {
		if ce.EventID == id {
			out = append(out, ce)
		}
	}
	return out
}

// body is a message's body as shown.
func body(ce webui.ClientEvent) string {
	var c struct {
		Body string `json:"body"`
	}
	json.Unmarshal(ce.Content, &c)
	return c.Body
}

func e2eeMark(ce webui.ClientEvent) any { return ce.Unsigned[unsignedE2EE] }

// TestClientsSeeThePlainView: wherever a client is shown an event (the
// timeline and state of /sync, /messages, /state, single events,
// members, profiles), it sees the plain view: decrypted events as they
// were sent, one waiting for its key as it is on the wire marked
// waiting, a forged one as it is on the wire marked forged, and never
// the codec's own events.
func TestClientsSeeThePlainView(t *testing.T) {
	x := newE2EERoom(t)
	mine, err := x.api.Send(t.Context(), x.alice, x.r.ID, "m.room.message", nil, json.RawMessage(`{"body":"alice secret words","msgtype":"m.text"}`), "txn1")
	if err != nil {
		t.Fatal(err)
	}
	decrypted := x.bobSays("bob secret words")
	waiting := x.bobSays("withheld secret words")
	forged := x.bobSays("forged secret words")
	if len(x.codec.shares) != 1 {
		t.Fatalf("the codec sent %d key shares, want 1", len(x.codec.shares))
	}
	share := x.codec.shares[0]

	resp := x.sync("")
	jr := resp.Rooms.Join[x.r.ID]
	if jr == nil {
		t.Fatal("the room is not in the initial sync")
	}
	tl := jr.Timeline.Events
	views := map[string][]webui.ClientEvent{"/sync": tl, "/messages": x.messages()}
	for where, evs := range views {
		t.Run("in "+where, func(t *testing.T) {
			check := func(id, wantType, wantBody string, wantMark any) {
				t.Helper()
				got := find(evs, id)
				if len(got) != 1 {
					t.Fatalf("%s shown %d times", id, len(got))
				}
				if got[0].Type != wantType || body(got[0]) != wantBody || e2eeMark(got[0]) != wantMark {
					t.Errorf("shown as %s %s %v, want %s %q %v", got[0].Type, got[0].Content, got[0].Unsigned, wantType, wantBody, wantMark)
				}
			}
			check(mine, "m.room.message", "alice secret words", nil)
			check(decrypted.ID(), "m.room.message", "bob secret words", nil)
			check(waiting.ID(), "m.room.encrypted", "", e2eeWaiting)
			check(forged.ID(), "m.room.encrypted", "", e2eeForged)
			if got := find(evs, mine); len(got) == 1 && got[0].Unsigned["transaction_id"] != "txn1" {
				t.Errorf("the sender's own event lacks its transaction ID: %v", got[0].Unsigned)
			}
			for _, ce := range evs {
				if ce.EventID == share || ce.Type == shareType {
					t.Errorf("the key share is shown: %+v", ce)
				}
			}
			raw, _ := json.Marshal(evs)
			if strings.Contains(string(raw), "forged secret words") {
				t.Error("the forged message's plaintext is shown")
			}
		})
	}

	// State, in /sync, /state and single lookups.
	state, err := x.api.State(x.alice, x.r.ID)
	if err != nil {
		t.Fatal(err)
	}
	fullState := append(slices.Clone(jr.State.Events), tl...)
	for where, evs := range map[string][]webui.ClientEvent{"/sync": fullState, "/state": state} {
		want := map[string]string{
			"m.room.name":  `{"name":"Secret Roomname"}`,
			"m.room.topic": `{"topic":"Secret Topictext"}`,
		}
		for _, ce := range evs {
			if w, ok := want[ce.Type]; ok && ce.StateKey != nil && *ce.StateKey == "" {
				if string(ce.Content) != w {
					t.Errorf("%s: %s is %s, want %s", where, ce.Type, ce.Content, w)
				}
				delete(want, ce.Type)
			}
		}
		if len(want) != 0 {
			t.Errorf("%s: no %v in the state", where, want)
		}
	}
	name, err := x.api.StateEvent(x.alice, x.r.ID, "m.room.name", "")
	if err != nil || string(name.Content) != `{"name":"Secret Roomname"}` {
		t.Errorf("the room name event: %v %v", name, err)
	}
	members, err := x.api.JoinedMembers(x.alice, x.r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if members[x.bob].DisplayName != "Bob Secretname" || members[x.alice.UserID].DisplayName != "Alice Secretname" {
		t.Errorf("joined members %+v", members)
	}
	if p, err := x.api.Profile(x.bob); err != nil || p["displayname"] != "Bob Secretname" {
		t.Errorf("bob's profile: %v %v", p, err)
	}
	if _, err := x.api.Event(x.alice, x.r.ID, share); err == nil {
		t.Error("the key share can be fetched as an event")
	}
	if ev, err := x.api.Event(x.alice, x.r.ID, decrypted.ID()); err != nil || body(*ev) != "bob secret words" {
		t.Errorf("a single event: %v %v", ev, err)
	}

	// A local user invited sees the room's name and topic decrypted.
	carol := "@carol:" + x.e.ServerName()
	if _, err := x.e.Send(t.Context(), x.r, x.alice.UserID, "m.room.member", &carol, json.RawMessage(`{"membership":"invite"}`), "", ""); err != nil {
		t.Fatal(err)
	}
	invited, err := x.api.Sync(t.Context(), &webui.Session{UserID: carol, DeviceID: "C"}, webui.SyncRequest{})
	if err != nil {
		t.Fatal(err)
	}
	ir := invited.Rooms.Invite[x.r.ID]
	if ir == nil {
		t.Fatal("carol's sync has no invite")
	}
	stripped := map[string]string{}
	for _, se := range ir.InviteState.Events {
		stripped[se.Type] = string(se.Content)
	}
	if stripped["m.room.name"] != `{"name":"Secret Roomname"}` || stripped["m.room.topic"] != `{"topic":"Secret Topictext"}` || stripped["m.room.member"] != `{"membership":"invite"}` {
		t.Errorf("carol's invite state %v", stripped)
	}

	// A redacted event shows nothing of its plain view.
	if _, err := x.api.Send(t.Context(), x.alice, x.r.ID, "m.room.redaction", nil, json.RawMessage(`{"redacts":"`+decrypted.ID()+`"}`), "txn2"); err != nil {
		t.Fatal(err)
	}
	if ev, err := x.api.Event(x.alice, x.r.ID, decrypted.ID()); err != nil || strings.Contains(string(ev.Content), "secret") || ev.Type != "m.room.encrypted" {
		t.Errorf("the redacted event is shown as %s %s (%v)", ev.Type, ev.Content, err)
	}
}

// TestALateKeyReachesSyncOnceAndMessagesOnce: when the key of an event
// shown waiting arrives, an incremental /sync since a token past the
// event delivers it once, decrypted, and the next delivers nothing; a
// /sync since a token before it shows it once, in its place; /messages
// shows it once, decrypted.
func TestALateKeyReachesSyncOnceAndMessagesOnce(t *testing.T) {
	x := newE2EERoom(t)
	before := x.sync("").NextBatch
	waiting := x.bobSays("withheld words")
	after := x.bobSays("plain words")
	token := x.sync(before).NextBatch
	if got := find(x.sync(before).Rooms.Join[x.r.ID].Timeline.Events, waiting.ID()); len(got) != 1 || e2eeMark(got[0]) != e2eeWaiting {
		t.Fatalf("before its key the event is shown as %+v", got)
	}

	// A long-poll waiting since the token is woken by the redelivery.
	woken := make(chan *webui.SyncResponse, 1)
	go func() {
		resp, err := x.api.Sync(context.Background(), x.alice, webui.SyncRequest{Since: token, Timeout: 30_000})
		if err != nil {
			t.Error(err)
		}
		woken <- resp
	}()
	if err := x.e.SetPlain(x.r, waiting.ID(), fakeOpen(waiting, true)); err != nil {
		t.Fatal(err)
	}
	resp := <-woken
	check := func(what string, resp *webui.SyncResponse) {
		t.Helper()
		jr := resp.Rooms.Join[x.r.ID]
		if jr == nil {
			t.Fatalf("%s: the room is not in the sync", what)
		}
		got := find(jr.Timeline.Events, waiting.ID())
		if len(got) != 1 || got[0].Type != "m.room.message" || body(got[0]) != "withheld words" || e2eeMark(got[0]) != nil {
			t.Fatalf("%s: the event is shown as %+v", what, got)
		}
	}
	check("the long-poll since a token past the event", resp)
	if got := find(resp.Rooms.Join[x.r.ID].Timeline.Events, after.ID()); len(got) != 0 {
		t.Errorf("an event the client had is delivered again: %+v", got)
	}
	// The same sync built again gives the same answer.
	check("a sync since a token past the event", x.sync(token))

	// Nothing new after the redelivery.
	quiet, err := x.api.Sync(t.Context(), x.alice, webui.SyncRequest{Since: resp.NextBatch})
	if err != nil {
		t.Fatal(err)
	}
	if jr := quiet.Rooms.Join[x.r.ID]; jr != nil && len(jr.Timeline.Events) != 0 {
		t.Errorf("the next sync shows %+v", jr.Timeline.Events)
	}
	// Since a token before the event: once, in its place.
	full := x.sync(before).Rooms.Join[x.r.ID].Timeline.Events
	check("a sync since a token before the event", x.sync(before))
	if k := slices.IndexFunc(full, func(ce webui.ClientEvent) bool { return ce.EventID == waiting.ID() }); k < 0 || k+1 >= len(full) || full[k+1].EventID != after.ID() {
		t.Errorf("the event is not in its place: %v", full)
	}
	// A limited timeline whose only entry is the redelivery takes the
	// room's current state as its start.
	limited, err := x.api.Sync(t.Context(), x.alice, webui.SyncRequest{Since: token, Filter: &webui.Filter{Room: webui.RoomFilter{Timeline: webui.RoomEventFilter{Limit: 1}}}})
	if err != nil {
		t.Fatal(err)
	}
	if jr := limited.Rooms.Join[x.r.ID]; jr == nil || len(jr.Timeline.Events) != 1 || jr.Timeline.Events[0].EventID != waiting.ID() {
		t.Errorf("a sync with limit 1 shows %+v", jr)
	}

	msgs := x.messages()
	got := find(msgs, waiting.ID())
	if len(got) != 1 || body(got[0]) != "withheld words" || e2eeMark(got[0]) != nil {
		t.Errorf("/messages shows the event as %+v", got)
	}
}

// BenchmarkSyncOfAnEncryptedRoom: what the plain view costs a /sync, an
// initial one of a room of 50 messages (20 shown) and an incremental one
// of one new message, against the same room on a node without a codec.
func BenchmarkSyncOfAnEncryptedRoom(b *testing.B) {
	for _, encrypting := range []bool{false, true} {
		name := "without a codec"
		if encrypting {
			name = "encrypted"
		}
		x := newRoomWith(b, encrypting)
		for k := range 50 {
			x.bobSays("message number " + strconv.Itoa(k) + " with a body of a usual length")
		}
		b.Run(name+"/initial", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if resp := x.sync(""); len(resp.Rooms.Join[x.r.ID].Timeline.Events) != 20 {
					b.Fatal("wrong timeline")
				}
			}
		})
		token := x.sync("").NextBatch
		x.bobSays("one more")
		b.Run(name+"/incremental", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if resp := x.sync(token); len(resp.Rooms.Join[x.r.ID].Timeline.Events) != 1 {
					b.Fatal("wrong timeline")
				}
			}
		})
	}
}

// TestALateKeyOfHistoryIsNotNewsToAJoiner: an event from before a user
// joined, whose key comes after, is not delivered to the joiner's next
// /sync (it would land at the end of their timeline, history among the
// news); a member who was there when it came gets it again, readable.
// A state event among them that is still current (a topic) reaches the
// joiner's state instead.
func TestALateKeyOfHistoryIsNotNewsToAJoiner(t *testing.T) {
	x := newE2EERoom(t)
	aliceToken := x.sync("").NextBatch
	waiting := x.bobSays("withheld, said before carol came")
	empty := ""
	topic := x.fromBob("m.room.topic", &empty, `{"topic":"withheld topic"}`)
	carol := &webui.Session{UserID: "@carol:" + x.e.ServerName(), DeviceID: "CAROL"}
	if _, err := x.e.Send(t.Context(), x.r, carol.UserID, "m.room.member", &carol.UserID, json.RawMessage(`{"membership":"join"}`), "", ""); err != nil {
		t.Fatal(err)
	}
	first, err := x.api.Sync(t.Context(), carol, webui.SyncRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if jr := first.Rooms.Join[x.r.ID]; jr == nil {
		t.Fatalf("carol's first sync lacks the room she joined")
	}
	for _, ev := range []*rooms.Event{waiting, topic} {
		if err := x.e.SetPlain(x.r, ev.ID(), fakeOpen(ev, true)); err != nil {
			t.Fatal(err)
		}
	}
	next, err := x.api.Sync(t.Context(), carol, webui.SyncRequest{Since: first.NextBatch})
	if err != nil {
		t.Fatal(err)
	}
	jr := next.Rooms.Join[x.r.ID]
	if jr == nil {
		t.Fatal("carol's sync after the keys lacks the room")
	}
	if got := find(jr.Timeline.Events, waiting.ID()); len(got) != 0 {
		t.Errorf("carol's sync after the key delivers the event from before her join again: %+v", got)
	}
	if got := find(jr.Timeline.Events, topic.ID()); len(got) != 0 {
		t.Errorf("the topic from before her join is in carol's timeline: %+v", got)
	}
	if got := find(jr.State.Events, topic.ID()); len(got) != 1 || !strings.Contains(string(got[0].Content), "withheld topic") {
		t.Errorf("carol's state after the key shows the topic as %+v; want it once, readable", got)
	}
	got := find(x.sync(aliceToken).Rooms.Join[x.r.ID].Timeline.Events, waiting.ID())
	if len(got) != 1 || body(got[0]) != "withheld, said before carol came" {
		t.Errorf("alice, there when it came, is shown %+v; want it once, readable", got)
	}
}
