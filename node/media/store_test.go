package media

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parley-p2p/parley/rooms"
)

func openStore(t *testing.T, dir string, cfg Config) *Store {
	t.Helper()
	s, err := Open(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func hexSHA(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func TestPutStoresAContentAddressedBlobWithItsChunkHashes(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, filepath.Join(dir, "media"), Config{})
	data := randomBytes(t, 2*ChunkSize+1000)
	d, err := s.Put(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if d.SHA256 != hexSHA(data) || d.Size != int64(len(data)) {
		t.Fatalf("digest %s/%d, want %s/%d", d.SHA256, d.Size, hexSHA(data), len(data))
	}
	if len(d.Chunks) != 3 {
		t.Fatalf("%d chunk hashes, want 3", len(d.Chunks))
	}
	last := sha256.Sum256(data[2*ChunkSize:])
	if !bytes.Equal(d.Chunks[2], last[:]) {
		t.Fatal("last chunk hash is wrong")
	}
	path := filepath.Join(dir, "media", "blobs", d.SHA256[:2], d.SHA256)
	if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("blob file: %v", err)
	}
	if info, err := os.Stat(filepath.Join(dir, "media")); err != nil || info.Mode().Perm() != 0o700 {
		t.Fatalf("media dir mode %v, %v", info.Mode(), err)
	}
	if !s.Has(d.SHA256) || !s.IsLocal(d.SHA256) {
		t.Fatal("Put blob is not there as local")
	}
	if entries, _ := os.ReadDir(filepath.Join(dir, "media", "tmp")); len(entries) != 0 {
		t.Fatalf("tmp/ holds %d files after Put", len(entries))
	}

	b, err := s.Open(d.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	b.Seek(ChunkSize, io.SeekStart)
	head := make([]byte, 10)
	io.ReadFull(b, head)
	b.Close()
	if !bytes.Equal(head, data[ChunkSize:ChunkSize+10]) {
		t.Fatal("Open read the wrong bytes")
	}

	c, err := s.ReadChunk(d.SHA256, 2)
	if err != nil || !bytes.Equal(c, data[2*ChunkSize:]) {
		t.Fatalf("ReadChunk 2: %d bytes, %v", len(c), err)
	}
	if _, err := s.ReadChunk(d.SHA256, 3); !errors.Is(err, ErrNotFound) {
		t.Fatalf("ReadChunk past the end: %v", err)
	}

	if err := s.Remove(d.SHA256); err != nil {
		t.Fatal(err)
	}
	if s.Has(d.SHA256) {
		t.Fatal("removed blob still there")
	}
	if _, err := s.Open(d.SHA256); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Open of removed blob: %v", err)
	}
	if u := s.Usage(); u.Total != 0 || u.Local != 0 {
		t.Fatalf("usage after remove %+v", u)
	}
}

func TestPutOfAnEmptyFile(t *testing.T) {
	s := openStore(t, t.TempDir(), Config{})
	d, err := s.Put(strings.NewReader(""))
	if err != nil {
		t.Fatal(err)
	}
	if d.Size != 0 || len(d.Chunks) != 0 || d.SHA256 != hexSHA(nil) {
		t.Fatalf("digest %+v", d)
	}
}

func TestOpenRefusesNamesThatAreNotHashes(t *testing.T) {
	s := openStore(t, t.TempDir(), Config{})
	for _, name := range []string{"", "../../etc/passwd", strings.Repeat("A", 64), strings.Repeat("a", 63)} {
		if _, err := s.Open(name); !errors.Is(err, ErrNotFound) {
			t.Errorf("Open(%q): %v", name, err)
		}
		if _, err := s.ReadChunk(name, 0); !errors.Is(err, ErrNotFound) {
			t.Errorf("ReadChunk(%q): %v", name, err)
		}
	}
}

func TestReopenCountsWhatIsThereAndEmptiesTmp(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, Config{})
	d, err := s.Put(bytes.NewReader(randomBytes(t, 5000)))
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	os.WriteFile(filepath.Join(dir, "tmp", "up-leftover"), []byte("x"), 0o600)
	s2 := openStore(t, dir, Config{IsLocal: func(sha string) bool { return sha == d.SHA256 }})
	if u := s2.Usage(); u.Total != 5000 || u.Local != 5000 || u.Blobs != 1 {
		t.Fatalf("usage after reopen %+v", u)
	}
	if entries, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(entries) != 0 {
		t.Fatal("tmp/ not emptied at Open")
	}
}

func TestPutFailsWhenLocalMediaWouldPassTheQuota(t *testing.T) {
	s := openStore(t, t.TempDir(), Config{Quota: 10000})
	if _, err := s.Put(bytes.NewReader(randomBytes(t, 6000))); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(bytes.NewReader(randomBytes(t, 6000))); !errors.Is(err, ErrQuotaFull) {
		t.Fatalf("second Put over quota: %v", err)
	}
	if u := s.Usage(); u.Total != 6000 || u.Blobs != 1 {
		t.Fatalf("usage after refused Put %+v", u)
	}
}

// remoteBlob stores data as a remote copy, through a Partial.
func remoteBlob(t *testing.T, s *Store, key ed25519.PrivateKey, data []byte) *Meta {
	t.Helper()
	m := testMeta(t, key, data)
	p, err := s.OpenPartial(m)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range p.Missing() {
		if err := p.WriteChunk(i, data[i*ChunkSize:min(len(data), (i+1)*ChunkSize)]); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Complete(); err != nil {
		t.Fatal(err)
	}
	return m
}

func testMeta(t *testing.T, key ed25519.PrivateKey, data []byte) *Meta {
	t.Helper()
	h := newHasher()
	h.Write(data)
	d := h.digest()
	return &Meta{V: 1, Server: rooms.ServerName(key.Public().(ed25519.PublicKey)), MediaID: "abcDEF012_-x", Size: d.Size,
		SHA256: d.SHA256, Chunk: ChunkSize, Chunks: d.Chunks, Type: "image/png", Name: "a.png", TS: 1}
}
