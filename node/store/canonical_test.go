package store

import (
	"bytes"
	"encoding/json"
	"testing"
)

// TestAnEventsPDUReadsBackByteForByte: a PDU with <, > and & in it (a
// message with HTML) is stored as it was given, not with those escaped,
// so the PDU read back is still its canonical JSON.
func TestAnEventsPDUReadsBackByteForByte(t *testing.T) {
	s := openTestStore(t, Options{})
	pdu := json.RawMessage(`{"content":{"body":"a <b>bold</b> & \"quoted\" move","msgtype":"m.text"},"type":"m.room.message"}`)
	if err := s.Update(func(t *Txn) error {
		return t.PutEvent("!room", "$ev", &EventRecord{Version: "12", PDU: pdu})
	}); err != nil {
		t.Fatal(err)
	}
	var got *EventRecord
	if err := s.View(func(t *Txn) error {
		var err error
		got, err = t.Event("$ev")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.PDU, pdu) {
		t.Errorf("the PDU read back is\n%s\nwant\n%s", got.PDU, pdu)
	}
}
