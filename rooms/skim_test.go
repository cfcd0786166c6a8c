package rooms

import (
	"reflect"
	"testing"
)

// TestSkimStoredReadsWhatTheParsedEventShows: for events of every kind
// and both versions, skimming an event's stored JSON gives what the
// parsed event gives, content byte for byte.
func TestSkimStoredReadsWhatTheParsedEventShows(t *testing.T) {
	for _, version := range []string{V10, V11, V12} {
		r := newTestRoom(t, version)
		r.join(bob)
		events := []*Event{
			r.create,
			r.state[StateKey{"m.room.member", alice}],
			r.state[powerLevelsKey],
			r.state[StateKey{"m.room.member", bob}],
			r.send(bob, "m.room.message", "-", `{"msgtype":"m.text","body":"a <b>bold</b> & \"quoted\" \\ move, é, \n, \u0001","n":[1,{"x":[]}]}`),
			r.send(alice, "m.room.topic", "", `{"topic":"{not: an object]"}`),
			r.send(alice, "m.custom.state", "a key, with \"quotes\"", `{}`),
			r.member(alice, bob, "ban", `,"reason":"spam"`),
		}
		for _, ev := range events {
			got, ok := SkimStored(ev.JSON(), version, ev.ID())
			want := ev.Skim()
			if ev.Type() == "m.custom.state" {
				// Its state key has escapes: the caller parses instead.
				if ok {
					t.Errorf("v%s %s: skimmed a state key with escapes", version, ev)
				}
				continue
			}
			if !ok {
				t.Errorf("v%s %s: not skimmed", version, ev)
				continue
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("v%s %s:\nskimmed %+v\nparsed  %+v", version, ev, got, want)
			}
		}
		red := r.send(alice, "m.room.redaction", "-", `{"redacts":"`+events[4].ID()+`"}`)
		if _, ok := SkimStored(red.JSON(), version, red.ID()); ok {
			t.Errorf("v%s: a redaction was skimmed (its Redacts is not read)", version)
		}
	}
}

// TestSkimStoredRefusesWhatItCannotRead: damaged or non-compact bytes
// are refused (the caller parses them, and errs), never a panic.
func TestSkimStoredRefusesWhatItCannotRead(t *testing.T) {
	r := newTestRoom(t, V12)
	msg := r.send(alice, "m.room.message", "-", `{"body":"hi"}`)
	raw := string(msg.JSON())
	cases := map[string]string{
		"empty":                 ``,
		"not an object":         `[1,2]`,
		"whitespace":            `{"content": {}}`,
		"unbalanced":            `{"content":{"a":[}}`,
		"cut short":             raw[:len(raw)/2],
		"trailing bytes":        raw + `x`,
		"an empty value":        `{"content":,"type":"x"}`,
		"no timestamp":          `{"content":{},"room_id":"!r","sender":"@a:b","type":"x"}`,
		"a non-integer time":    `{"content":{},"origin_server_ts":1.5,"room_id":"!r","sender":"@a:b","type":"x"}`,
		"a time with a plus":    `{"content":{},"origin_server_ts":+1,"room_id":"!r","sender":"@a:b","type":"x"}`,
		"a time with zeros":     `{"content":{},"origin_server_ts":01,"room_id":"!r","sender":"@a:b","type":"x"}`,
		"a time out of range":   `{"content":{},"origin_server_ts":9007199254740992,"room_id":"!r","sender":"@a:b","type":"x"}`,
		"an event_id field":     `{"content":{},"event_id":"$x","origin_server_ts":1,"room_id":"!r","sender":"@a:b","type":"x"}`,
		"no room_id":            `{"content":{},"origin_server_ts":1,"sender":"@a:b","type":"x"}`,
		"content not an object": `{"content":[],"origin_server_ts":1,"room_id":"!r","sender":"@a:b","type":"x"}`,
	}
	for name, in := range cases {
		if _, ok := SkimStored([]byte(in), V12, msg.ID()); ok {
			t.Errorf("%s: skimmed %q", name, in)
		}
	}
	if _, ok := SkimStored(msg.JSON(), "99", msg.ID()); ok {
		t.Error("skimmed under an unknown room version")
	}
	for n := range len(raw) {
		SkimStored([]byte(raw[:n]), V12, msg.ID()) // must not panic
	}
}

// FuzzSkimStored: no input panics, and whatever it skims, ParseTrusted
// reads the same.
func FuzzSkimStored(f *testing.F) {
	r := newTestRoom(f, V12)
	f.Add(r.send(alice, "m.room.message", "-", `{"body":"hi","x":[{"y":null}]}`).JSON())
	f.Add(r.create.JSON())
	f.Add(r.state[StateKey{"m.room.member", alice}].JSON())
	f.Fuzz(func(t *testing.T, b []byte) {
		const id = "$fuzz"
		sk, ok := SkimStored(b, V12, id)
		if !ok {
			return
		}
		ev, err := ParseTrusted(b, V12, id)
		if err != nil {
			return // damaged bytes the skim does not look into
		}
		if canon, err := CanonicalJSON(b); err != nil || string(canon) != string(b) {
			return // SkimStored is only for canonical JSON
		}
		if want := ev.Skim(); !reflect.DeepEqual(sk, want) {
			t.Fatalf("%q:\nskimmed %+v\nparsed  %+v", b, sk, want)
		}
	})
}

// BenchmarkSkimStored is SkimStored's work on typical events, against
// ParseTrusted's (BenchmarkParseTrusted) on the same bytes.
func BenchmarkSkimStored(b *testing.B) {
	for name, raw := range benchEvents(b) {
		e, err := ParseEvent(raw, V12)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(raw)))
			for b.Loop() {
				if _, ok := SkimStored(raw, V12, e.ID()); !ok {
					b.Fatal("not skimmed")
				}
			}
		})
	}
}
