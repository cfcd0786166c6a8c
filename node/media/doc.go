// Package media keeps the node's media: content-addressed blob files under
// <datadir>/media, the signed metadata that lets any member node serve a
// file and none forge one, downloads in progress that resume chunk by
// chunk, and the storage quota with its eviction order (remote copies
// first, local uploads never).
//
// Layout (all 0700 directories, files written to tmp/, fsynced, renamed):
//
//	blobs/<sha[0:2]>/<sha256 hex>   complete, immutable files
//	part/<sha256 hex>              a download in progress (see Partial)
//	thumbs/<sha256 hex>-<key>      cached thumbnails
//	tmp/                           uploads in progress, emptied at Open
//
// The package keeps bytes on disk and nothing else: no network, no HTTP,
// no Badger (records about media live in node/store), so its logic can be
// tested on a temporary directory alone.
package media
