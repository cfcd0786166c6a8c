package p2p

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

func TestServerNameAndPeerIDRoundTrip(t *testing.T) {
	for range 20 {
		key := newKey(t)
		pub := key.Public().(ed25519.PublicKey)
		name := ServerName(pub)
		if len(name) != ServerNameLen || strings.ToLower(name) != name {
			t.Fatalf("server name %q is not 64 lowercase hex digits", name)
		}
		id, err := PeerIDFromServerName(name)
		if err != nil {
			t.Fatal(err)
		}
		want, err := PeerIDFromKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		if id != want {
			t.Fatalf("PeerIDFromServerName(%s) = %s, want %s", name, id, want)
		}
		back, err := ServerNameFromPeerID(id)
		if err != nil {
			t.Fatal(err)
		}
		if back != name {
			t.Fatalf("ServerNameFromPeerID(%s) = %s, want %s", id, back, name)
		}
	}
}

func TestHostIdentityMatchesItsKey(t *testing.T) {
	key := newKey(t)
	h, err := New(Config{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	if h.ServerName() != ServerName(key.Public().(ed25519.PublicKey)) {
		t.Errorf("server name %s does not match the key", h.ServerName())
	}
	id, err := PeerIDFromServerName(h.ServerName())
	if err != nil || id != h.ID() {
		t.Errorf("peer ID %s, from server name %s (%v)", h.ID(), id, err)
	}
}

func TestPeerIDFromServerNameRejectsOtherNames(t *testing.T) {
	valid := ServerName(newKey(t).Public().(ed25519.PublicKey))
	tests := []struct {
		name, serverName string
	}{
		{"empty name", ""},
		{"one digit short", valid[:63]},
		{"one digit long", valid + "0"},
		{"uppercase hex", strings.ToUpper(valid)},
		{"non-hex letter", "g" + valid[1:]},
		{"name with a port", valid[:59] + ":8448"},
		{"DNS name", "example.org"},
		{"0x prefix", "0x" + valid[2:]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := PeerIDFromServerName(tt.serverName); !errors.Is(err, ErrBadServerName) {
				t.Fatalf("PeerIDFromServerName(%q) = %v, want ErrBadServerName", tt.serverName, err)
			}
		})
	}
}

func TestServerNameFromPeerIDRejectsNonEd25519Peers(t *testing.T) {
	sk, _, err := crypto.GenerateSecp256k1Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	secp, err := peer.IDFromPrivateKey(sk)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []peer.ID{secp, "", "not a peer id"} {
		if name, err := ServerNameFromPeerID(p); err == nil {
			t.Errorf("ServerNameFromPeerID(%q) = %q, want an error", p, name)
		}
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	key := newKey(t)
	bad := make(ed25519.PrivateKey, ed25519.PrivateKeySize)
	copy(bad, key)
	bad[40] ^= 1 // public half no longer matches the seed
	tests := []struct {
		name    string
		cfg     Config
		mention string
	}{
		{"no key", Config{}, "node key"},
		{"short key", Config{Key: key[:32]}, "node key"},
		{"key whose halves disagree", Config{Key: bad}, "does not match"},
		{"malformed listen address", Config{Key: key, ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0", "/ip4/nonsense"}}, "/ip4/nonsense"},
		{"bootstrap address without peer ID", Config{Key: key, Bootstrap: []string{"/ip4/127.0.0.1/tcp/4001"}}, "/ip4/127.0.0.1/tcp/4001"},
		{"malformed bootstrap address", Config{Key: key, Bootstrap: []string{"/dns4"}}, "/dns4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.mention) {
				t.Fatalf("New = %v, want an error mentioning %q", err, tt.mention)
			}
		})
	}
}
