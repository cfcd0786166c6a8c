package media

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func chunkOf(data []byte, i int) []byte {
	return data[i*ChunkSize : min(len(data), (i+1)*ChunkSize)]
}

func TestPartialDownloadVerifiesEachChunkAndResumesAfterARestart(t *testing.T) {
	dir := t.TempDir()
	_, key, _ := ed25519.GenerateKey(nil)
	s := openStore(t, dir, Config{})
	data := randomBytes(t, 4*ChunkSize+123)
	m := testMeta(t, key, data)

	p, err := s.OpenPartial(m)
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Missing(); !slices.Equal(got, []int{0, 1, 2, 3, 4}) {
		t.Fatalf("missing %v", got)
	}
	if _, err := s.OpenPartial(m); !errors.Is(err, ErrBusy) {
		t.Fatalf("second OpenPartial: %v", err)
	}
	bad := bytes.Clone(chunkOf(data, 1))
	bad[7] ^= 1
	if err := p.WriteChunk(1, bad); !errors.Is(err, ErrChunkMismatch) {
		t.Fatalf("tampered chunk: %v", err)
	}
	if err := p.WriteChunk(4, chunkOf(data, 3)); !errors.Is(err, ErrChunkMismatch) {
		t.Fatalf("chunk at the wrong index: %v", err)
	}
	if err := p.WriteChunk(5, chunkOf(data, 4)); err == nil {
		t.Fatal("chunk out of range accepted")
	}
	for _, i := range []int{0, 2, 4} {
		if err := p.WriteChunk(i, chunkOf(data, i)); err != nil {
			t.Fatal(err)
		}
	}
	if !p.Have(2) || p.Have(1) {
		t.Fatal("Have disagrees with what was written")
	}
	if c, err := p.ReadChunk(2); err != nil || !bytes.Equal(c, chunkOf(data, 2)) {
		t.Fatalf("ReadChunk of a written chunk: %v", err)
	}
	if _, err := p.ReadChunk(1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("ReadChunk of a missing chunk: %v", err)
	}
	if err := p.Complete(); !errors.Is(err, ErrIncomplete) {
		t.Fatalf("Complete with chunks missing: %v", err)
	}
	p.Close()
	if p.Have(2) || p.Complete() == nil {
		t.Fatal("a closed download still has chunks or completes")
	}

	// A restart: a new store over the same directory resumes from the file.
	s.Close()
	s = openStore(t, dir, Config{})
	if u := s.Usage(); u.Partials != 1 || u.Total != int64(len(data)) {
		t.Fatalf("usage after restart %+v", u)
	}
	p, err = s.OpenPartial(m)
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Missing(); !slices.Equal(got, []int{1, 3}) {
		t.Fatalf("missing after resume %v, want [1 3]", got)
	}
	for _, i := range p.Missing() {
		if err := p.WriteChunk(i, chunkOf(data, i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Complete(); err != nil {
		t.Fatal(err)
	}
	if !s.Has(m.SHA256) || s.IsLocal(m.SHA256) {
		t.Fatal("completed download is not a remote blob")
	}
	if _, err := os.Stat(filepath.Join(dir, "part", m.SHA256)); !os.IsNotExist(err) {
		t.Fatalf("partial file left behind: %v", err)
	}
	if u := s.Usage(); u.Partials != 0 || u.Total != int64(len(data)) || u.Local != 0 {
		t.Fatalf("usage after Complete %+v", u)
	}
	b, _ := s.Open(m.SHA256)
	got := make([]byte, len(data))
	b.ReadAt(got, 0)
	b.Close()
	if !bytes.Equal(got, data) {
		t.Fatal("completed blob differs")
	}

	// Opening a download of a blob already here has nothing to do.
	p, err = s.OpenPartial(m)
	if err != nil || len(p.Missing()) != 0 || p.Complete() != nil {
		t.Fatalf("OpenPartial of a complete blob: %v %v", err, p.Missing())
	}
}

func TestCompleteRefusesAFileThatDoesNotHashToTheMetadata(t *testing.T) {
	// Chunk hashes that match but a whole-file hash that does not: only
	// a signer could make this, but Complete must not trust it.
	_, key, _ := ed25519.GenerateKey(nil)
	s := openStore(t, t.TempDir(), Config{})
	data := randomBytes(t, 1000)
	m := testMeta(t, key, data)
	m.SHA256 = hexSHA([]byte("other"))
	p, err := s.OpenPartial(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.WriteChunk(0, data); err != nil {
		t.Fatal(err)
	}
	if err := p.Complete(); !errors.Is(err, ErrChunkMismatch) {
		t.Fatalf("Complete: %v", err)
	}
	if s.Has(m.SHA256) || s.Usage().Total != 0 {
		t.Fatalf("bad download kept: %+v", s.Usage())
	}
}

func TestAbortDeletesThePartial(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(nil)
	dir := t.TempDir()
	s := openStore(t, dir, Config{})
	m := testMeta(t, key, randomBytes(t, 1000))
	p, err := s.OpenPartial(m)
	if err != nil {
		t.Fatal(err)
	}
	p.Abort()
	if _, err := os.Stat(filepath.Join(dir, "part", m.SHA256)); !os.IsNotExist(err) {
		t.Fatalf("partial after Abort: %v", err)
	}
	if u := s.Usage(); u.Total != 0 || u.Partials != 0 {
		t.Fatalf("usage after Abort %+v", u)
	}
}

func TestOpenDropsPartialsUntouchedForADay(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(nil)
	dir := t.TempDir()
	s := openStore(t, dir, Config{})
	fresh := testMeta(t, key, randomBytes(t, 1000))
	stale := testMeta(t, key, randomBytes(t, 1000))
	for _, m := range []*Meta{fresh, stale} {
		p, err := s.OpenPartial(m)
		if err != nil {
			t.Fatal(err)
		}
		p.Close()
	}
	s.Close()
	old := time.Now().Add(-25 * time.Hour)
	os.Chtimes(filepath.Join(dir, "part", stale.SHA256), old, old)
	s = openStore(t, dir, Config{})
	if u := s.Usage(); u.Partials != 1 || u.Total != 1000 {
		t.Fatalf("usage %+v, want the fresh partial only", u)
	}
	if _, err := os.Stat(filepath.Join(dir, "part", stale.SHA256)); !os.IsNotExist(err) {
		t.Fatalf("stale partial: %v", err)
	}
}
