package dag

import (
	"context"
	"encoding/json"

	"github.com/parley-p2p/parley/rooms"
)

// Codec encrypts the content of the events this node builds and opens
// the content of every event a room admits. The engine knows nothing of
// keys or ciphers: node/e2ee implements it. nil in Config leaves
// content as it is (engine tests).
type Codec interface {
	// Prepare runs before a local user's event is built (Engine.Send,
	// but not a retried transaction's, nor CreateRoom's steps, nor Proto),
	// outside the room's lock: it may send events of its own first (a new session's
	// key share, through Engine.Send), so that they are ancestors of the
	// event that needs them. It is not called for the events it sends
	// (Sealed reports those).
	Prepare(ctx context.Context, r *Room, sender, evType string, stateKey *string) error
	// Seal turns a local event's type and content into what goes in the
	// DAG, under the room's lock: every event Engine.Send and
	// CreateRoom's steps build, except the codec's own types (Sealed),
	// the create event and events built through Proto, which other
	// nodes co-sign (invites, joins through make_join). plain is what the node's own clients
	// are shown (Plain of its record); nil when the content is not
	// encrypted.
	Seal(r *Room, sender, evType string, stateKey *string, content json.RawMessage) (wireType string, wire json.RawMessage, plain []byte, err error)
	// Sealed reports whether an event type is the codec's own (a key
	// share): Prepare is not called for it and Seal leaves it as it is.
	Sealed(evType string) bool
	// Open is called for every event a room admits from a peer (gossip,
	// catch-up, history, outliers), under the room's lock, before its
	// write is queued: once per event (again only after its write
	// failed), and not for those rejected or soft-failed (no client is
	// shown them). It returns what the node's clients are shown, stored
	// with the event as its record's Plain; nil when the event is not
	// encrypted or cannot be decrypted yet (the codec hands it over
	// later through Engine.SetPlain, from its own goroutine: not from
	// Open, which holds the room's lock). It must not block on the
	// network.
	Open(r *Room, ev *rooms.Event) (plain []byte)
}

// Plain is the decrypted view of an event: what a client is shown in
// place of its content. A record holds it as JSON.
type Plain struct {
	// Type is the event's real type (an m.room.encrypted message's inner
	// type; for state events, the event's own type).
	Type string `json:"type"`
	// Content is the full decrypted content.
	Content json.RawMessage `json:"content,omitempty"`
	// Status is "" when Content was decrypted, PlainForged when the
	// ciphertext claims a session its sender does not own (never shown
	// as that sender's words).
	Status string `json:"status,omitempty"`
}

// PlainForged marks a ciphertext under a session its sender does not own.
const PlainForged = "forged"
