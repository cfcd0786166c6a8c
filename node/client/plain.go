package client

import (
	"bytes"
	"encoding/json"

	"github.com/parley-p2p/parley/node/dag"
	"github.com/parley-p2p/parley/webui"
)

// What clients see of encrypted events: the plain view the codec left
// in the event's record (dag.Plain) in place of its type and content,
// with the event's own ID, sender, timestamp and state key. An encrypted
// event without one yet is shown as it is on the wire, marked waiting (a
// client shows "unable to decrypt"; /sync delivers it again once its key
// comes); a forged one as it is on the wire, marked forged, with no
// plaintext. The codec's own events (key shares, room secrets) are
// never shown.

// unsignedE2EE is the unsigned key that marks an event not decrypted.
const unsignedE2EE = "org.parley.e2ee"

// The values of unsigned[unsignedE2EE].
const (
	e2eeWaiting = "waiting"
	e2eeForged  = "forged"
)

// encryptedKey marks the ciphertext in an encrypted state event's
// content, beside the keys auth needs in the clear.
const encryptedKey = "org.parley.encrypted"

// view puts the plain view of an event in place of its type and
// content, or marks why there is none, or hides it.
func (api *API) view(e *shownEvent) {
	if api.dag.Sealed(e.Type) {
		e.hidden = true
		return
	}
	if e.redactedBy != nil {
		return // shown as the redaction leaves it on the wire
	}
	if len(e.rec.Plain) > 0 {
		p, err := dag.DecodePlain(e.rec.Plain)
		switch {
		case err != nil:
			api.log.Warn("unreadable plain view", "event", e.ID, "err", err)
		case p.Status == dag.PlainForged:
			e.status = e2eeForged
			return
		case api.dag.Sealed(p.Type):
			e.hidden = true
			return
		default:
			if e.StateKey == nil {
				e.Type = p.Type // a state event keeps its type, as state is keyed by it
			}
			e.Content = p.Content
			if e.Content == nil {
				e.Content = json.RawMessage(`{}`)
			}
			return
		}
	}
	if api.dag.Encrypting() && encrypted(e.Type, e.Content) {
		e.status = e2eeWaiting
	}
}

// encrypted reports whether an event's wire type or content says it is
// encrypted.
func encrypted(evType string, content json.RawMessage) bool {
	if evType == "m.room.encrypted" {
		return true
	}
	if !bytes.Contains(content, []byte(`"`+encryptedKey+`"`)) {
		return false // no need to parse
	}
	var top map[string]json.RawMessage
	if json.Unmarshal(content, &top) != nil {
		return false
	}
	_, ok := top[encryptedKey]
	return ok
}

// strippedShown is an event's stripped form (invite state), from its
// plain view.
func strippedShown(e shownEvent) webui.StrippedEvent {
	sk := ""
	if e.StateKey != nil {
		sk = *e.StateKey
	}
	return webui.StrippedEvent{Content: e.Content, Sender: e.Sender, StateKey: sk, Type: e.Type}
}
