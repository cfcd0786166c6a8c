package media

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// partInfo is what the store counts of a partial file.
type partInfo struct {
	size    int64
	touched time.Time
	open    bool
}

// Partial is a download in progress of one blob, kept in part/<sha>. The
// file itself is the state: opening it again (after an error or a
// restart) hashes each chunk already there against the metadata, and only
// the chunks that do not match are missing. WriteChunk is safe for
// concurrent use (several chunks in flight).
type Partial struct {
	s    *Store
	meta *Meta
	path string
	f    *os.File

	mu       sync.Mutex
	missing  []bool
	left     int
	done     bool // completed, closed or aborted: no more writes
	complete bool // the blob is in blobs/
}

// OpenPartial opens or resumes the download of the blob meta describes
// (meta as returned by Verify). It fails with ErrBusy if a download of the
// same blob is open already, and with ErrQuotaFull if the file cannot fit
// even after evicting remote copies. If the blob is complete here already,
// the Partial has nothing missing and Complete is a no-op.
func (s *Store) OpenPartial(meta *Meta) (*Partial, error) {
	fail := func(err error) (*Partial, error) {
		return nil, fmt.Errorf("media: open partial %s: %w", meta.SHA256, err)
	}
	if err := meta.check(); err != nil {
		return fail(err)
	}
	sha := meta.SHA256
	p := &Partial{s: s, meta: meta, path: filepath.Join(s.dir, "part", sha), missing: make([]bool, len(meta.Chunks))}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return fail(ErrClosed)
	}
	if _, ok := s.blobs[sha]; ok {
		s.mu.Unlock()
		p.done, p.complete = true, true
		return p, nil
	}
	pi, ok := s.parts[sha]
	if ok && pi.open {
		s.mu.Unlock()
		return fail(ErrBusy)
	}
	if !ok {
		pi = &partInfo{}
		s.parts[sha] = pi
	}
	pi.open, pi.touched = true, s.now()
	grow := meta.Size - pi.size
	s.mu.Unlock()
	if err := s.reserve(grow); err != nil {
		p.release()
		return fail(err)
	}
	f, err := os.OpenFile(p.path, os.O_RDWR|os.O_CREATE, 0o600)
	if err == nil {
		err = f.Truncate(meta.Size)
	}
	if err != nil {
		if f != nil {
			f.Close()
		}
		p.release()
		return fail(err)
	}
	p.f = f
	s.mu.Lock()
	s.usage += grow
	pi.size = meta.Size
	s.mu.Unlock()
	buf := make([]byte, ChunkSize)
	for i, want := range meta.Chunks {
		n := chunkLen(meta.Size, i)
		if _, err := f.ReadAt(buf[:n], int64(i)*ChunkSize); err != nil && !errors.Is(err, io.EOF) {
			p.Close()
			return fail(err)
		}
		sum := sha256.Sum256(buf[:n])
		if !bytes.Equal(sum[:], want) {
			p.missing[i] = true
			p.left++
		}
	}
	return p, nil
}

// reserve makes room for n more bytes of remote data, evicting remote
// copies if needed; ErrQuotaFull if local media leave too little.
func (s *Store) reserve(n int64) error {
	s.mu.Lock()
	over := s.usage+n > s.cfg.Quota*highWater/100
	full := s.local+n > s.cfg.Quota
	s.mu.Unlock()
	if full {
		return ErrQuotaFull
	}
	if over {
		s.evict(n)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.usage+n > s.cfg.Quota {
		return ErrQuotaFull
	}
	return nil
}

// Meta is the metadata the download is for.
func (p *Partial) Meta() *Meta { return p.meta }

// Missing returns the indexes of the chunks not yet written and verified,
// in order.
func (p *Partial) Missing() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []int
	for i, m := range p.missing {
		if m {
			out = append(out, i)
		}
	}
	return out
}

// Have reports whether chunk i is written and verified.
func (p *Partial) Have(i int) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.complete || i >= 0 && i < len(p.missing) && !p.missing[i] && !p.done
}

// ReadChunk returns chunk i if it is written and verified (a member
// may serve what it has of a download in progress); ErrNotFound if not.
func (p *Partial) ReadChunk(i int) ([]byte, error) {
	if !p.Have(i) {
		return nil, ErrNotFound
	}
	p.mu.Lock()
	f, complete := p.f, p.complete
	p.mu.Unlock()
	if complete {
		return p.s.ReadChunk(p.meta.SHA256, i)
	}
	buf := make([]byte, chunkLen(p.meta.Size, i))
	if _, err := f.ReadAt(buf, int64(i)*ChunkSize); err != nil {
		return nil, fmt.Errorf("media: read chunk %d of partial %s: %w", i, p.meta.SHA256, err)
	}
	return buf, nil
}

// WriteChunk checks data against the metadata's hash of chunk i and
// writes it in place. ErrChunkMismatch (nothing written) if it does not
// match: the provider that sent it lied or broke.
func (p *Partial) WriteChunk(i int, data []byte) error {
	if i < 0 || i >= len(p.meta.Chunks) {
		return fmt.Errorf("media: write chunk %d of %s: out of range", i, p.meta.SHA256)
	}
	if int64(len(data)) != chunkLen(p.meta.Size, i) {
		return fmt.Errorf("media: write chunk %d of %s: %w (%d bytes)", i, p.meta.SHA256, ErrChunkMismatch, len(data))
	}
	sum := sha256.Sum256(data)
	if !bytes.Equal(sum[:], p.meta.Chunks[i]) {
		return fmt.Errorf("media: write chunk %d of %s: %w", i, p.meta.SHA256, ErrChunkMismatch)
	}
	p.mu.Lock()
	if p.done || p.f == nil {
		p.mu.Unlock()
		return fmt.Errorf("media: write chunk %d of %s: %w", i, p.meta.SHA256, ErrClosed)
	}
	if !p.missing[i] {
		p.mu.Unlock()
		return nil
	}
	p.mu.Unlock()
	if _, err := p.f.WriteAt(data, int64(i)*ChunkSize); err != nil {
		return fmt.Errorf("media: write chunk %d of %s: %w", i, p.meta.SHA256, err)
	}
	p.mu.Lock()
	if p.missing[i] {
		p.missing[i] = false
		p.left--
	}
	p.mu.Unlock()
	p.s.mu.Lock()
	if pi := p.s.parts[p.meta.SHA256]; pi != nil {
		pi.touched = p.s.now()
	}
	p.s.mu.Unlock()
	return nil
}

// Complete checks that no chunk is missing (ErrIncomplete; ErrClosed
// after Close or Abort) and that the
// whole file hashes to meta.SHA256 (else the partial is deleted:
// ErrChunkMismatch), then fsyncs it and moves it into blobs/ as a remote
// copy, which eviction may remove. It closes the Partial.
func (p *Partial) Complete() error {
	p.mu.Lock()
	if p.complete {
		p.mu.Unlock()
		return nil
	}
	if p.done {
		p.mu.Unlock()
		return fmt.Errorf("media: complete %s: %w", p.meta.SHA256, ErrClosed)
	}
	if p.left > 0 {
		p.mu.Unlock()
		return fmt.Errorf("media: complete %s: %w (%d chunks missing)", p.meta.SHA256, ErrIncomplete, p.left)
	}
	p.done = true
	p.mu.Unlock()
	fail := func(err error) error {
		p.f.Close()
		p.forget(true)
		return fmt.Errorf("media: complete %s: %w", p.meta.SHA256, err)
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(p.f, 0, p.meta.Size)); err != nil {
		return fail(err)
	}
	if hex.EncodeToString(h.Sum(nil)) != p.meta.SHA256 {
		return fail(ErrChunkMismatch)
	}
	if err := p.f.Sync(); err != nil {
		return fail(err)
	}
	if err := p.f.Close(); err != nil {
		return fail(err)
	}
	// The bytes move from the partial's count to the blob's.
	p.forget(false)
	if err := p.s.install(p.path, p.meta.SHA256, p.meta.Size, false); err != nil {
		os.Remove(p.path)
		return fmt.Errorf("media: complete %s: %w", p.meta.SHA256, err)
	}
	p.mu.Lock()
	p.complete = true
	p.mu.Unlock()
	return nil
}

// Close leaves the partial file for a later OpenPartial to resume.
// Idempotent; a no-op after Complete.
func (p *Partial) Close() error {
	p.mu.Lock()
	if p.done {
		p.mu.Unlock()
		return nil
	}
	p.done = true
	p.mu.Unlock()
	var err error
	if p.f != nil {
		err = p.f.Close()
	}
	p.release()
	return err
}

// Abort deletes the partial file.
func (p *Partial) Abort() error {
	p.mu.Lock()
	wasDone := p.done
	p.done = true
	p.mu.Unlock()
	if wasDone {
		return nil
	}
	if p.f != nil {
		p.f.Close()
	}
	p.forget(true)
	return nil
}

// release marks the partial closed, keeping its file and count.
func (p *Partial) release() {
	p.s.mu.Lock()
	if pi := p.s.parts[p.meta.SHA256]; pi != nil {
		pi.open = false
		if pi.size == 0 {
			delete(p.s.parts, p.meta.SHA256)
		}
	}
	p.s.mu.Unlock()
}

// forget drops the partial from the count, deleting its file if del.
func (p *Partial) forget(del bool) {
	p.s.mu.Lock()
	if pi := p.s.parts[p.meta.SHA256]; pi != nil {
		p.s.usage -= pi.size
		delete(p.s.parts, p.meta.SHA256)
	}
	p.s.mu.Unlock()
	if del {
		if err := os.Remove(p.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			p.s.log.Warn("remove partial", "sha", p.meta.SHA256, "err", err)
		}
	}
}
