package store

import (
	"encoding/binary"
	"errors"
	"strings"
)

// Media records (the bytes are files of node/media, not Badger values):
//
//	md/<server>\0<media id>   -> MediaRecord: an mxc this node knows
//	mb/<sha256 hex>           -> BlobRecord: a blob this node is the origin of
//	mpu/<user>\0<media id>    -> expiry ms (8 bytes): a pending /create
//
// Bounds: a local user holds at most the caller's maxPending pending
// media IDs (PutPendingMedia refuses more); one md/ record per upload
// (bounded by the media quota) or per remote mxc fetched; one mb/ per
// local blob.

func keyMedia(server, mediaID string) []byte { return []byte("md/" + server + "\x00" + mediaID) }
func keyBlob(sha string) []byte              { return []byte("mb/" + sha) }
func keyPendingMedia(user, mediaID string) []byte {
	return []byte("mpu/" + user + "\x00" + mediaID)
}
func prefixPendingMedia(user string) []byte { return []byte("mpu/" + user + "\x00") }

const (
	prefixAllPendingMedia = "mpu/"
	prefixAllBlobs        = "mb/"
)

// MediaRecord is what the node knows of one mxc.
type MediaRecord struct {
	// Pending: created by /create, its bytes not uploaded yet.
	Pending bool   `json:"pending,omitempty"`
	SHA256  string `json:"sha256,omitempty"`
	Size    int64  `json:"size,omitempty"`
	Type    string `json:"type,omitempty"`
	Name    string `json:"name,omitempty"`
	// Created is when the upload (or /create) happened, ms.
	Created int64 `json:"created"`
	// Uploader is the local user who uploaded it ("" for remote media).
	Uploader string `json:"uploader,omitempty"`
	// Meta is the signed metadata (node/media.Meta.Sign), set once the
	// bytes are here.
	Meta []byte `json:"meta,omitempty"`
	// Expires is when a pending mxc lapses, ms.
	Expires int64 `json:"expires,omitempty"`
}

// BlobRecord says this node is the origin of an mxc naming the blob: the
// blob is local, never evicted.
type BlobRecord struct {
	Size int64 `json:"size"`
}

// ErrTooManyPending: PutPendingMedia for a user holding the most allowed.
var ErrTooManyPending = errors.New("store: too many pending media")

// Media returns the record of mxc://server/mediaID, or ErrNotFound.
func (t *Txn) Media(server, mediaID string) (*MediaRecord, error) {
	var rec MediaRecord
	if err := t.getJSON(keyMedia(server, mediaID), &rec); err != nil {
		return nil, err
	}
	return &rec, nil
}

// PutMedia writes the record of mxc://server/mediaID. A complete local
// upload also marks its blob local and ends its pending entry, if any.
func (t *Txn) PutMedia(server, mediaID string, rec *MediaRecord) error {
	if err := t.setJSON(keyMedia(server, mediaID), rec); err != nil {
		return err
	}
	if rec.Pending || rec.Uploader == "" {
		return nil
	}
	if err := t.setJSON(keyBlob(rec.SHA256), BlobRecord{Size: rec.Size}); err != nil {
		return err
	}
	return t.txn.Delete(keyPendingMedia(rec.Uploader, mediaID))
}

// DeleteMedia removes the record of mxc://server/mediaID (and its pending
// entry, for a pending one). The blob's record stays: other mxcs may name
// the same bytes.
func (t *Txn) DeleteMedia(server, mediaID string) error {
	rec, err := t.Media(server, mediaID)
	if err != nil {
		return err
	}
	if rec.Pending && rec.Uploader != "" {
		if err := t.txn.Delete(keyPendingMedia(rec.Uploader, mediaID)); err != nil {
			return err
		}
	}
	return t.txn.Delete(keyMedia(server, mediaID))
}

// PutPendingMedia records a pending mxc://server/mediaID of user, lapsing
// at expires (ms). Entries already lapsed at now do not count against
// maxPending (the sweep removes them); ErrTooManyPending if user holds
// maxPending live ones.
func (t *Txn) PutPendingMedia(server, mediaID, user string, created, expires, now int64, maxPending int) error {
	n := 0
	err := t.scan(prefixPendingMedia(user), nil, false, func(_, v []byte) (bool, error) {
		if len(v) == 8 && int64(binary.BigEndian.Uint64(v)) > now {
			n++
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	if n >= maxPending {
		return ErrTooManyPending
	}
	if err := t.setJSON(keyMedia(server, mediaID), &MediaRecord{Pending: true, Created: created, Uploader: user, Expires: expires}); err != nil {
		return err
	}
	return t.txn.Set(keyPendingMedia(user, mediaID), binary.BigEndian.AppendUint64(nil, uint64(expires)))
}

// PendingMedia is a pending /create of a local user.
type PendingMedia struct {
	User, MediaID string
	Expires       int64
}

// LapsedPendingMedia lists up to limit pending entries lapsed at now.
func (t *Txn) LapsedPendingMedia(now int64, limit int) ([]PendingMedia, error) {
	var out []PendingMedia
	err := t.scan([]byte(prefixAllPendingMedia), nil, false, func(k, v []byte) (bool, error) {
		if len(v) != 8 || int64(binary.BigEndian.Uint64(v)) > now {
			return true, nil
		}
		user, id, ok := strings.Cut(string(k[len(prefixAllPendingMedia):]), "\x00")
		if ok {
			out = append(out, PendingMedia{User: user, MediaID: id, Expires: int64(binary.BigEndian.Uint64(v))})
		}
		return len(out) < limit, nil
	})
	return out, err
}

// SweepLapsedMedia deletes up to limit pending mxcs of server lapsed at
// now (their md/ and mpu/ entries) and returns how many it deleted.
func (t *Txn) SweepLapsedMedia(server string, now int64, limit int) (int, error) {
	lapsed, err := t.LapsedPendingMedia(now, limit)
	if err != nil {
		return 0, err
	}
	for _, p := range lapsed {
		if rec, err := t.Media(server, p.MediaID); err == nil && rec.Pending {
			if err := t.txn.Delete(keyMedia(server, p.MediaID)); err != nil {
				return 0, err
			}
		} else if err != nil && !errors.Is(err, ErrNotFound) {
			return 0, err
		}
		if err := t.txn.Delete(keyPendingMedia(p.User, p.MediaID)); err != nil {
			return 0, err
		}
	}
	return len(lapsed), nil
}

// LocalBlobs returns the SHA-256 of every blob this node is the origin of.
func (t *Txn) LocalBlobs() (map[string]bool, error) {
	out := map[string]bool{}
	err := t.scan([]byte(prefixAllBlobs), nil, false, func(k, _ []byte) (bool, error) {
		out[string(k[len(prefixAllBlobs):])] = true
		return true, nil
	})
	return out, err
}
