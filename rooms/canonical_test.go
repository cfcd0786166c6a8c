package rooms

import (
	"errors"
	"strings"
	"testing"
)

func TestCanonicalJSON(t *testing.T) {
	// The first group is the spec's appendix "Canonical JSON" examples.
	tests := []struct {
		name, in, want string
	}{
		{"an empty object stays empty", `{}`, `{}`},
		{"whitespace is removed", "{\n    \"one\": 1,\n    \"two\": \"Two\"\n}", `{"one":1,"two":"Two"}`},
		{"keys are sorted", "{\n    \"b\": \"2\",\n    \"a\": \"1\"\n}", `{"a":"1","b":"2"}`},
		{"compact input is sorted too", `{"b":"2","a":"1"}`, `{"a":"1","b":"2"}`},
		{"nested objects and arrays are canonicalised",
			`{"auth": {"success": true, "mxid": "@john.doe:example.com", "profile": {"display_name": "John Doe",
			"three_pids": [{"medium": "email", "address": "john.doe@example.org"}, {"medium": "msisdn", "address": "123456789"}]}}}`,
			`{"auth":{"mxid":"@john.doe:example.com","profile":{"display_name":"John Doe","three_pids":[{"address":"john.doe@example.org","medium":"email"},{"address":"123456789","medium":"msisdn"}]},"success":true}}`},
		{"non-ASCII text stays raw UTF-8", `{"a": "日本語"}`, `{"a":"日本語"}`},
		{"keys sort by code point", `{"本": 2, "日": 1}`, `{"日":1,"本":2}`},
		{"unicode escapes are decoded", `{"a": "\u65E5"}`, `{"a":"日"}`},
		{"null is kept", `{"a": null}`, `{"a":null}`},
		{"minus zero and integral exponents are written plainly", `{"a": -0, "b": 1e10}`, `{"a":0,"b":10000000000}`},

		{"only quote, backslash and control characters are escaped", `{"a":"<>&\u2028\u2029/\"\\"}`, "{\"a\":\"<>&\u2028\u2029/\\\"\\\\\"}"},
		{"control characters use short escapes where they exist", `{"a":"\b\t\n\f\r"}`, `{"a":"\b\t\n\f\r"}`},
		{"other control characters use lowercase hex escapes", `{"a":"\u0000\u001F\u000b"}`, `{"a":"\u0000\u001f\u000b"}`},
		{"DEL is not escaped", `{"a":"\u007f"}`, "{\"a\":\"\x7f\"}"},
		{"surrogate pairs become one code point", `{"a":"\ud83d\ude00"}`, `{"a":"😀"}`},
		{"the largest safe integer is accepted", `[9007199254740991,-9007199254740991]`, `[9007199254740991,-9007199254740991]`},
		{"a zero fraction is dropped", `[2.0, 1.50e1, 0.0, -0.0e5]`, `[2,15,0,0]`},
		{"scalars canonicalise at top level", ` "x" `, `"x"`},
		{"empty arrays and booleans survive", `{"a":[],"b":false,"c":true}`, `{"a":[],"b":false,"c":true}`},
		{"keys compare bytewise, so uppercase sorts first", `{"b":1,"B":2,"a":3,"é":4,"z":5}`, `{"B":2,"a":3,"b":1,"z":5,"é":4}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := CanonicalJSON([]byte(tt.in))
			if err != nil {
				t.Fatalf("CanonicalJSON(%s): %v", tt.in, err)
			}
			if string(got) != tt.want {
				t.Errorf("CanonicalJSON(%s)\n got %s\nwant %s", tt.in, got, tt.want)
			}
			again, err := CanonicalJSON(got)
			if err != nil || string(again) != string(got) {
				t.Errorf("canonical output is not a fixed point: %s -> %s (%v)", got, again, err)
			}
		})
	}
}

func TestCanonicalJSONRejects(t *testing.T) {
	tests := []struct{ name, in string }{
		{"a fraction", `{"a":1.5}`},
		{"a negative exponent that leaves a fraction", `{"a":15e-2}`},
		{"an integer above 2^53-1", `{"a":9007199254740992}`},
		{"an integer below -(2^53-1)", `{"a":-9007199254740992}`},
		{"a huge exponent", `{"a":1e400}`},
		{"a leading zero", `{"a":01}`},
		{"a bare minus", `{"a":-}`},
		{"a dot without digits", `{"a":1.}`},
		{"an exponent without digits", `{"a":1e}`},
		{"NaN", `{"a":NaN}`},
		{"duplicate keys", `{"a":1,"a":2}`},
		{"duplicate keys spelled differently", `{"a":1,"\u0061":2}`},
		{"trailing data", `{} {}`},
		{"a trailing comma", `{"a":1,}`},
		{"invalid UTF-8", "{\"a\":\"\xff\"}"},
		{"an overlong UTF-8 encoding", "{\"a\":\"\xc0\xaf\"}"},
		{"a lone high surrogate", `{"a":"\ud800"}`},
		{"a lone low surrogate", `{"a":"\udc00x"}`},
		{"a raw control character", "{\"a\":\"\x01\"}"},
		{"an unknown escape", `{"a":"\x"}`},
		{"a short unicode escape", `{"a":"\u12"}`},
		{"an unterminated string", `{"a":"abc`},
		{"single quotes", `{'a':1}`},
		{"empty input", ``},
		{"a bare word", `nul`},
		{"nesting deeper than 128", strings.Repeat("[", 130) + strings.Repeat("]", 130)},
	}
	for _, tt := range tests {
		t.Run("rejects "+tt.name, func(t *testing.T) {
			got, err := CanonicalJSON([]byte(tt.in))
			if err == nil {
				t.Fatalf("CanonicalJSON(%q) = %s, want an error", tt.in, got)
			}
			if !errors.Is(err, ErrNotCanonical) {
				t.Errorf("error %v does not wrap ErrNotCanonical", err)
			}
		})
	}
}

func TestMarshalCanonical(t *testing.T) {
	type content struct {
		Body  string  `json:"body"`
		Count float64 `json:"count"`
		HTML  string  `json:"html"`
	}
	t.Run("undoes encoding/json's HTML escaping and sorts keys", func(t *testing.T) {
		got, err := MarshalCanonical(content{Body: "hi", Count: 3, HTML: "<b>&</b>"})
		if err != nil {
			t.Fatal(err)
		}
		if want := `{"body":"hi","count":3,"html":"<b>&</b>"}`; string(got) != want {
			t.Errorf("got %s, want %s", got, want)
		}
	})
	t.Run("rejects a non-integer float", func(t *testing.T) {
		if _, err := MarshalCanonical(content{Count: 0.5}); err == nil {
			t.Error("no error for 0.5")
		}
	})
}

// checkCanonicalDetection: the parser reports input as canonical exactly
// when re-encoding would give the same bytes, and predicts the encoding's
// length.
func checkCanonicalDetection(t testing.TB, in []byte) {
	t.Helper()
	v, canon, err := parseJSONCanonical(in)
	if err != nil {
		t.Fatalf("parse %q: %v", in, err)
	}
	out := v.encode(nil)
	if same := string(out) == string(in); same != (canon != "") || canon != "" && canon != string(in) {
		t.Fatalf("%q re-encodes as %q, but the parser says canonical=%q", in, out, canon)
	}
	if n := v.encodedLen(); n != len(out) {
		t.Fatalf("%q: encodedLen %d, encoding has %d bytes", in, n, len(out))
	}
}

func TestParserTellsCanonicalInput(t *testing.T) {
	for _, in := range []string{
		`{}`, `[]`, `{"a":1,"b":[true,false,null,"x"]}`, `{"b":1,"a":2}`, `{ "a":1}`, "{\"a\":1}\n",
		`1e2`, `100`, `-0`, `0`, `-5`, `1.0`, `"\/"`, `"\u0041"`, `"\u001f"`, `"\u001F"`, `"\n"`, `"\u000a"`,
		`"<&>"`, `"\u003c"`, `"\"\\"`, `"\b\f\r\t"`, `"é😀"`, `"\ud83d\ude00"`, `[1,[2,[3,{"k":"v"}]]]`, `[1 ,2]`,
	} {
		checkCanonicalDetection(t, []byte(in))
	}
}
