package media

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/parley-p2p/parley/rooms"
)

func TestSignedMetadataVerifiesForItsMxcOnly(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(nil)
	server := rooms.ServerName(pub)
	data := randomBytes(t, ChunkSize+5)
	m := testMeta(t, key, data)
	raw, err := m.Sign(key)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Verify(raw, server, m.MediaID)
	if err != nil {
		t.Fatal(err)
	}
	if got.SHA256 != m.SHA256 || got.Size != m.Size || len(got.Chunks) != 2 || got.Type != "image/png" || got.Name != "a.png" {
		t.Fatalf("verified meta %+v", got)
	}

	otherPub, otherKey, _ := ed25519.GenerateKey(nil)
	forged := *m
	forged.Server = rooms.ServerName(otherPub)
	forgedRaw, _ := forged.Sign(otherKey)

	tamper := func(f func(map[string]any)) []byte {
		var obj map[string]any
		json.Unmarshal(raw, &obj)
		f(obj)
		b, _ := json.Marshal(obj)
		return b
	}
	cases := []struct {
		name            string
		raw             []byte
		server, mediaID string
	}{
		{"for another media ID", raw, server, "other"},
		{"for another server", raw, rooms.ServerName(otherPub), m.MediaID},
		{"signed by a key that is not the server's", forgedRaw, server, m.MediaID},
		{"with a changed size", tamper(func(o map[string]any) { o["size"] = 1 }), server, m.MediaID},
		{"with a changed hash", tamper(func(o map[string]any) { o["sha256"] = strings.Repeat("0", 64) }), server, m.MediaID},
		{"with no signature", tamper(func(o map[string]any) { delete(o, "sig") }), server, m.MediaID},
		{"with a field added", tamper(func(o map[string]any) { o["x"] = 1 }), server, m.MediaID},
		{"that is not JSON", []byte("{"), server, m.MediaID},
		{"for a server name that is not a key", raw, "example.org", m.MediaID},
		{"that is too big", append(raw, make([]byte, MaxMetaBytes)...), server, m.MediaID},
	}
	for _, c := range cases {
		t.Run("refuses metadata "+c.name, func(t *testing.T) {
			if _, err := Verify(c.raw, c.server, c.mediaID); !errors.Is(err, ErrBadMeta) {
				t.Fatalf("Verify: %v", err)
			}
		})
	}
}

func TestSignRefusesMetadataOutOfBounds(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(nil)
	data := randomBytes(t, 100)
	cases := map[string]func(*Meta){
		"a chunk hash too short":       func(m *Meta) { m.Chunks[0] = m.Chunks[0][:31] },
		"a chunk count not the size's": func(m *Meta) { m.Size = ChunkSize + 1 },
		"a size over the maximum":      func(m *Meta) { m.Size = MaxSize + 1 },
		"a media ID with a slash":      func(m *Meta) { m.MediaID = "a/b" },
		"an uppercase hash":            func(m *Meta) { m.SHA256 = strings.ToUpper(m.SHA256) },
		"a malformed type":             func(m *Meta) { m.Type = "image/" },
	}
	for name, f := range cases {
		t.Run(name, func(t *testing.T) {
			m := testMeta(t, key, data)
			f(m)
			if _, err := m.Sign(key); err == nil {
				t.Fatal("signed")
			}
		})
	}
}

func TestValidMediaID(t *testing.T) {
	for id, want := range map[string]bool{
		"abc": true, "A-z_0": true, strings.Repeat("a", 255): true,
		"": false, "..": false, "a/b": false, "a.b": false, "a%2Fb": false, strings.Repeat("a", 256): false, "é": false,
	} {
		if ValidMediaID(id) != want {
			t.Errorf("ValidMediaID(%q) = %v", id, !want)
		}
	}
}
