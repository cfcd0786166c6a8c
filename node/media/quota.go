package media

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Eviction runs when usage passes highWater % of the quota and brings it
// down to lowWater %.
const (
	highWater = 90
	lowWater  = 80
	// idlePartial is how long a partial download must be untouched
	// before eviction may drop it.
	idlePartial = time.Hour
)

// Usage is what the store holds, in bytes.
type Usage struct {
	Total, Local, Quota int64
	Blobs, Partials     int
	Evicted             int // remote blobs evicted since Open
}

// Usage reports the store's counts.
func (s *Store) Usage() Usage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Usage{Total: s.usage, Local: s.local, Quota: s.cfg.Quota, Blobs: len(s.blobs), Partials: len(s.parts), Evicted: s.evicted}
}

// Room reports whether n more bytes of local media fit in the quota.
func (s *Store) Room(n int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.local+n <= s.cfg.Quota
}

// evictIfNeeded evicts when usage is over the high-water mark.
func (s *Store) evictIfNeeded() {
	s.mu.Lock()
	over := s.usage > s.cfg.Quota*highWater/100
	s.mu.Unlock()
	if over {
		s.evict(0)
	}
}

// evict frees space until usage plus need is at the low-water mark, in
// this order: partial downloads idle for an hour, thumbnails of remote
// blobs, then remote blobs least recently used first. Local originals,
// open blobs and open partials are never evicted.
func (s *Store) evict(need int64) {
	target := s.cfg.Quota * lowWater / 100
	now := s.now()
	var files []string // to delete, after the lock
	var gone []string  // remote blobs evicted, for OnEvict
	s.mu.Lock()
	for sha, pi := range s.parts {
		if s.usage+need <= target {
			break
		}
		if !pi.open && now.Sub(pi.touched) > idlePartial {
			s.usage -= pi.size
			delete(s.parts, sha)
			files = append(files, filepath.Join(s.dir, "part", sha))
		}
	}
	for name, size := range s.thumbs {
		if s.usage+need <= target {
			break
		}
		sha, _, _ := strings.Cut(name, "-")
		if b, ok := s.blobs[sha]; ok && b.local {
			continue
		}
		s.usage -= size
		delete(s.thumbs, name)
		files = append(files, filepath.Join(s.dir, "thumbs", name))
	}
	if s.usage+need > target {
		type cand struct {
			sha    string
			access time.Time
		}
		var cands []cand
		for sha, b := range s.blobs {
			if !b.local && b.busy == 0 {
				cands = append(cands, cand{sha, b.access})
			}
		}
		slices.SortFunc(cands, func(a, b cand) int { return a.access.Compare(b.access) })
		for _, c := range cands {
			if s.usage+need <= target {
				break
			}
			b := s.blobs[c.sha]
			s.usage -= b.size
			delete(s.blobs, c.sha)
			s.evicted++
			files = append(files, s.blobPath(c.sha))
			gone = append(gone, c.sha)
			for name, size := range s.thumbs {
				if strings.HasPrefix(name, c.sha+"-") {
					s.usage -= size
					delete(s.thumbs, name)
					files = append(files, filepath.Join(s.dir, "thumbs", name))
				}
			}
		}
	}
	s.mu.Unlock()
	for _, f := range files {
		if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
			s.log.Warn("evict", "file", f, "err", err)
		}
	}
	for _, sha := range gone {
		s.log.Debug("evicted remote blob", "sha", sha)
		if s.cfg.OnEvict != nil {
			s.cfg.OnEvict(sha)
		}
	}
}

// thumbKeyPattern is what a thumbnail key may look like: "96x96-c.jpg".
var thumbKeyPattern = regexp.MustCompile(`^[0-9]{1,5}x[0-9]{1,5}-[a-z]{1,8}\.[a-z]{2,4}$`)

func (s *Store) thumbName(sha, key string) (string, error) {
	if !ValidSHA(sha) || !thumbKeyPattern.MatchString(key) {
		return "", fmt.Errorf("media: bad thumbnail name %q for %q", key, sha)
	}
	return sha + "-" + key, nil
}

// PutThumb caches a thumbnail of blob sha under key (like "96x96-c.jpg").
func (s *Store) PutThumb(sha, key string, data []byte) error {
	name, err := s.thumbName(sha, key)
	if err != nil {
		return err
	}
	if err := s.reserve(int64(len(data))); err != nil {
		return fmt.Errorf("media: put thumbnail: %w", err)
	}
	f, err := os.CreateTemp(filepath.Join(s.dir, "tmp"), "th-*")
	if err != nil {
		return fmt.Errorf("media: put thumbnail: %w", err)
	}
	defer os.Remove(f.Name())
	_, err = f.Write(data)
	if err == nil {
		err = f.Close()
	} else {
		f.Close()
	}
	if err == nil {
		err = os.Rename(f.Name(), filepath.Join(s.dir, "thumbs", name))
	}
	if err != nil {
		return fmt.Errorf("media: put thumbnail: %w", err)
	}
	s.mu.Lock()
	s.usage += int64(len(data)) - s.thumbs[name]
	s.thumbs[name] = int64(len(data))
	s.mu.Unlock()
	return nil
}

// Thumb returns the cached thumbnail of blob sha under key, or
// ErrNotFound.
func (s *Store) Thumb(sha, key string) ([]byte, error) {
	name, err := s.thumbName(sha, key)
	if err != nil {
		return nil, ErrNotFound
	}
	s.mu.Lock()
	_, ok := s.thumbs[name]
	s.mu.Unlock()
	if !ok {
		return nil, ErrNotFound
	}
	data, err := os.ReadFile(filepath.Join(s.dir, "thumbs", name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNotFound
	}
	return data, err
}

// removeThumbs deletes the cached thumbnails of blob sha.
func (s *Store) removeThumbs(sha string) {
	var names []string
	s.mu.Lock()
	for name, size := range s.thumbs {
		if strings.HasPrefix(name, sha+"-") {
			s.usage -= size
			delete(s.thumbs, name)
			names = append(names, name)
		}
	}
	s.mu.Unlock()
	for _, name := range names {
		os.Remove(filepath.Join(s.dir, "thumbs", name))
	}
}
