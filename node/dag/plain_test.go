package dag

import (
	"encoding/json"
	"reflect"
	"testing"
)

func plainSeeds() [][]byte {
	var out [][]byte
	for _, p := range []Plain{
		{Type: "m.room.message", Content: json.RawMessage(`{"body":"hi <b> & \"q\" é","msgtype":"m.text"}`)},
		{Type: "m.room.name", Content: json.RawMessage(`{"name":"x"}`)},
		{Type: "m.room.encrypted", Status: PlainForged},
		{Type: "org.example.é", Content: json.RawMessage(`[1,{"a":null}]`)},
		{},
	} {
		b, _ := json.Marshal(p)
		out = append(out, b)
	}
	return append(out,
		[]byte(`{"content":{},"type":"m.room.message"}`),
		[]byte(`{"type":"m.room.message", "content":{}}`),
		[]byte(`{"type":"a\"b","content":{}}`),
		[]byte(`{"type":"m","content":{"a":1}`),
		[]byte(`{"type":"m","content":{"a":1}}x`),
		[]byte(`{"type":"m","status":"forged"}`),
		[]byte(`{"type":"m","content":null}`),
		[]byte("{\"type\":\"\xff\"}"),
		[]byte(`{"type":"m","content":{"a":"}"}}`),
		[]byte(`not json`),
	)
}

// TestPlainsDecodeAsEncodingJSONDoes: the fast path reads what
// json.Marshal writes, and whatever it reads, it reads as encoding/json.
func TestPlainsDecodeAsEncodingJSONDoes(t *testing.T) {
	for k, b := range plainSeeds() {
		_, fast := decodePlainFast(b)
		if k < 5 && !fast {
			t.Errorf("%s, as json.Marshal wrote it, went to encoding/json", b)
		}
		checkPlainDecode(t, b)
	}
}

func checkPlainDecode(t *testing.T, b []byte) {
	var want Plain
	wantErr := json.Unmarshal(b, &want)
	got, err := DecodePlain(b)
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("%q: error %v, encoding/json's %v", b, err, wantErr)
	}
	if err == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("%q:\ngot  %#v\nwant %#v", b, got, want)
	}
}

// FuzzDecodePlain: DecodePlain reads every input as encoding/json does,
// and never panics.
func FuzzDecodePlain(f *testing.F) {
	for _, b := range plainSeeds() {
		f.Add(b)
	}
	f.Fuzz(checkPlainDecode)
}
