package peers

import (
	"github.com/parley-p2p/parley/node/media"
	"github.com/parley-p2p/parley/node/store"
)

// mediaRecord is what the peer side reads of the node's record of an mxc
// (node/store's media records): the blob it names, the uploader's signed
// metadata, and for a local upload its uploader and declared type.
type mediaRecord struct {
	SHA256   string
	Meta     []byte
	Uploader string
	Type     string
}

// MediaRecords reads and writes the node's records of mxcs for the peer
// side (the client API's media code owns them).
type MediaRecords interface {
	// MediaRecord returns the record of a complete mxc; ok false if none.
	MediaRecord(server, mediaID string) (sha string, signedMeta []byte, uploader, contentType string, ok bool)
	// KeepRemoteMedia records a remote mxc whose blob was fetched.
	KeepRemoteMedia(meta *media.Meta, signedMeta []byte) error
	// ForgetRemoteMedia drops the record of a remote mxc whose blob was
	// removed.
	ForgetRemoteMedia(server, mediaID string) error
}

func (ps *Peers) mediaRecord(m store.MediaID) (*mediaRecord, bool) {
	if ps.media == nil || ps.media.cfg.Records == nil {
		return nil, false
	}
	sha, meta, up, typ, ok := ps.media.cfg.Records.MediaRecord(m.Server, m.ID)
	if !ok {
		return nil, false
	}
	return &mediaRecord{SHA256: sha, Meta: meta, Uploader: up, Type: typ}, true
}

func (ps *Peers) keepMediaRecord(_ store.MediaID, meta *media.Meta, raw []byte) error {
	if ps.media.cfg.Records == nil {
		return nil
	}
	return ps.media.cfg.Records.KeepRemoteMedia(meta, raw)
}

func (ps *Peers) forgetMediaRecord(m store.MediaID) error {
	if ps.media.cfg.Records == nil {
		return nil
	}
	return ps.media.cfg.Records.ForgetRemoteMedia(m.Server, m.ID)
}
