package store

import (
	"encoding/json"
	"strings"
	"testing"
)

// BenchmarkDecodeEventRecord decodes a record of a message of a usual
// size (a PDU of about 750 bytes): as every data dir made before the
// binary form holds it, through encoding/json (how it was read before)
// and through the JSON fast path, and in the binary form.
func BenchmarkDecodeEventRecord(b *testing.B) {
	r := &EventRecord{
		Version: "12", Pos: 123456, StateAfter: "s-123456", Received: 1700000000123,
		PDU: json.RawMessage(`{"auth_events":["$` + strings.Repeat("a", 43) + `","$` + strings.Repeat("b", 43) + `","$` + strings.Repeat("c", 43) + `"],` +
			`"content":{"body":"a message of a usual length, with a link https://example.org/x","msgtype":"m.text"},"depth":42,` +
			`"hashes":{"sha256":"` + strings.Repeat("h", 43) + `"},"origin_server_ts":1700000000000,"prev_events":["$` + strings.Repeat("p", 43) + `"],` +
			`"room_id":"!` + strings.Repeat("r", 43) + `","sender":"@owner:` + strings.Repeat("k", 52) + `",` +
			`"signatures":{"` + strings.Repeat("k", 52) + `":{"ed25519:p2p":"` + strings.Repeat("s", 86) + `"}},"type":"m.room.message"}`),
	}
	old, bin := oldJSON(r), appendEventRecord(nil, r)
	b.Run("json via encoding/json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var got EventRecord
			if err := json.Unmarshal(old, &got); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var got EventRecord
			if err := decodeEventRecord(old, &got); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("binary", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var got EventRecord
			if err := decodeEventRecord(bin, &got); err != nil {
				b.Fatal(err)
			}
		}
	})
}
