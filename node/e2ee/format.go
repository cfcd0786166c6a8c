package e2ee

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
)

// The formats of encrypted content and of key shares (see doc.go).

const (
	// Algorithm is the Matrix name of Megolm content encryption.
	Algorithm = "m.megolm.v1.aes-sha2"
	// EncryptedType is the type of an encrypted non-state event.
	EncryptedType = "m.room.encrypted"
	// EncryptedField holds the ciphertext of a state event's or a
	// redaction's content, beside the keys the auth rules read.
	EncryptedField = "org.parley.encrypted"
	// ShareType is the type of a key share event.
	ShareType = "org.parley.room_key"

	kindSession = "session"
	kindHistory = "history"
)

// b64 is unpadded standard base64, as Megolm and Matrix keys use it.
var b64 = base64.RawStdEncoding

// encrypted is the content of an m.room.encrypted event, and the value
// of EncryptedField.
// Ciphertexts made before sender_key and device_id were left out
// (each ~45 bytes of every event) carry them; they are read and ignored.
type encrypted struct {
	Algorithm  string `json:"algorithm"`
	SenderKey  string `json:"sender_key,omitempty"`
	Ciphertext string `json:"ciphertext"`
	SessionID  string `json:"session_id"`
	DeviceID   string `json:"device_id,omitempty"`
}

// inner is a Megolm plaintext: the original type and content, the room
// (and the state key of a state event), so a ciphertext cannot be moved
// to another room or another state slot.
type inner struct {
	Type     string          `json:"type"`
	StateKey *string         `json:"state_key,omitempty"`
	Content  json.RawMessage `json:"content"`
	RoomID   string          `json:"room_id"`
}

// share is the content of a ShareType event: a new session sealed to
// each member server (kind "session"), or a history handover sealed to
// one joiner (kind "history").
type share struct {
	V         int    `json:"v"`
	Kind      string `json:"kind"`
	Algorithm string `json:"algorithm,omitempty"`
	KEM       string `json:"kem"`
	Part      [2]int `json:"part"`
	// kind "session"
	SessionID string            `json:"session_id,omitempty"`
	Index     uint32            `json:"index,omitempty"`
	Binding   string            `json:"binding,omitempty"`
	Seals     map[string]string `json:"seals,omitempty"`
	// kind "history"
	For   string `json:"for,omitempty"`
	Nonce string `json:"nonce,omitempty"`
	Seal  string `json:"seal,omitempty"`
}

// handed is one session of a history handover: the session ID, its
// owner server, the owner's binding, and a Megolm export from index I.
type handed struct {
	S string `json:"s"`
	O string `json:"o"`
	B string `json:"b"`
	I uint32 `json:"i"`
	K string `json:"k"`
}

// maxHanded bounds the sessions of one handover event a node accepts.
const maxHanded = 400

// bindingMsg is what a session's own key signs to say which server owns
// it in which room: only the owner holds that key, so no one else can
// claim the session, and no owner can be claimed for someone else's.
func bindingMsg(roomID, owner, sessionID string) []byte {
	return Info("parley-session-v1", roomID, owner, sessionID)
}

// verifyBinding checks a binding against the session ID (the session's
// ed25519 public key).
func verifyBinding(roomID, owner, sessionID, binding string) bool {
	pub, err := b64.DecodeString(sessionID)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return false
	}
	sig, err := b64.DecodeString(binding)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return false
	}
	return ed25519.Verify(pub, bindingMsg(roomID, owner, sessionID), sig)
}

func shareInfo(roomID, owner, recipient, sessionID string) []byte {
	return Info("parley/share/v1", roomID, owner, recipient, sessionID)
}

func historyInfo(roomID, sender, recipient, nonce string) []byte {
	return Info("parley/history/v1", roomID, sender, recipient, nonce)
}
