// Package rooms is parley's model of a Matrix room's events: the PDU format of
// room versions 10, 11 and 12, Matrix canonical JSON, content hashes, reference-hash
// event IDs, ed25519 signatures over the redacted form, redaction, and the
// authorization rules.
//
// Everything here is a pure function of its inputs. The package must not import
// the network (libp2p, net/http), the store (badger) or any other parley package:
// state resolution (resolver) and the DAG store sit above it and call into it.
// deps_test.go enforces this.
//
// Identity in parley needs no key server: a node's server name is the lowercase
// hex of its ed25519 public key and its signing key ID is always [KeyID], so the
// key that must have signed an event follows from the sender's user ID alone
// (see [ServerKey]).
package rooms

// Room versions this package implements, and the protocol constants tied to them.
const (
	V10            = "10"
	V11            = "11"
	V12            = "12"
	DefaultVersion = V12

	// KeyID is the only signing key ID a parley node uses.
	KeyID = "ed25519:p2p"

	// MaxEventSize bounds the canonical JSON of a whole PDU, signatures included.
	MaxEventSize = 65536
)

// KnownVersion reports whether v is a room version this package implements.
func KnownVersion(v string) bool {
	return v == V10 || v == V11 || v == V12
}

// What sets the versions apart, for the callers that must know:
//
//   - Version 10 names the room creator in the create event's
//     content.creator (the auth rules read it there), keeps an
//     m.room.redaction's redacts at the top level of the PDU, and redacts
//     by the older algorithm (see Event.Redacted). Version 11 reads the
//     creator from the create event's sender and moved redacts into
//     content. Both have room IDs "!opaque:server" and use state
//     resolution v2.
//   - Version 12 derives the room ID from the create event's hash, gives
//     the room creators infinite power, and uses state resolution v2.1.

// RoomIDHasServer reports whether the version's room IDs are
// "!opaque:server", chosen by the creating server (10 and 11), rather than
// derived from the create event (12).
func RoomIDHasServer(version string) bool { return version != V12 }
