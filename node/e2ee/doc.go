// Package e2ee encrypts a node's rooms end to end between member nodes.
//
// Each node has a KEM key pair (X-Wing: ML-KEM-768 with X25519, through
// Go's crypto/hpke), derived from its ed25519 server key and published in
// the member events of its own users' joins, where the event's signature
// covers it. Only a join sent by the joining user's own server counts as
// that server's key (an inviter could otherwise plant one in an invite).
//
// Keeper implements dag.Codec. A non-state event goes in the DAG as
// m.room.encrypted with the m.megolm.v1.aes-sha2 fields of Matrix
// (algorithm, ciphertext, session_id; not sender_key and device_id,
// which the spec deprecates since v1.3 and a node never reads: the
// event's signature names the sender); its Megolm plaintext is {"type",
// "content", "room_id"}. A state event keeps its type, state key and the
// keys the room version's redaction algorithm keeps
// (rooms.RedactContent), and the full content goes in
// "org.parley.encrypted" (the same three fields; the plaintext adds
// "state_key"). A redaction keeps "redacts" the same
// way. Events with nothing beyond those keys (create, join rules, power
// levels, history visibility) and parley's own org.parley.* types stay
// as they are.
//
// Each node has one outbound Megolm session per room, in memory only:
// after a restart (or a crash) it starts a new session at its first
// send, so no message index is ever used twice. Prepare rotates the
// session when someone who was a member while it was in use is no
// longer joined or invited, when history visibility changed, after 100
// messages or a week, and shares a new session with every other joined
// server through org.parley.room_key events (kind "session"): one HPKE
// seal of the signed 229-byte sharing message per server, bound to
// room, owner, recipient and session, split past about 56 KB, with a
// binding signature by the session's own key over (room, owner,
// session). A server that joined since gets the session from its
// current index. When another server joins, each member node hands it
// (kind "history") its own sessions, and those of owners no longer
// joined, each exported from the first index of an event the joiner may
// see (Config.Visible), sealed to its KEM key.
//
// What the keeper accepts: a session only from its owner's share (the
// binding names the event's sender server) or from a handover carrying
// the owner's binding, the first owner recorded for a session wins, and
// an exported ratchet replaces nothing it does not agree with; a
// ciphertext only from the session's owner (else it is shown as
// forged), only in its room and state slot, and each message index only
// once. Inbound sessions (with the node's own copies) are stored, not
// encrypted at rest; events waiting on a key are stored by session, and
// opened in the background (Engine.SetPlain) when the key comes.
//
// The package reads and writes the engine and the store only: no
// network, no HTTP (deps_test.go).
package e2ee
