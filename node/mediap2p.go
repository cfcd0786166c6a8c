package node

import (
	"context"

	"github.com/parley-p2p/parley/node/client"
	"github.com/parley-p2p/parley/node/media"
	"github.com/parley-p2p/parley/node/peers"
)

// mediaFetcher is the client API's fetcher of other nodes' media: the
// API's own Fetch, which knows in which rooms a user sees a reference to
// an mxc and fetches it from their members through the node's peers. It
// is made before the API, which it names once the API exists.
type mediaFetcher struct{ api *client.API }

func (f *mediaFetcher) Fetch(ctx context.Context, user, server, mediaID string) (string, *media.Meta, error) {
	return f.api.Fetch(ctx, user, server, mediaID)
}

// or returns f, unless a test gave its own fetcher.
func (f *mediaFetcher) or(given client.MediaFetcher) client.MediaFetcher {
	if given != nil {
		return given
	}
	return f
}

// peerMedia is what the peer side serves and fetches media with.
func (n *Node) peerMedia() peers.MediaConfig {
	prefetch := n.cfg.MediaPrefetchMax
	if n.cfg.noMediaPrefetch {
		prefetch = -1
	}
	return peers.MediaConfig{Blobs: n.media, MaxSize: n.cfg.MaxUpload, PrefetchMax: prefetch}
}
