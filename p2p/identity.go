package p2p

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/crypto"
	cryptopb "github.com/libp2p/go-libp2p/core/crypto/pb"
	"github.com/libp2p/go-libp2p/core/peer"
)

// ServerNameLen is the length of a parley server name: the lowercase hex
// encoding of a 32-byte ed25519 public key.
const ServerNameLen = 2 * ed25519.PublicKeySize

// ErrBadServerName is returned (wrapped) for a server name that is not the
// lowercase hex of an ed25519 public key.
var ErrBadServerName = errors.New("not a parley server name")

// ServerName returns the server name of an ed25519 public key: the lowercase
// hex of its 32 bytes.
func ServerName(pub ed25519.PublicKey) string {
	return hex.EncodeToString(pub)
}

// PeerIDFromServerName returns the libp2p peer ID of the node whose server name
// is name. Only the exact form ServerName produces is accepted (64 lowercase hex
// digits), so that a node has exactly one server name.
func PeerIDFromServerName(name string) (peer.ID, error) {
	if len(name) != ServerNameLen {
		return "", fmt.Errorf("p2p: server name %q: %w (want %d hex digits)", name, ErrBadServerName, ServerNameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return "", fmt.Errorf("p2p: server name %q: %w (want lowercase hex)", name, ErrBadServerName)
		}
	}
	raw, err := hex.DecodeString(name)
	if err != nil {
		return "", fmt.Errorf("p2p: server name %q: %w: %v", name, ErrBadServerName, err)
	}
	pub, err := crypto.UnmarshalEd25519PublicKey(raw)
	if err != nil {
		return "", fmt.Errorf("p2p: server name %q: %w: %v", name, ErrBadServerName, err)
	}
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("p2p: server name %q: %w", name, err)
	}
	return id, nil
}

// ServerNameFromPeerID returns the server name of the node with peer ID p. It
// fails for peer IDs that do not embed an ed25519 public key.
func ServerNameFromPeerID(p peer.ID) (string, error) {
	pub, err := p.ExtractPublicKey()
	if err != nil {
		return "", fmt.Errorf("p2p: peer %s has no embedded public key: %w", p, err)
	}
	if pub.Type() != cryptopb.KeyType_Ed25519 {
		return "", fmt.Errorf("p2p: peer %s has a %s key, not ed25519", p, pub.Type())
	}
	raw, err := pub.Raw()
	if err != nil {
		return "", fmt.Errorf("p2p: peer %s: %w", p, err)
	}
	return hex.EncodeToString(raw), nil
}

// PeerIDFromKey returns the libp2p peer ID of an ed25519 public key.
func PeerIDFromKey(pub ed25519.PublicKey) (peer.ID, error) {
	pk, err := crypto.UnmarshalEd25519PublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("p2p: public key: %w", err)
	}
	return peer.IDFromPublicKey(pk)
}

// libp2pKey checks that key is a well-formed ed25519 private key (seed followed
// by the matching public key) and converts it to libp2p's type.
func libp2pKey(key ed25519.PrivateKey) (crypto.PrivKey, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("p2p: node key has %d bytes, want %d", len(key), ed25519.PrivateKeySize)
	}
	derived := ed25519.NewKeyFromSeed(key.Seed())
	if !bytes.Equal(derived, key) {
		return nil, errors.New("p2p: node key: public half does not match the seed")
	}
	return crypto.UnmarshalEd25519PrivateKey(key)
}
