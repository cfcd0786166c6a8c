package rooms

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
)

// Errors from Verify and VerifySignature, for errors.Is.
var (
	// ErrBadSignature: the signature is missing, malformed or does not verify.
	// Callers drop the event.
	ErrBadSignature = errors.New("bad signature")
	// ErrContentHash: hashes.sha256 does not match the event. The spec lets a
	// server keep the redacted copy; parley's callers drop the event.
	ErrContentHash = errors.New("content hash mismatch")
)

// ProtoEvent is an event before hashing and signing: what Build needs.
type ProtoEvent struct {
	RoomID         string
	Sender         string
	Type           string
	StateKey       *string // nil for a non-state event; see NewStateKey
	Content        json.RawMessage
	PrevEvents     []string
	AuthEvents     []string
	Depth          int64
	OriginServerTS int64
}

// Build makes a signed event from p: it fills in hashes.sha256, signs the
// redacted form with key as (serverName, KeyID), and parses the result. The
// sender must belong to serverName and key must be serverName's key. For a
// version 12 m.room.create, p.RoomID must be "": the room ID follows from the
// resulting event ID. For a version 10 m.room.redaction, content.redacts is
// also put at the top level, where that version reads it.
func Build(p ProtoEvent, version, serverName string, key ed25519.PrivateKey) (*Event, error) {
	fail := func(err error) (*Event, error) {
		return nil, fmt.Errorf("rooms: build %s event: %w", p.Type, err)
	}
	if !KnownVersion(version) {
		return fail(fmt.Errorf("unknown room version %q", version))
	}
	if err := checkKey(serverName, key); err != nil {
		return fail(err)
	}
	if server, err := ServerOf(p.Sender); err != nil {
		return fail(err)
	} else if server != serverName {
		return fail(fmt.Errorf("sender %s is not on server %s", p.Sender, serverName))
	}

	content := emptyObject()
	if len(p.Content) > 0 {
		var err error
		if content, err = parseJSON(p.Content); err != nil {
			return fail(fmt.Errorf("content: %w", err))
		}
		if content.kind != kObject {
			return fail(errors.New("content is not a JSON object"))
		}
	}
	pdu := emptyObject().
		with("type", stringValue(p.Type)).
		with("sender", stringValue(p.Sender)).
		with("content", content).
		with("prev_events", stringsValue(p.PrevEvents)).
		with("auth_events", stringsValue(p.AuthEvents)).
		with("depth", intValue(p.Depth)).
		with("origin_server_ts", intValue(p.OriginServerTS))
	if p.StateKey != nil {
		pdu = pdu.with("state_key", stringValue(*p.StateKey))
	}
	if redacts, ok := content.getString("redacts"); ok && version == V10 && p.Type == "m.room.redaction" {
		// Version 10 reads it at the top level; content keeps it too, as
		// clients of later versions look for it there.
		pdu = pdu.with("redacts", stringValue(redacts))
	}
	if version == V12 && p.Type == "m.room.create" {
		if p.RoomID != "" {
			return fail(errors.New("a version 12 create event has no room ID: it is derived from the event"))
		}
	} else {
		pdu = pdu.with("room_id", stringValue(p.RoomID))
	}

	hash := contentHash(pdu)
	pdu = pdu.with("hashes", emptyObject().with("sha256", stringValue(base64.RawStdEncoding.EncodeToString(hash[:]))))
	pdu = pdu.with("signatures", emptyObject())
	pdu = addSignature(pdu, version, serverName, key)

	// Re-parse the bytes rather than trust the tree: this checks what the tree
	// cannot know, such as invalid UTF-8 in the caller's strings.
	e, err := ParseEvent(pdu.bytes(), version)
	if err != nil {
		return fail(err)
	}
	return e, nil
}

// Sign returns e with serverName's signature added (or replaced). The invitee's
// node uses it to co-sign an invite, and an authorising server to sign a
// restricted join. The event ID does not change.
func Sign(e *Event, serverName string, key ed25519.PrivateKey) (*Event, error) {
	if err := checkKey(serverName, key); err != nil {
		return nil, fmt.Errorf("rooms: sign %s: %w", e.id, err)
	}
	signed, err := e.rebuilt(addSignature(e.pdu, e.version, serverName, key))
	if err != nil {
		return nil, fmt.Errorf("rooms: sign %s: %w", e.id, err)
	}
	return signed, nil
}

// VerifySignature checks that serverName signed the redacted form of e with
// key ID KeyID and the key ServerKey(serverName).
func VerifySignature(e *Event, serverName string) error {
	pub, err := ServerKey(serverName)
	if err != nil {
		return fmt.Errorf("rooms: verify %s: %w: %w", e.id, ErrBadSignature, err)
	}
	sigs, _ := e.pdu.get("signatures")
	server, _ := sigs.get(serverName)
	b64, ok := server.getString(KeyID)
	if !ok {
		return fmt.Errorf("rooms: verify %s: %w: no %s signature from %s", e.id, ErrBadSignature, KeyID, serverName)
	}
	sig, err := decodeBase64(b64)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return fmt.Errorf("rooms: verify %s: %w: malformed signature from %s", e.id, ErrBadSignature, serverName)
	}
	if !ed25519.Verify(pub, signingBytes(e.pdu, e.version), sig) {
		return fmt.Errorf("rooms: verify %s: %w: signature from %s does not match", e.id, ErrBadSignature, serverName)
	}
	return nil
}

// Verify makes the receipt checks that need no room state: the signature of the
// sender's server, then the content hash. A version 12 create event's binding to
// its room ID needs no check: RoomID derives from the event ID. An invite for a
// user on another server needs that server's co-signature too; callers check it
// with VerifySignature where they require it.
func Verify(e *Event) error {
	if err := VerifySignature(e, serverOf(e.sender)); err != nil {
		return err
	}
	hashes, _ := e.pdu.get("hashes")
	b64, _ := hashes.getString("sha256")
	want, err := decodeBase64(b64)
	if sum := contentHash(e.pdu); err != nil || !bytes.Equal(want, sum[:]) {
		return fmt.Errorf("rooms: verify %s: %w", e.id, ErrContentHash)
	}
	return nil
}

// contentHash is SHA-256 over the canonical JSON of the event without
// unsigned, signatures and hashes.
func contentHash(pdu value) [sha256.Size]byte {
	return hashCanonical(pdu.without("unsigned", "signatures", "hashes"))
}

// addSignature signs the redacted form of pdu and stores the signature under
// signatures[serverName][KeyID].
func addSignature(pdu value, version, serverName string, key ed25519.PrivateKey) value {
	sig := ed25519.Sign(key, signingBytes(pdu, version))
	sigs, ok := pdu.get("signatures")
	if !ok || sigs.kind != kObject {
		sigs = emptyObject()
	}
	server, ok := sigs.get(serverName)
	if !ok || server.kind != kObject {
		server = emptyObject()
	}
	server = server.with(KeyID, stringValue(base64.RawStdEncoding.EncodeToString(sig)))
	return pdu.with("signatures", sigs.with(serverName, server))
}

// checkKey checks that key is a whole ed25519 private key belonging to serverName.
func checkKey(serverName string, key ed25519.PrivateKey) error {
	if len(key) != ed25519.PrivateKeySize {
		return fmt.Errorf("signing key has %d bytes, want %d", len(key), ed25519.PrivateKeySize)
	}
	if name := ServerName(key.Public().(ed25519.PublicKey)); name != serverName {
		return fmt.Errorf("signing key belongs to %s, not %s", name, serverName)
	}
	return nil
}

// decodeBase64 accepts the unpadded standard base64 Matrix uses, and tolerates
// padding.
func decodeBase64(s string) ([]byte, error) {
	if b, err := base64.RawStdEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	return base64.StdEncoding.DecodeString(s)
}

// SignJSON signs a JSON object as the spec's "Signing JSON" appendix says: the
// canonical JSON of the object without signatures and unsigned is signed with
// key, and the signature is stored at signatures[signer][keyID]. It returns
// the canonical JSON of the signed object (unsigned kept).
func SignJSON(object []byte, signer, keyID string, key ed25519.PrivateKey) ([]byte, error) {
	v, err := parseJSON(object)
	if err != nil {
		return nil, fmt.Errorf("rooms: sign JSON: %w", err)
	}
	if v.kind != kObject {
		return nil, errors.New("rooms: sign JSON: not a JSON object")
	}
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("rooms: sign JSON: key has %d bytes", len(key))
	}
	sig := ed25519.Sign(key, v.without("signatures", "unsigned").bytes())
	sigs, ok := v.get("signatures")
	if !ok || sigs.kind != kObject {
		sigs = emptyObject()
	}
	mine, ok := sigs.get(signer)
	if !ok || mine.kind != kObject {
		mine = emptyObject()
	}
	mine = mine.with(keyID, stringValue(base64.RawStdEncoding.EncodeToString(sig)))
	return v.with("signatures", sigs.with(signer, mine)).bytes(), nil
}

// VerifyJSON checks signer's signature under keyID on a JSON object against pub
// (the spec's "Checking for a signature").
func VerifyJSON(object []byte, signer, keyID string, pub ed25519.PublicKey) error {
	v, err := parseJSON(object)
	if err != nil {
		return fmt.Errorf("rooms: verify JSON: %w", err)
	}
	sigs, _ := v.get("signatures")
	mine, _ := sigs.get(signer)
	b64, ok := mine.getString(keyID)
	if !ok {
		return fmt.Errorf("rooms: verify JSON: %w: no %s signature from %s", ErrBadSignature, keyID, signer)
	}
	sig, err := decodeBase64(b64)
	if err != nil || len(pub) != ed25519.PublicKeySize || !ed25519.Verify(pub, v.without("signatures", "unsigned").bytes(), sig) {
		return fmt.Errorf("rooms: verify JSON: %w: signature from %s does not match", ErrBadSignature, signer)
	}
	return nil
}
