package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"testing"
)

// fullRecord sets every field of an event record.
func fullRecord() *EventRecord {
	return &EventRecord{
		Version: "12", PDU: json.RawMessage(`{"content":{"body":"a <b>bold</b> & \"quoted\" move \u00e9"},"type":"m.room.message"}`),
		Pos: 1234567, Order: LiveBase - 3, Rejected: "not allowed: power", SoftFailed: "sender banned",
		Outlier: true, StateAfter: "st-after", StateBefore: "st-before", TxnID: "m1700000000.0", TxnDevice: "DEVICE", Received: 1700000000123,
	}
}

// oldJSON is a record as every node wrote it before the binary form:
// encoding/json without HTML escaping, as setJSON writes.
func oldJSON(r *EventRecord) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r); err != nil {
		panic(err) // an EventRecord always encodes
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// TestEventRecordsReadBackAsWritten: a record written now (binary) and
// one written by an older node (JSON, put in Badger as it was) read back
// field for field, and the PDU byte for byte.
func TestEventRecordsReadBackAsWritten(t *testing.T) {
	records := map[string]*EventRecord{
		"every field set": fullRecord(),
		"only a PDU":      {Version: "11", PDU: json.RawMessage(`{"type":"m.room.create"}`)},
		"a negative receive time and an unknown version": {Version: "org.example.v99", PDU: json.RawMessage(`{}`), Received: -5},
		"strings that need escapes in JSON":              {Version: "12", PDU: json.RawMessage(`{"a":"\\"}`), TxnID: "tx\"with\\quotes\n", TxnDevice: "d\u2028é"},
	}
	for name, want := range records {
		for _, form := range []string{"binary", "json"} {
			t.Run(name+" in "+form, func(t *testing.T) {
				s := openTestStore(t, Options{})
				if err := s.Update(func(tx *Txn) error {
					if form == "json" {
						addToFilter(tx, "$ev")
						return tx.txn.Set(keyEvent("$ev"), oldJSON(want))
					}
					return tx.PutEvent("!room", "$ev", want)
				}); err != nil {
					t.Fatal(err)
				}
				got := readEvent(t, s, "$ev")
				if !reflect.DeepEqual(got, want) {
					t.Errorf("read back\n%+v\nwant\n%+v", got, want)
				}
			})
		}
	}
}

// readEvent reads an event record back from s, failing the test if it
// cannot.
func readEvent(t *testing.T, s *Store, id string) *EventRecord {
	t.Helper()
	var got *EventRecord
	if err := s.View(func(tx *Txn) error {
		var err error
		got, err = tx.Event(id)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return got
}

// TestNewEventRecordsAreBinary: a record written now does not start as
// JSON, so readers tell the two forms apart.
func TestNewEventRecordsAreBinary(t *testing.T) {
	b := appendEventRecord(nil, fullRecord())
	if b[0] != recordV1 {
		t.Fatalf("first byte %#x, want %#x", b[0], recordV1)
	}
	if !bytes.HasSuffix(b, fullRecord().PDU) {
		t.Error("the PDU is not stored verbatim at the end")
	}
}

// TestJSONRecordsDecodeAsEncodingJSONDoes: the JSON decoder's fast path
// and encoding/json agree on records of every shape, including those the
// fast path hands over (whitespace, escapes, unknown keys).
func TestJSONRecordsDecodeAsEncodingJSONDoes(t *testing.T) {
	for _, in := range jsonRecordSeeds() {
		var want EventRecord
		wantErr := json.Unmarshal(in, &want)
		var got EventRecord
		err := decodeEventRecord(in, &got)
		if wantErr != nil {
			if err == nil {
				t.Errorf("%s: decoded, though encoding/json says %v", in, wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\ngot  %+v\nwant %+v", in, got, want)
		}
	}
}

func jsonRecordSeeds() [][]byte {
	return [][]byte{
		oldJSON(fullRecord()),
		oldJSON(&EventRecord{}),
		[]byte(`{}`),
		[]byte(`{"v":"12","pdu":null}`),
		[]byte(`{"v":"12","pdu":{"a":[1,2,{"b":"}\"]"}],"c":true},"pos":7}`),
		[]byte(`{ "v": "12", "pdu": {"a": 1}, "pos": 7 }`),
		[]byte(`{"v":"12","pdu":{},"extra":"ignored","pos":3}`),
		[]byte(`{"v":"1\u0032","pdu":{}}`),
		[]byte(`{"v":"12","pdu":{},"pos":18446744073709551615}`),
		[]byte(`{"v":"12","pdu":{},"pos":18446744073709551616}`),
		[]byte(`{"v":"12","pdu":{},"pos":-1}`),
		[]byte(`{"v":"12","pdu":{},"pos":01}`),
		[]byte(`{"v":"12","pdu":{},"rcv":-9223372036854775808}`),
		[]byte(`{"v":"12","pdu":{},"rcv":9223372036854775808}`),
		[]byte(`{"v":"12","pdu":{},"out":false,"out":true}`),
		[]byte(`{"v":"12","pdu":{},"pos":1,"pos":2}`),
		[]byte("{\"v\":\"\xff\",\"pdu\":{}}"),
		[]byte(`{"V":"12","PDU":{},"Pos":4}`),
		[]byte(`{"v":"12","pdu":{"a":1.5e3,"b":[true,false,null]},"pos":1.0}`),
		[]byte(`{"v":"12","pdu":{}}trailing`),
		[]byte(`{"v":"12","pdu":{"a":"unterminated}`),
		[]byte(`{"v":"12","pdu":`),
		[]byte(`{"v":12,"pdu":{}}`),
	}
}

// TestDamagedEventRecordsAreErrors: a record cut short, of an unknown
// form or empty is an error that says so, never a panic.
func TestDamagedEventRecordsAreErrors(t *testing.T) {
	full := appendEventRecord(nil, fullRecord())
	header := len(full) - len(fullRecord().PDU)
	cases := map[string][]byte{
		"empty":                 {},
		"an unknown form":       {0x7f, 1, 2, 3},
		"unknown flags":         {recordV1, 0, 0, 0, 0x80},
		"a string past the end": {recordV1, 0, 0, 0, 0, 200, 'x'},
		"a bad varint":          {recordV1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
	}
	for n := 1; n < header; n++ {
		cases[fmt.Sprintf("cut to %d bytes, inside the header", n)] = full[:n]
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			var r EventRecord
			err := decodeEventRecord(b, &r)
			if !errors.Is(err, errBadRecord) {
				t.Fatalf("got %v, want a damaged-record error", err)
			}
		})
	}

	t.Run("read through the store", func(t *testing.T) {
		s := openTestStore(t, Options{})
		if err := s.Update(func(tx *Txn) error {
			addToFilter(tx, "$bad")
			return tx.txn.Set(keyEvent("$bad"), []byte{recordV1, 0xff})
		}); err != nil {
			t.Fatal(err)
		}
		err := s.View(func(tx *Txn) error {
			_, err := tx.Event("$bad")
			return err
		})
		if !errors.Is(err, errBadRecord) {
			t.Fatalf("got %v, want a damaged-record error", err)
		}
	})
}

// FuzzDecodeEventRecord: no input panics, and wherever encoding/json
// reads a JSON record, decodeEventRecord reads the same.
func FuzzDecodeEventRecord(f *testing.F) {
	for _, s := range jsonRecordSeeds() {
		f.Add(s)
	}
	f.Add(appendEventRecord(nil, fullRecord()))
	withPlain := fullRecord()
	withPlain.Plain = []byte(`{"type":"m.room.message"}`)
	f.Add(appendEventRecord(nil, withPlain))
	f.Fuzz(func(t *testing.T, b []byte) {
		var got EventRecord
		err := decodeEventRecord(b, &got)
		if len(b) == 0 || b[0] != '{' {
			return
		}
		var want EventRecord
		if json.Unmarshal(b, &want) != nil {
			return
		}
		if err != nil {
			t.Fatalf("%q: %v, though encoding/json reads it", b, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q:\ngot  %+v\nwant %+v", b, got, want)
		}
	})
}

// addToFilter tells the event filter of an event put in Badger directly.
func addToFilter(tx *Txn, id string) {
	if f := tx.s.events; f != nil {
		f.add(id)
	}
}

// TestRecordsAsOlderNodesWroteThemSkipEncodingJSON: the JSON records
// every existing data dir holds are read by the fast path, not handed
// to encoding/json.
func TestRecordsAsOlderNodesWroteThemSkipEncodingJSON(t *testing.T) {
	for _, r := range []*EventRecord{fullRecord(), {Version: "12", PDU: json.RawMessage(`{"a":{"b":["c"]}}`), Pos: 9, StateAfter: "s1", Received: 1}} {
		var got EventRecord
		if !decodeJSONRecord(oldJSON(r), &got) {
			t.Errorf("%s went to encoding/json", oldJSON(r))
		}
	}
}
