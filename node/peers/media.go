package peers

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-p2p/parley/node/media"
	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/p2p"
	"github.com/parley-p2p/parley/rooms"
)

// Media between nodes. A node fetches a remote mxc from the members of a
// room that references it (store.MediaRefs), never from strangers and
// never through the DHT (a record there would publish who holds what):
// first the signed metadata (MethodMediaMeta), then each 256 KiB chunk
// (MethodMediaChunk), every request sealed under the room's secret, so
// media travels encrypted with the room's keys. The uploader's signature
// over the metadata and each chunk's hash in it let any member serve a
// file and none forge one.
//
// A responder answers only a server that has a user joined in the room
// now, and only for an mxc that an event of the room references which
// that server may see (its history visibility); anything else is the same
// "no such media", which says nothing of whether the media exists. The
// one exception is an upload of this node that no event references in
// clear (a client encrypted the event and the file itself): it is served
// to a joined server of a room its uploader is joined in, if its type is
// application/octet-stream (ciphertext under a key only the clients hold).

// Bounds of media between nodes.
const (
	// maxServedChunks bounds the chunk answers being built at once for
	// the whole node, and maxServedChunksPerPeer those for one peer; a
	// request beyond them is answered M_LIMIT_EXCEEDED and the asker
	// turns to another provider.
	maxServedChunks        = 8
	maxServedChunksPerPeer = 2
	// maxRefsChecked bounds the references of one mxc in one room a
	// responder checks for one request.
	maxRefsChecked = 64
)

// rawAnswer is an answer serve sends as it is, not as JSON.
type rawAnswer []byte

// MediaConfig is what the peer side needs of the node's media.
type MediaConfig struct {
	// Blobs is the node's blob store.
	Blobs *media.Store
	// MaxSize bounds what this node fetches (its maximum upload); 0
	// means 100 MiB.
	MaxSize int64
	// PrefetchMax bounds the images fetched ahead of need (other media:
	// MaxPrefetchOther); 0 means 10 MiB, negative turns prefetch off.
	PrefetchMax int64
}

// mediaState is the node's media between nodes: serving and fetching.
type mediaState struct {
	cfg MediaConfig

	mu      sync.Mutex
	serving int                     // chunk answers being built
	perPeer map[peer.ID]int         // of them, per peer
	fetches map[store.MediaID]*xfer // transfers under way, by mxc
	retries map[store.MediaID]retry // failed prefetches (mediawork.go)
	// downloads are the transfers under way whose verified chunks this
	// node serves already.
	downloads map[store.MediaID]downloading

	slots    chan struct{} // transfers under way (maxTransfers)
	prefetch chan struct{} // of them, prefetches (maxPrefetches)
	kick     chan struct{} // wakes the media worker (worker.go)

	chunkRequests atomic.Int64 // chunk requests sent (tests)
}

// SetMedia gives the peer side the node's media; until it is called,
// media requests are answered "no such media" and nothing is fetched.
// Call it before Start.
func (ps *Peers) SetMedia(cfg MediaConfig) {
	if cfg.MaxSize <= 0 {
		cfg.MaxSize = 100 << 20
	}
	if cfg.PrefetchMax == 0 {
		cfg.PrefetchMax = DefaultPrefetchMax
	}
	ps.media = &mediaState{
		cfg:       cfg,
		perPeer:   map[peer.ID]int{},
		fetches:   map[store.MediaID]*xfer{},
		downloads: map[store.MediaID]downloading{},
		slots:     make(chan struct{}, maxTransfers),
		prefetch:  make(chan struct{}, maxPrefetches),
		kick:      make(chan struct{}, 1),
	}
}

// errNoMedia is what a responder answers for every refusal.
func errNoMedia() error { return remoteErr("M_NOT_FOUND", "no such media") }

// mediaSource is what a responder serves an mxc from: its complete
// blob, or the partial file of a transfer under way here.
type mediaSource struct {
	sha  string
	meta []byte
	part *media.Partial // nil: the blob is complete
}

// downloading is a transfer under way here, whose chunks this node
// already serves to other members.
type downloading struct {
	part *media.Partial
	meta []byte
}

// mediaAccess checks a media request from server: the room is here, the
// server has a user joined in it now, and an event of the room that the
// server may see references the mxc (or the unreferenced-upload rule
// holds). It returns what to serve the mxc from.
func (ps *Peers) mediaAccess(server string, req *MediaReq) (*mediaSource, error) {
	ms := ps.media
	m := store.MediaID{Server: req.Server, ID: req.MediaID}
	if ms == nil || !media.ValidMediaID(req.MediaID) || !ValidServerName(req.Server) {
		return nil, errNoMedia()
	}
	r := ps.Room(req.RoomID)
	if r == nil || !ps.serverJoined(r, server) {
		return nil, errNoMedia()
	}
	src := &mediaSource{}
	rec, ok := ps.mediaRecord(m)
	if ok && ms.cfg.Blobs.Has(rec.SHA256) {
		src.sha, src.meta = rec.SHA256, rec.Meta
	} else {
		ms.mu.Lock()
		d, ok := ms.downloads[m]
		ms.mu.Unlock()
		if !ok {
			return nil, errNoMedia()
		}
		src.sha, src.meta, src.part = d.part.Meta().SHA256, d.meta, d.part
		rec = nil // only a local upload is served unreferenced
	}
	if !ps.referencedFor(r, m, server) && (rec == nil || !ps.servesUnreferenced(r, m, rec)) {
		return nil, errNoMedia()
	}
	return src, nil
}

// referencedFor reports whether an event of the room that the server may
// see references the mxc.
func (ps *Peers) referencedFor(r *Room, m store.MediaID, server string) bool {
	found := false
	checked := 0
	_ = ps.store.View(func(t *store.Txn) error {
		return t.MediaRefsIn(m, r.ID, func(event string) (bool, error) {
			checked++
			if i, err := ps.dag.Event(event); err == nil && i.Event.RoomID() == r.ID && ps.visibleTo(i, server, true) {
				found = true
			}
			return !found && checked < maxRefsChecked, nil
		})
	})
	return found
}

// servesUnreferenced is the rule for an upload of this node no event
// references in clear: served as ciphertext to a room its uploader is
// joined in.
func (ps *Peers) servesUnreferenced(r *Room, m store.MediaID, rec *store.MediaRecord) bool {
	if m.Server != ps.serverName || rec.Uploader == "" || rec.Type != "application/octet-stream" {
		return false
	}
	referenced := true
	if err := ps.store.View(func(t *store.Txn) error {
		var err error
		referenced, err = t.MediaReferenced(m)
		return err
	}); err != nil || referenced {
		return false // referenced in clear somewhere: only references grant
	}
	id, ok := r.State()[rooms.StateKey{Type: "m.room.member", StateKey: rec.Uploader}]
	if !ok {
		return false
	}
	mem, ok := ps.dag.MembershipOf(id)
	return ok && mem == "join"
}

// onMediaMeta answers MethodMediaMeta: the mxc's signed metadata.
func (ps *Peers) onMediaMeta(_ peer.ID, server string, body []byte) (any, error) {
	var req MediaReq
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	src, err := ps.mediaAccess(server, &req)
	if err != nil {
		return nil, err
	}
	have := "all"
	if src.part != nil {
		n := len(src.part.Meta().Chunks)
		bits := make([]byte, (n+7)/8)
		for i := range n {
			if src.part.Have(i) {
				bits[i/8] |= 1 << (i % 8)
			}
		}
		have = base64.RawStdEncoding.EncodeToString(bits)
	}
	return MediaMetaResp{Meta: src.meta, Have: have}, nil
}

// onMediaChunk answers MethodMediaChunk: one chunk's bytes, within the
// bounds of chunk answers built at once.
func (ps *Peers) onMediaChunk(from peer.ID, server string, body []byte) (any, error) {
	var req MediaReq
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	src, err := ps.mediaAccess(server, &req)
	if err != nil {
		return nil, err
	}
	ms := ps.media
	ms.mu.Lock()
	if ms.serving >= maxServedChunks || ms.perPeer[from] >= maxServedChunksPerPeer {
		ms.mu.Unlock()
		return nil, remoteErr("M_LIMIT_EXCEEDED", "too many chunks asked at once")
	}
	ms.serving++
	ms.perPeer[from]++
	ms.mu.Unlock()
	defer func() {
		ms.mu.Lock()
		ms.serving--
		if ms.perPeer[from]--; ms.perPeer[from] <= 0 {
			delete(ms.perPeer, from)
		}
		ms.mu.Unlock()
	}()
	var data []byte
	if src.part != nil {
		data, err = src.part.ReadChunk(req.Index)
	} else {
		data, err = ms.cfg.Blobs.ReadChunk(src.sha, req.Index)
	}
	if err != nil {
		if errors.Is(err, media.ErrNotFound) {
			return nil, errNoMedia()
		}
		return nil, remoteErr("M_NOT_FOUND", "no such chunk")
	}
	return rawAnswer(data), nil
}

// requestRaw sends a sealed room request and returns the answer's bytes
// as they are (requestSealed decodes JSON; a chunk is not).
func (ps *Peers) requestRaw(ctx context.Context, p peer.ID, method string, req roomRequest) ([]byte, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	tried := false
	for _, rs := range ps.secretsToTry(req.room()) {
		tried = true
		sealed, err := sealRequest(rs, ps.host.ID(), p, method, body)
		if err != nil {
			return nil, err
		}
		rctx, cancel := context.WithTimeout(ctx, ps.cfg.RequestTimeout)
		out, err := ps.host.Request(rctx, p, MethodRoom, sealed)
		cancel()
		var re *p2p.RemoteError
		if errors.As(err, &re) && re.Message == errSealedRequest.Error() {
			continue // the responder lacks this epoch: try the one before
		}
		if err != nil {
			return nil, fmt.Errorf("%s to %s: %w", method, shortPeer(p), err)
		}
		plain, err := openAnswer(rs, ps.host.ID(), p, sealed, out)
		if err != nil {
			return nil, fmt.Errorf("%s to %s: %w", method, shortPeer(p), err)
		}
		return plain, nil
	}
	if !tried {
		return nil, fmt.Errorf("%s to %s: this node does not hold the room's secret", method, shortPeer(p))
	}
	return nil, fmt.Errorf("%s to %s: %w", method, shortPeer(p), errSealedRequest)
}
