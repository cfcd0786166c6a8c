// Package rooms is parley's model of a Matrix room's events: the PDU format of
// room versions 11 and 12, Matrix canonical JSON, content hashes, reference-hash
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
	return v == V11 || v == V12
}
