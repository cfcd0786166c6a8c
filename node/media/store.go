package media

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Errors of the store, for errors.Is.
var (
	// ErrNotFound: no complete blob of that SHA-256 here.
	ErrNotFound = errors.New("media: no such blob")
	// ErrQuotaFull: storing this would take local media past the quota
	// (remote copies are evicted first; local uploads never are).
	ErrQuotaFull = errors.New("media: this node's media quota is full")
	// ErrChunkMismatch: a chunk's bytes do not hash to the metadata's hash.
	ErrChunkMismatch = errors.New("media: chunk does not match its hash")
	// ErrIncomplete: Complete was called with chunks still missing.
	ErrIncomplete = errors.New("media: download incomplete")
	// ErrBusy: a download of that blob is already open.
	ErrBusy = errors.New("media: download already in progress")
	// ErrClosed: the store or the download was closed.
	ErrClosed = errors.New("media: closed")
)

// Config configures a Store. The zero value works.
type Config struct {
	// Quota bounds the bytes of blobs, partial downloads and thumbnails
	// together. 0 means 10 GiB.
	Quota int64
	// IsLocal says whether a blob found at Open is the original of an
	// upload to this node (never evicted). nil: none is.
	IsLocal func(sha string) bool
	// OnEvict is called (without the store's lock) for each remote blob
	// eviction removed, so records naming it can go. Optional.
	OnEvict func(sha string)
	// CheckFree, if set, refuses writes that would leave the disk too
	// full: need bytes more are about to be written. Its error (the
	// store's DiskFullError wraps syscall.ENOSPC) is returned as is.
	CheckFree func(need int64) error
	// Logger; slog.Default() if nil.
	Logger *slog.Logger
}

// checkEvery is how many bytes an upload writes between disk space checks.
const checkEvery = 16 << 20

// DefaultQuota is Config.Quota's default.
const DefaultQuota = 10 << 30

// Store is the node's media directory. Its methods are safe for
// concurrent use.
type Store struct {
	dir     string
	cfg     Config
	log     *slog.Logger
	now     func() time.Time
	mu      sync.Mutex
	blobs   map[string]*blobInfo
	parts   map[string]*partInfo
	thumbs  map[string]int64 // thumbnail file name -> size
	usage   int64            // every byte counted below
	local   int64            // bytes of local blobs
	evicted int              // blobs evicted so far (for tests and status)
	closed  bool
}

type blobInfo struct {
	size   int64
	local  bool
	access time.Time // last Open or ReadChunk, in memory; the file's mtime on disk
	stamp  time.Time // when access was last written to the file's mtime
	busy   int       // open readers: never evicted while > 0
}

// Open opens (creating it if needed) the media directory dir: it makes
// the subdirectories 0700, empties tmp/, drops partial downloads
// untouched for a day, and counts what blobs/, part/
// and thumbs/ hold against the quota.
func Open(dir string, cfg Config) (*Store, error) {
	if cfg.Quota <= 0 {
		cfg.Quota = DefaultQuota
	}
	s := &Store{
		dir: dir, cfg: cfg, log: cfg.Logger, now: time.Now,
		blobs: map[string]*blobInfo{}, parts: map[string]*partInfo{}, thumbs: map[string]int64{},
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.log = s.log.With("component", "media")
	for _, sub := range []string{"", "blobs", "part", "thumbs"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return nil, fmt.Errorf("media: open: %w", err)
		}
	}
	if err := os.RemoveAll(filepath.Join(dir, "tmp")); err != nil {
		return nil, fmt.Errorf("media: open: empty tmp: %w", err)
	}
	if err := os.Mkdir(filepath.Join(dir, "tmp"), 0o700); err != nil {
		return nil, fmt.Errorf("media: open: %w", err)
	}
	if err := s.scan(); err != nil {
		return nil, fmt.Errorf("media: open: %w", err)
	}
	return s, nil
}

// stalePartial is how long a partial download may lie untouched before
// Open drops it.
const stalePartial = 24 * time.Hour

// scan counts the files already there. Anything misnamed is left alone
// and not counted.
func (s *Store) scan() error {
	err := filepath.WalkDir(filepath.Join(s.dir, "blobs"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !ValidSHA(d.Name()) {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		local := s.cfg.IsLocal != nil && s.cfg.IsLocal(d.Name())
		s.blobs[d.Name()] = &blobInfo{size: info.Size(), local: local, access: info.ModTime(), stamp: info.ModTime()}
		s.usage += info.Size()
		if local {
			s.local += info.Size()
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, sub := range []string{"part", "thumbs"} {
		entries, err := os.ReadDir(filepath.Join(s.dir, sub))
		if err != nil {
			return err
		}
		for _, e := range entries {
			info, err := e.Info()
			if err != nil || !info.Mode().IsRegular() {
				continue
			}
			if sub == "part" && ValidSHA(e.Name()) {
				if s.now().Sub(info.ModTime()) > stalePartial {
					// A download nobody resumed for a day: gone.
					os.Remove(filepath.Join(s.dir, sub, e.Name()))
					continue
				}
				s.parts[e.Name()] = &partInfo{size: info.Size(), touched: info.ModTime()}
				s.usage += info.Size()
			} else if sub == "thumbs" {
				s.thumbs[e.Name()] = info.Size()
				s.usage += info.Size()
			}
		}
	}
	return nil
}

// Close marks the store closed: later Puts and downloads fail.
// Idempotent. Open readers stay valid until closed.
func (s *Store) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	return nil
}

func (s *Store) blobPath(sha string) string {
	return filepath.Join(s.dir, "blobs", sha[:2], sha)
}

// Put stores the bytes of r as a local blob (an upload to this node; never
// evicted): it streams them to tmp/ through SHA-256 and the chunk hasher,
// fsyncs, and renames the file to blobs/<sha[0:2]>/<sha>. It fails with
// ErrQuotaFull as soon as local blobs would pass the quota, evicting
// remote copies first if that makes room. If the blob exists already the
// new copy is dropped and the old one becomes local. The caller bounds r
// (http.MaxBytesReader).
func (s *Store) Put(r io.Reader) (Digest, error) {
	fail := func(err error) (Digest, error) { return Digest{}, fmt.Errorf("media: put: %w", err) }
	if s.isClosed() {
		return fail(ErrClosed)
	}
	f, err := os.CreateTemp(filepath.Join(s.dir, "tmp"), "up-*")
	if err != nil {
		return fail(err)
	}
	defer os.Remove(f.Name()) // a no-op once renamed
	defer f.Close()
	h := newHasher()
	w := &quotaWriter{s: s, w: io.MultiWriter(f, h)}
	if _, err := io.Copy(w, r); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		return fail(err)
	}
	d := h.digest()
	if err := s.install(f.Name(), d.SHA256, d.Size, true); err != nil {
		return fail(err)
	}
	return d, nil
}

// quotaWriter refuses to write past what the quota leaves for local
// media once remote copies are gone.
type quotaWriter struct {
	s *Store
	w io.Writer
	n int64
}

func (q *quotaWriter) Write(p []byte) (int, error) {
	if q.n/checkEvery != (q.n+int64(len(p)))/checkEvery {
		if err := q.s.CheckFree(checkEvery); err != nil {
			return 0, err
		}
	}
	q.n += int64(len(p))
	q.s.mu.Lock()
	full := q.s.local+q.n > q.s.cfg.Quota
	q.s.mu.Unlock()
	if full {
		return 0, ErrQuotaFull
	}
	return q.w.Write(p)
}

// install moves the finished file at tmp into blobs/ under sha, counts
// it, and evicts remote copies if usage passed the high-water mark.
func (s *Store) install(tmp, sha string, size int64, local bool) error {
	path := s.blobPath(sha)
	s.mu.Lock()
	if b, ok := s.blobs[sha]; ok {
		if local && !b.local {
			b.local = true
			s.local += b.size
		}
		s.mu.Unlock()
		os.Remove(tmp)
		return nil
	}
	if local && s.local+size > s.cfg.Quota {
		s.mu.Unlock()
		return ErrQuotaFull
	}
	s.mu.Unlock()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	syncDir(filepath.Dir(path))
	now := s.now()
	s.mu.Lock()
	s.blobs[sha] = &blobInfo{size: size, local: local, access: now, stamp: now}
	s.usage += size
	if local {
		s.local += size
	}
	s.mu.Unlock()
	s.evictIfNeeded()
	return nil
}

// syncDir makes a rename in dir durable (best effort).
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// CheckFree says whether need more bytes may be written to the disk
// (Config.CheckFree; nil if unset).
func (s *Store) CheckFree(need int64) error {
	if s.cfg.CheckFree == nil {
		return nil
	}
	return s.cfg.CheckFree(need)
}

// Has reports whether the complete blob sha is here.
func (s *Store) Has(sha string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.blobs[sha]
	return ok
}

// IsLocal reports whether the blob sha is here and is the original of an
// upload to this node.
func (s *Store) IsLocal(sha string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.blobs[sha]
	return ok && b.local
}

// Blob is an open blob: read it, seek it, ReadAt it, Stat it; Close it.
// The blob is not evicted while open.
type Blob struct {
	*os.File
	s    *Store
	sha  string
	once sync.Once
}

// SHA256 is the blob's name: the SHA-256 of its bytes, in hex.
func (b *Blob) SHA256() string { return b.sha }

// Close closes the file and lets eviction consider the blob again.
func (b *Blob) Close() error {
	err := b.File.Close()
	b.once.Do(func() { b.s.release(b.sha) })
	return err
}

// Open opens the complete blob sha for reading (ErrNotFound if it is not
// here) and notes the access for eviction's least-recently-used order.
func (s *Store) Open(sha string) (*Blob, error) {
	if !ValidSHA(sha) {
		return nil, ErrNotFound
	}
	if !s.acquire(sha) {
		return nil, ErrNotFound
	}
	f, err := os.Open(s.blobPath(sha))
	if err != nil {
		s.release(sha)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, ErrNotFound
		}
		return nil, fmt.Errorf("media: open %s: %w", sha, err)
	}
	return &Blob{File: f, s: s, sha: sha}, nil
}

// acquire marks sha in use and touches its access time; false if absent.
func (s *Store) acquire(sha string) bool {
	s.mu.Lock()
	b, ok := s.blobs[sha]
	if !ok {
		s.mu.Unlock()
		return false
	}
	b.busy++
	now := s.now()
	b.access = now
	restamp := now.Sub(b.stamp) > time.Hour
	if restamp {
		b.stamp = now
	}
	s.mu.Unlock()
	if restamp {
		// The access time survives a restart as the file's mtime,
		// rewritten at most once an hour.
		os.Chtimes(s.blobPath(sha), time.Time{}, now)
	}
	return true
}

func (s *Store) release(sha string) {
	s.mu.Lock()
	if b, ok := s.blobs[sha]; ok && b.busy > 0 {
		b.busy--
	}
	s.mu.Unlock()
}

// ReadChunk returns chunk i (ChunkSize bytes, the last one shorter) of
// the complete blob sha, for serving to a peer. ErrNotFound if the blob
// is not here or i is out of range.
func (s *Store) ReadChunk(sha string, i int) ([]byte, error) {
	b, err := s.Open(sha)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	s.mu.Lock()
	size := s.blobs[sha].size
	s.mu.Unlock()
	if i < 0 || i >= NumChunks(size) {
		return nil, ErrNotFound
	}
	buf := make([]byte, chunkLen(size, i))
	if _, err := b.ReadAt(buf, int64(i)*ChunkSize); err != nil {
		return nil, fmt.Errorf("media: read chunk %d of %s: %w", i, sha, err)
	}
	return buf, nil
}

// Remove deletes the blob sha and its thumbnails, if here. Callers decide
// when nothing needs it any more (a local original is removed only on
// purpose; a remote copy when no reference is left).
func (s *Store) Remove(sha string) error {
	if !ValidSHA(sha) {
		return ErrNotFound
	}
	s.mu.Lock()
	b, ok := s.blobs[sha]
	if ok {
		delete(s.blobs, sha)
		s.usage -= b.size
		if b.local {
			s.local -= b.size
		}
	}
	s.mu.Unlock()
	s.removeThumbs(sha)
	if err := os.Remove(s.blobPath(sha)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("media: remove %s: %w", sha, err)
	}
	return nil
}

func (s *Store) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}
