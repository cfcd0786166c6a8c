package media

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"testing"
	"time"
)

func TestEvictionDropsLeastRecentlyUsedRemoteCopiesNeverLocalOnes(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(nil)
	var evicted []string
	s := openStore(t, t.TempDir(), Config{Quota: 10 * ChunkSize, OnEvict: func(sha string) { evicted = append(evicted, sha) }})
	clock := time.Unix(1000, 0)
	s.now = func() time.Time { clock = clock.Add(time.Minute); return clock }

	local, err := s.Put(bytes.NewReader(randomBytes(t, 3*ChunkSize)))
	if err != nil {
		t.Fatal(err)
	}
	a := remoteBlob(t, s, key, randomBytes(t, 2*ChunkSize))
	b := remoteBlob(t, s, key, randomBytes(t, 2*ChunkSize))
	// a is read after b: b is now the least recently used.
	r, _ := s.Open(a.SHA256)
	r.Close()
	c := remoteBlob(t, s, key, randomBytes(t, 2*ChunkSize)) // 9 of 10 chunks: not over 90 %
	if len(evicted) != 0 {
		t.Fatalf("evicted %v below the high-water mark", evicted)
	}
	d := remoteBlob(t, s, key, randomBytes(t, 2*ChunkSize)) // needs room: down to 80 %
	if len(evicted) != 2 || evicted[0] != b.SHA256 || evicted[1] != a.SHA256 {
		t.Fatalf("evicted %v, want b then a", evicted)
	}
	for _, sha := range []string{local.SHA256, c.SHA256, d.SHA256} {
		if !s.Has(sha) {
			t.Fatalf("%s evicted", sha)
		}
	}
	if u := s.Usage(); u.Total != 7*ChunkSize || u.Evicted != 2 {
		t.Fatalf("usage %+v", u)
	}
}

func TestAnOpenBlobIsNotEvicted(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(nil)
	s := openStore(t, t.TempDir(), Config{Quota: 4 * ChunkSize})
	a := remoteBlob(t, s, key, randomBytes(t, 2*ChunkSize))
	r, err := s.Open(a.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	m := testMeta(t, key, randomBytes(t, 2*ChunkSize+1))
	if _, err := s.OpenPartial(m); !errors.Is(err, ErrQuotaFull) {
		t.Fatalf("OpenPartial with only a busy blob to evict: %v", err)
	}
	if !s.Has(a.SHA256) {
		t.Fatal("a blob being read was evicted")
	}
}

func TestLocalMediaFillingTheQuotaRefuseRemoteDownloads(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(nil)
	s := openStore(t, t.TempDir(), Config{Quota: 4 * ChunkSize})
	if _, err := s.Put(bytes.NewReader(randomBytes(t, 3*ChunkSize))); err != nil {
		t.Fatal(err)
	}
	if _, err := s.OpenPartial(testMeta(t, key, randomBytes(t, 2*ChunkSize))); !errors.Is(err, ErrQuotaFull) {
		t.Fatalf("OpenPartial past the quota: %v", err)
	}
	if !s.Room(ChunkSize) || s.Room(ChunkSize+1) {
		t.Fatal("Room disagrees with the quota")
	}
}

func TestIdlePartialsAndRemoteThumbnailsGoBeforeRemoteBlobs(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(nil)
	s := openStore(t, t.TempDir(), Config{Quota: 10 * ChunkSize})
	clock := time.Unix(1000, 0)
	s.now = func() time.Time { return clock }
	a := remoteBlob(t, s, key, randomBytes(t, 2*ChunkSize))
	if err := s.PutThumb(a.SHA256, "96x96-c.jpg", make([]byte, ChunkSize)); err != nil {
		t.Fatal(err)
	}
	if data, err := s.Thumb(a.SHA256, "96x96-c.jpg"); err != nil || len(data) != ChunkSize {
		t.Fatalf("Thumb: %d bytes, %v", len(data), err)
	}
	if err := s.PutThumb(a.SHA256, "../../x", []byte("x")); err == nil {
		t.Fatal("PutThumb took a path as key")
	}
	p, err := s.OpenPartial(testMeta(t, key, randomBytes(t, 4*ChunkSize)))
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
	clock = clock.Add(2 * time.Hour)
	// 7 of 10 used; 3 more need room for 80 %: the idle partial goes (4),
	// then nothing else needs to.
	remoteBlob(t, s, key, randomBytes(t, 3*ChunkSize))
	if u := s.Usage(); u.Partials != 0 || !s.Has(a.SHA256) {
		t.Fatalf("after eviction %+v, a there: %v", u, s.Has(a.SHA256))
	}
	if _, err := s.Thumb(a.SHA256, "96x96-c.jpg"); err != nil {
		t.Fatalf("thumbnail evicted though the partial sufficed: %v", err)
	}
	// Removing the blob removes its thumbnails.
	s.Remove(a.SHA256)
	if _, err := s.Thumb(a.SHA256, "96x96-c.jpg"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("thumbnail of a removed blob: %v", err)
	}
}
