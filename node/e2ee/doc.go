// Package e2ee encrypts a node's rooms end to end between member nodes.
//
// Each node has a KEM key pair (X-Wing: ML-KEM-768 with X25519, through
// Go's crypto/hpke), derived from its ed25519 server key and published in
// the member events of its own users' joins, where the event's signature
// covers it. Room content travels as Megolm ciphertext (the
// m.megolm.v1.aes-sha2 format of Matrix); each node shares its Megolm
// sessions with the other member nodes through events in the room DAG
// that hold one HPKE seal per recipient.
package e2ee
