package e2ee

import (
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/hpke"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
)

// KEMField is the key of a member event's content that carries the
// joining node's KEM public key (a KEMDoc).
const KEMField = "org.parley.kem"

// KEMAlg names the KEM in a KEMDoc.
const KEMAlg = "x-wing"

// kemGen is the generation of the KEM key derived from the server key;
// a later generation would rotate it.
const kemGen = 1

// kem is the one KEM parley uses: X-Wing (ML-KEM-768 + X25519), so a
// seal stays confidential against a later quantum computer too. Its cost
// against X25519 is in the README.
func kem() hpke.KEM { return hpke.MLKEM768X25519() }

// KEMDoc is the content of KEMField: the node's KEM public key.
type KEMDoc struct {
	Alg string `json:"alg"`
	Gen int    `json:"gen"`
	Key string `json:"key"` // standard base64, padded
}

// KEMKey is a node's KEM key pair.
type KEMKey struct {
	priv hpke.PrivateKey
	doc  KEMDoc
}

// DeriveKEM derives the node's KEM key pair from its ed25519 server key,
// so no second secret needs a file of its own.
func DeriveKEM(key ed25519.PrivateKey) (*KEMKey, error) {
	seed, err := hkdf.Key(sha256.New, key.Seed(), []byte("parley"), fmt.Sprintf("parley/kem/%s/gen=%d", KEMAlg, kemGen), 32)
	if err != nil {
		return nil, err
	}
	priv, err := kem().NewPrivateKey(seed)
	if err != nil {
		return nil, err
	}
	pub := priv.PublicKey().Bytes()
	return &KEMKey{priv: priv, doc: KEMDoc{Alg: KEMAlg, Gen: kemGen, Key: base64.StdEncoding.EncodeToString(pub)}}, nil
}

// Doc is the public half, as it goes in a member event.
func (k *KEMKey) Doc() KEMDoc { return k.doc }

// Open opens a seal made to this key with info.
func (k *KEMKey) Open(info, sealed []byte) ([]byte, error) {
	pt, err := hpke.Open(k.priv, hpke.HKDFSHA256(), hpke.ChaCha20Poly1305(), info, sealed)
	if err != nil {
		return nil, errors.New("e2ee: seal does not open")
	}
	return pt, nil
}

// PublicKey is a parsed KEM public key of another node.
type PublicKey struct{ pk hpke.PublicKey }

// ParseKEMDoc checks a KEMDoc from a member event and parses its key.
func ParseKEMDoc(raw json.RawMessage) (PublicKey, error) {
	var d KEMDoc
	if err := json.Unmarshal(raw, &d); err != nil {
		return PublicKey{}, fmt.Errorf("e2ee: kem key: %w", err)
	}
	if d.Alg != KEMAlg {
		return PublicKey{}, fmt.Errorf("e2ee: kem key: algorithm %q, want %q", d.Alg, KEMAlg)
	}
	b, err := base64.StdEncoding.DecodeString(d.Key)
	if err != nil {
		return PublicKey{}, fmt.Errorf("e2ee: kem key: %w", err)
	}
	pk, err := kem().NewPublicKey(b)
	if err != nil {
		return PublicKey{}, fmt.Errorf("e2ee: kem key: %w", err)
	}
	return PublicKey{pk: pk}, nil
}

// Seal seals plaintext to pub under info (which binds the seal to its
// purpose, room and parties: a seal never opens under another info).
func Seal(pub PublicKey, info, plaintext []byte) ([]byte, error) {
	if pub.pk == nil {
		return nil, errors.New("e2ee: no public key")
	}
	return hpke.Seal(pub.pk, hpke.HKDFSHA256(), hpke.ChaCha20Poly1305(), info, plaintext)
}

// Info joins the parts of a seal's info with NUL bytes after a label.
func Info(label string, parts ...string) []byte {
	b := []byte(label)
	for _, p := range parts {
		b = append(b, 0)
		b = append(b, p...)
	}
	return b
}
