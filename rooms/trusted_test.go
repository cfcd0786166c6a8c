package rooms

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unsafe"
)

// trustedCases are events of every kind a node stores: both room versions,
// state and not, members of each membership, redactions, content with
// characters that need escaping, events redacted and co-signed.
func trustedCases(t *testing.T) map[string]*Event {
	out := map[string]*Event{}
	for _, version := range []string{V10, V11, V12} {
		add := func(name string, e *Event) { out[version+" "+name] = e }
		r := newTestRoom(t, version)
		add("create", r.create)
		add("creator's join", r.state[StateKey{"m.room.member", alice}])
		add("power levels", r.state[powerLevelsKey])
		add("join rules", r.state[joinRulesKey])
		r.joinRule("public")
		r.member(bob, bob, "join", `,"displayname":"Bob <b>&amp;</b>"`)
		add("join with a display name", r.state[StateKey{"m.room.member", bob}])
		add("invite", r.member(alice, carol, "invite", ""))
		add("leave", r.member(carol, carol, "leave", ""))
		add("ban", r.member(alice, eve, "ban", `,"reason":"spam"`))
		msg := r.send(bob, "m.room.message", "-", `{"msgtype":"m.text","body":"tab\tnewline\n quote\" backslash\\ <html> & \u2028 \u0001 émoji 😀","n":[1,-2,0,{"x":null,"t":true,"f":false}]}`)
		add("message with escapes", msg)
		add("topic", r.send(alice, "m.room.topic", "", `{"topic":"a topic"}`))
		add("state with a non-empty key", r.send(alice, "m.custom.state", "some key", `{"k":"v"}`))
		red := r.send(alice, "m.room.redaction", "-", `{"redacts":"`+msg.ID()+`","reason":"rude"}`)
		add("redaction", red)
		redacted, err := msg.Redacted()
		if err != nil {
			t.Fatal(err)
		}
		add("redacted message", redacted)
		cosigned, err := Sign(r.build(alice, "m.room.member", "CAROL", `{"membership":"invite"}`), serverC.name, serverC.key)
		if err != nil {
			t.Fatal(err)
		}
		add("co-signed invite", cosigned)
	}
	return out
}

// sameEvent fails unless a and b agree on every accessor and hold the same
// tree and bytes.
func sameEvent(t testing.TB, a, b *Event) {
	t.Helper()
	type view struct {
		ID, Version, RoomID, Sender, Type, Redacts, Membership, String string
		StateKey                                                       *string
		IsState                                                        bool
		Key                                                            StateKey
		Content, JSON                                                  string
		Prev, Auth                                                     []string
		Depth, TS                                                      int64
		Verify                                                         string
	}
	see := func(e *Event) view {
		v := view{ID: e.ID(), Version: e.Version(), RoomID: e.RoomID(), Sender: e.Sender(), Type: e.Type(),
			Redacts: e.Redacts(), Membership: e.Membership(), String: e.String(), StateKey: e.StateKey(),
			IsState: e.IsState(), Key: e.Key(), Content: string(e.Content()), JSON: string(e.JSON()),
			Prev: e.PrevEvents(), Auth: e.AuthEvents(), Depth: e.Depth(), TS: e.OriginServerTS()}
		if err := Verify(e); err != nil {
			v.Verify = err.Error()
		}
		return v
	}
	for _, e := range []*Event{a, b} { // Content slices raw: it must be content's encoding
		if got, want := string(e.Content()), string(e.content.bytes()); got != want {
			t.Fatalf("Content() = %s, want %s", got, want)
		}
	}
	if va, vb := see(a), see(b); !reflect.DeepEqual(va, vb) {
		t.Fatalf("accessors differ:\n%+v\n%+v", va, vb)
	}
	if fa, fb := eventFields(a), eventFields(b); !reflect.DeepEqual(fa, fb) {
		t.Fatalf("events differ:\n%#v\n%#v", fa, fb)
	}
	ra, errA := a.Redacted()
	rb, errB := b.Redacted()
	if (errA == nil) != (errB == nil) {
		t.Fatalf("Redacted: %v and %v", errA, errB)
	}
	if errA == nil && (ra.Footprint() != rb.Footprint() || !reflect.DeepEqual(eventFields(ra), eventFields(rb))) {
		t.Fatalf("redacted events differ:\n%#v\n%#v", eventFields(ra), eventFields(rb))
	}
}

// eventFields lists an Event's fields but its footprint (an estimate of
// memory, which differs when one was parsed from non-canonical bytes) and
// its memo.
func eventFields(e *Event) []any {
	if n := reflect.TypeFor[Event]().NumField(); n != 20 {
		panic(fmt.Sprintf("Event has %d fields: update eventFields", n))
	}
	return []any{e.version, e.id, e.fixture, e.pdu, e.raw, e.roomID, e.derivedID, e.sender, e.typ,
		e.stateKey, e.content, e.contentAt, e.contentEnd, e.prevEvents, e.authEvents, e.depth, e.ts, e.redacts}
}

func TestParseTrustedMatchesParseEvent(t *testing.T) {
	for name, e := range trustedCases(t) {
		t.Run(name, func(t *testing.T) {
			// As stored: the canonical JSON, and the same inside a record
			// encoding/json wrote (which escapes <, >, & and U+2028).
			record, err := json.Marshal(struct{ PDU json.RawMessage }{e.JSON()})
			if err != nil {
				t.Fatal(err)
			}
			var back struct{ PDU json.RawMessage }
			if err := json.Unmarshal(record, &back); err != nil {
				t.Fatal(err)
			}
			if strings.HasSuffix(name, "message with escapes") && string(back.PDU) == string(e.JSON()) {
				t.Fatalf("the stored form should differ from the canonical one: %s", back.PDU)
			}
			for _, raw := range [][]byte{e.JSON(), back.PDU} {
				untrusted, err := ParseEvent(raw, e.Version())
				if err != nil {
					t.Fatal(err)
				}
				if untrusted.ID() != e.ID() {
					t.Fatalf("ParseEvent gives ID %s, want %s", untrusted.ID(), e.ID())
				}
				fast, err := ParseTrusted(raw, e.Version(), e.ID())
				if err != nil {
					t.Fatal(err)
				}
				sameEvent(t, untrusted, fast)
			}
		})
	}
}

// TestParseTrustedRefusesWhatItCannotRead: damaged bytes are an error, never
// a panic or an event missing its fields.
func TestParseTrustedRefusesWhatItCannotRead(t *testing.T) {
	r := newTestRoom(t, V12)
	good := r.send(alice, "m.room.topic", "", `{"topic":"t"}`)
	id := good.ID()
	tests := []struct {
		name, version, id string
		raw               []byte
	}{
		{"truncated JSON", V12, id, good.JSON()[:len(good.JSON())-3]},
		{"not an object", V12, id, []byte(`[1,2]`)},
		{"no type", V12, id, editJSON(t, good.JSON(), func(m map[string]any) { delete(m, "type") })},
		{"content not an object", V12, id, editJSON(t, good.JSON(), func(m map[string]any) { m["content"] = 1 })},
		{"prev_events not strings", V12, id, editJSON(t, good.JSON(), func(m map[string]any) { m["prev_events"] = []any{1} })},
		{"no origin_server_ts", V12, id, editJSON(t, good.JSON(), func(m map[string]any) { delete(m, "origin_server_ts") })},
		{"an unknown room version", "9", id, good.JSON()},
		{"an ID without its sigil", V12, id[1:], good.JSON()},
		{"no ID", V12, "", good.JSON()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := ParseTrusted(tt.raw, tt.version, tt.id)
			if err == nil || !errors.Is(err, ErrBadFormat) {
				t.Fatalf("got %v, %v; want ErrBadFormat", e, err)
			}
		})
	}
}

// TestRebuiltEventsKeepTheirID: redacting and co-signing no longer hash the
// event again, so check the ID they carry over is the one hashing gives.
func TestRebuiltEventsKeepTheirID(t *testing.T) {
	for name, e := range trustedCases(t) {
		t.Run(name, func(t *testing.T) {
			red, err := e.Redacted()
			if err != nil {
				t.Fatal(err)
			}
			signed, err := Sign(e, serverE.name, serverE.key)
			if err != nil {
				t.Fatal(err)
			}
			for _, derived := range []*Event{red, signed} {
				again, err := ParseEvent(derived.JSON(), e.Version())
				if err != nil {
					t.Fatal(err)
				}
				if again.ID() != e.ID() || !slices.Equal(again.JSON(), derived.JSON()) {
					t.Fatalf("derived event %s hashes to %s", derived.ID(), again.ID())
				}
			}
		})
	}
}

// TestFieldsDoNotHoldTheWholeEvent: the strings callers keep for long (room
// states key on type and state key) are not slices of the event's JSON,
// which would keep all of it alive.
func TestFieldsDoNotHoldTheWholeEvent(t *testing.T) {
	for name, e := range trustedCases(t) {
		t.Run(name, func(t *testing.T) {
			fast, err := ParseTrusted(e.JSON(), e.Version(), e.ID())
			if err != nil {
				t.Fatal(err)
			}
			for _, ev := range []*Event{e, fast} {
				start := uintptr(unsafe.Pointer(unsafe.StringData(ev.raw)))
				end := start + uintptr(len(ev.raw))
				fields := append([]string{ev.Type(), ev.Sender(), ev.RoomID(), ev.Key().StateKey, ev.Membership(), ev.Redacts()},
					append(ev.PrevEvents(), ev.AuthEvents()...)...)
				for _, f := range fields {
					if p := uintptr(unsafe.Pointer(unsafe.StringData(f))); f != "" && p >= start && p < end {
						t.Errorf("field %q is a slice of the event's JSON", f)
					}
				}
			}
		})
	}
}
