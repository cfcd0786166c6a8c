package rooms

import (
	"testing"
)

// FuzzParseEvent checks that ParseEvent never panics and that what it accepts
// is stable: re-parsing an event's JSON gives the same ID and bytes, redaction
// keeps the ID, and the auth rules and verification run without panicking.
func FuzzParseEvent(f *testing.F) {
	for _, version := range []string{V11, V12} {
		r := newTestRoom(f, version)
		r.join(bob)
		for _, e := range r.state {
			f.Add(e.JSON(), version == V12)
		}
		f.Add(r.build(bob, "m.room.message", "-", `{"body":"hi"}`).JSON(), version == V12)
	}
	f.Add([]byte(`{"type":"m.room.create","content":{},"sender":"@a:b","prev_events":[],"auth_events":[],"depth":1,"origin_server_ts":1,"hashes":{"sha256":""},"signatures":{}}`), true)
	f.Add([]byte(`{"a":1e10,"b":"\ud83d\ude00"}`), false)
	f.Fuzz(func(t *testing.T, raw []byte, v12 bool) {
		version := V11
		if v12 {
			version = V12
		}
		_, _ = ParseTrusted(raw, version, "$x") // never panics
		e, err := ParseEvent(raw, version)
		if err != nil {
			return
		}
		if string(e.Content()) != string(e.content.bytes()) {
			t.Fatalf("Content() %s is not content's encoding %s", e.Content(), e.content.bytes())
		}
		again, err := ParseEvent(e.JSON(), version)
		if err != nil {
			t.Fatalf("re-parsing accepted JSON failed: %v\n%s", err, e.JSON())
		}
		if again.ID() != e.ID() || string(again.JSON()) != string(e.JSON()) {
			t.Fatalf("re-parsing changed the event: %s -> %s", e.ID(), again.ID())
		}
		red, err := e.Redacted()
		if err != nil {
			t.Fatalf("redacting an accepted event failed: %v", err)
		}
		fast, err := ParseTrusted(e.JSON(), version, e.ID())
		if err != nil {
			t.Fatalf("ParseTrusted refused an accepted event: %v", err)
		}
		sameEvent(t, e, fast)
		if red.ID() != e.ID() {
			t.Fatalf("redaction changed the ID")
		}
		_ = Verify(e)
		state := map[StateKey]*Event{createKey: e}
		_ = Allowed(e, func(k StateKey) *Event { return state[k] })
		_ = CheckAuthEvents(e, nil)
		_, _ = PowerLevelsFrom(func(k StateKey) *Event { return state[k] })
	})
}

// FuzzCanonicalJSON checks that canonical output is a fixed point.
func FuzzCanonicalJSON(f *testing.F) {
	for _, s := range []string{`{}`, `{"b":1,"a":[true,null,"\u0001"]}`, `-0`, `1.5e1`, `"\ud83d\ude00"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := CanonicalJSON(in)
		if err != nil {
			return
		}
		again, err := CanonicalJSON(out)
		if err != nil || string(again) != string(out) {
			t.Fatalf("not a fixed point: %q -> %q -> %q (%v)", in, out, again, err)
		}
		checkCanonicalDetection(t, in)
	})
}
