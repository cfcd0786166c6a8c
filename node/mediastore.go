package node

import (
	"fmt"
	"path/filepath"

	"github.com/parley-p2p/parley/node/media"
	"github.com/parley-p2p/parley/node/store"
)

// Media defaults (Config.MaxUpload, MediaQuota, MediaPrefetchMax).
const (
	DefaultMaxUpload        = 100 << 20
	DefaultMediaQuota       = 10 << 30
	DefaultMediaPrefetchMax = 10 << 20
)

// checkMediaConfig fills in the media defaults and refuses nonsense.
func checkMediaConfig(cfg *Config) error {
	for _, f := range []struct {
		name string
		v    *int64
		def  int64
	}{
		{"max upload", &cfg.MaxUpload, DefaultMaxUpload},
		{"media quota", &cfg.MediaQuota, DefaultMediaQuota},
		{"media prefetch max", &cfg.MediaPrefetchMax, DefaultMediaPrefetchMax},
	} {
		if *f.v < 0 {
			return fmt.Errorf("node: %s %d is negative", f.name, *f.v)
		}
		if *f.v == 0 {
			*f.v = f.def
		}
	}
	if cfg.MaxUpload > media.MaxSize {
		return fmt.Errorf("node: max upload %d is over %d bytes", cfg.MaxUpload, int64(media.MaxSize))
	}
	return nil
}

// openMedia opens the media store in <datadir>/media: blobs this node
// is the origin of (mb/ records) are local, never evicted; writes are
// refused when they would take the disk below the free space the
// database keeps (so media can never stop the node writing events).
func (n *Node) openMedia() (*media.Store, error) {
	var local map[string]bool
	if err := n.store.View(func(t *store.Txn) error {
		var err error
		local, err = t.LocalBlobs()
		return err
	}); err != nil {
		return nil, err
	}
	free := n.cfg.freeSpace
	if free == nil {
		free = store.FreeSpace
	}
	keep := int64(store.DefaultMinFree)
	if n.cfg.MinFreeDisk != 0 {
		keep = n.cfg.MinFreeDisk
	}
	dir := filepath.Join(n.cfg.DataDir, "media")
	return media.Open(dir, media.Config{
		Quota:   n.cfg.MediaQuota,
		IsLocal: func(sha string) bool { return local[sha] },
		CheckFree: func(need int64) error {
			if keep < 0 {
				return nil
			}
			f, err := free(n.cfg.DataDir)
			if err != nil || int64(f) >= keep+need {
				return nil
			}
			return &store.DiskFullError{Dir: dir, Free: f, Keep: uint64(keep)}
		},
		Logger: n.cfg.Logger,
	})
}

// mediaStatus is the media store's part of the node's status.
func (n *Node) mediaStatus() map[string]any {
	u := n.media.Usage()
	return map[string]any{
		"used_bytes": u.Total, "local_bytes": u.Local, "quota_bytes": u.Quota,
		"blobs": u.Blobs, "partials": u.Partials, "evicted": u.Evicted,
		"uploads_in_progress": n.api.UploadsInProgress(),
	}
}
