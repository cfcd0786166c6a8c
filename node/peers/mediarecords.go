package peers

import (
	"errors"

	"github.com/parley-p2p/parley/node/media"
	"github.com/parley-p2p/parley/node/store"
)

// mediaRecord returns the node's record of a complete mxc (one it
// uploaded, or fetched): the blob it names and its signed metadata.
func (ps *Peers) mediaRecord(m store.MediaID) (*store.MediaRecord, bool) {
	var rec *store.MediaRecord
	err := ps.store.View(func(t *store.Txn) error {
		var err error
		rec, err = t.Media(m.Server, m.ID)
		return err
	})
	if err != nil || rec.Pending || rec.SHA256 == "" || len(rec.Meta) == 0 {
		return nil, false
	}
	return rec, true
}

// keepMediaRecord records a remote mxc whose blob was fetched.
func (ps *Peers) keepMediaRecord(m store.MediaID, meta *media.Meta, signed []byte) error {
	rec := &store.MediaRecord{SHA256: meta.SHA256, Size: meta.Size, Type: meta.Type, Name: meta.Name, Created: nowMS(), Meta: signed}
	return ps.store.Update(func(t *store.Txn) error { return t.PutMedia(m.Server, m.ID, rec) })
}

// forgetMediaRecord drops the record of a remote mxc whose blob was
// removed.
func (ps *Peers) forgetMediaRecord(m store.MediaID) error {
	err := ps.store.Update(func(t *store.Txn) error { return t.DeleteMedia(m.Server, m.ID) })
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}
