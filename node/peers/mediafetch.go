package peers

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-p2p/parley/node/media"
	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/p2p"
)

// Fetching a remote mxc: the providers are the members of the rooms that
// reference it (the mxc's own server first, then connected members, then
// the other joined servers); the metadata comes from the first of up to
// metaAskAtOnce asked at once whose answer verifies; then the missing
// chunks, chunksInFlight at a time, each from the providers in turn, so
// a provider that fails or is busy costs a retry elsewhere, not the
// transfer. A chunk that does not match its hash bans its provider for
// the rest of the transfer. The partial file is the state: a transfer
// that breaks (or a restart) resumes with only the chunks it lacks.

// Bounds of fetching.
const (
	// maxTransfers bounds the transfers under way; maxPrefetches of
	// them may be prefetches, so on-demand fetches always have room.
	maxTransfers  = 4
	maxPrefetches = 2
	// maxQueuedFetches bounds the distinct mxcs being fetched or waiting
	// for a transfer slot.
	maxQueuedFetches = 64
	chunksInFlight   = 4
	metaAskAtOnce    = 3
	// metaGrace is how long the other providers asked for metadata
	// with the first to answer have to answer too, before chunks start
	// (a late answer still adds its provider).
	metaGrace = 300 * time.Millisecond
	// chunkRounds bounds how many times a chunk goes round all the
	// providers when they are busy (M_LIMIT_EXCEEDED), backing off.
	chunkRounds = 5
	// maxProviders bounds the providers of one transfer.
	maxProviders = 32

	// DefaultPrefetchMax is MediaConfig.PrefetchMax's default: images up
	// to this size are fetched ahead of need.
	DefaultPrefetchMax = 10 << 20
	// MaxPrefetchOther bounds the other media fetched ahead of need.
	MaxPrefetchOther = 1 << 20
)

// ErrNoMedia is returned by FetchMedia when no provider could give the
// media (none holds it, none is reachable, or it is over this node's
// bounds).
var ErrNoMedia = errors.New("peers: media not available from the room's members")

// ErrMediaBusy is returned by FetchMedia when too many fetches are under
// way or waiting.
var ErrMediaBusy = errors.New("peers: too many media fetches under way")

// xfer is one transfer under way; its callers wait on done.
type xfer struct {
	done chan struct{}
	meta *media.Meta
	err  error
}

// provider is a node to ask for an mxc, and the room to seal the
// request under.
type provider struct {
	p    peer.ID
	room string
}

// FetchMedia returns the metadata of a remote mxc, fetching it into the
// blob store first if this node lacks it, from the members of the given
// rooms (the rooms in which the asking user sees a reference). Callers
// asking for the same mxc at once share one transfer, which goes on if
// ctx ends.
func (ps *Peers) FetchMedia(ctx context.Context, roomIDs []string, server, mediaID string) (*media.Meta, error) {
	return ps.fetchMedia(ctx, roomIDs, store.MediaID{Server: server, ID: mediaID}, false)
}

// MediaChunkRequests counts the chunk requests this node sent (tests).
func (ps *Peers) MediaChunkRequests() int64 {
	if ps.media == nil {
		return 0
	}
	return ps.media.chunkRequests.Load()
}

func (ps *Peers) fetchMedia(ctx context.Context, roomIDs []string, m store.MediaID, prefetch bool) (*media.Meta, error) {
	ms := ps.media
	if ms == nil || !media.ValidMediaID(m.ID) || !ValidServerName(m.Server) || m.Server == ps.serverName {
		return nil, ErrNoMedia
	}
	if meta, ok := ps.heldMedia(m); ok {
		return meta, nil
	}
	for {
		x, err := ms.join(ps, roomIDs, m, prefetch)
		if err != nil {
			return nil, err
		}
		select {
		case <-x.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if errors.Is(x.err, errNotPrefetched) && !prefetch {
			continue // a prefetch it joined gave up on its size: fetch it now
		}
		return x.meta, x.err
	}
}

// join returns the transfer of the mxc under way, starting one if there
// is none.
func (ms *mediaState) join(ps *Peers, roomIDs []string, m store.MediaID, prefetch bool) (*xfer, error) {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if x := ms.fetches[m]; x != nil {
		return x, nil
	}
	if len(ms.fetches) >= maxQueuedFetches {
		return nil, ErrMediaBusy
	}
	x := &xfer{done: make(chan struct{})}
	ms.fetches[m] = x
	rooms := slices.Clone(roomIDs)
	ps.goBackground(func(ctx context.Context) {
		x.meta, x.err = ps.transfer(ctx, rooms, m, prefetch)
		ms.mu.Lock()
		delete(ms.fetches, m)
		ms.mu.Unlock()
		close(x.done)
		ps.MediaChanged() // a mark it held back (a redaction meanwhile) is due
	})
	return x, nil
}

// heldMedia returns the metadata of an mxc whose blob this node holds.
func (ps *Peers) heldMedia(m store.MediaID) (*media.Meta, bool) {
	rec, ok := ps.mediaRecord(m)
	if !ok || !ps.media.cfg.Blobs.Has(rec.SHA256) {
		return nil, false
	}
	meta, err := media.Verify(rec.Meta, m.Server, m.ID)
	if err != nil {
		return nil, false
	}
	return meta, true
}

// transfer fetches the mxc, in a transfer slot.
func (ps *Peers) transfer(ctx context.Context, roomIDs []string, m store.MediaID, prefetch bool) (*media.Meta, error) {
	ms := ps.media
	select {
	case ms.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-ms.slots }()
	if meta, ok := ps.heldMedia(m); ok {
		return meta, nil // a transfer that just ended brought it
	}
	provs := ps.mediaProviders(roomIDs, m)
	if len(provs) == 0 {
		return nil, fmt.Errorf("%w: no member of its rooms to ask", ErrNoMedia)
	}
	meta, raw, holders, err := ps.askMeta(ctx, provs, m)
	if err != nil {
		return nil, err
	}
	if meta.Size > ms.cfg.MaxSize {
		return nil, fmt.Errorf("%w: %d bytes, over this node's %d", ErrNoMedia, meta.Size, ms.cfg.MaxSize)
	}
	if prefetch && !ps.prefetchable(meta) {
		return nil, errNotPrefetched
	}
	part, err := ms.cfg.Blobs.OpenPartial(meta)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", m, err)
	}
	ms.mu.Lock()
	ms.downloads[m] = downloading{part: part, meta: raw}
	ms.mu.Unlock()
	err = ps.fetchChunks(ctx, part, m, holders)
	ms.mu.Lock()
	delete(ms.downloads, m)
	ms.mu.Unlock()
	if err != nil {
		part.Close() // kept for the next attempt to resume
		return nil, err
	}
	if err := part.Complete(); err != nil {
		return nil, fmt.Errorf("fetch %s: %w", m, err)
	}
	if err := ps.keepMediaRecord(m, meta, raw); err != nil {
		return nil, fmt.Errorf("fetch %s: %w", m, err)
	}
	return meta, nil
}

// mediaProviders lists whom to ask for an mxc: in each room the node
// holds and is joined in, the mxc's server if it is joined, the
// connected members, then the other joined servers; each node once,
// never this one.
func (ps *Peers) mediaProviders(roomIDs []string, m store.MediaID) []provider {
	var out []provider
	add := func(p peer.ID, room string) {
		if p == ps.host.ID() || len(out) >= maxProviders || slices.ContainsFunc(out, func(x provider) bool { return x.p == p }) {
			return
		}
		out = append(out, provider{p, room})
	}
	for _, id := range roomIDs {
		r := ps.Room(id)
		if r == nil || !ps.serverJoined(r, ps.serverName) {
			continue
		}
		servers := ps.RoomServers(r)
		if slices.Contains(servers, m.Server) {
			if p, err := peerOf(m.Server); err == nil {
				add(p, id)
			}
		}
		for _, p := range ps.connectedMembers(r) {
			add(p, id)
		}
		for _, s := range servers {
			if p, err := peerOf(s); err == nil {
				add(p, id)
			}
		}
	}
	return out
}

// askMeta asks providers for the mxc's metadata, metaAskAtOnce at a
// time, and returns the first that verifies, its signed bytes, and the
// providers in the order to ask for chunks: those that answered first,
// the ones not asked after. A late answer of the first wave still joins
// the holders.
func (ps *Peers) askMeta(ctx context.Context, provs []provider, m store.MediaID) (*media.Meta, []byte, *holders, error) {
	type answer struct {
		pr   provider
		meta *media.Meta
		raw  []byte
		err  error
	}
	h := &holders{}
	var lastErr error
	for start := 0; start < len(provs); start += metaAskAtOnce {
		wave := provs[start:min(start+metaAskAtOnce, len(provs))]
		answers := make(chan answer, len(wave))
		for _, pr := range wave {
			ps.wg.Add(1) // the transfer's goroutine holds the group open
			go func() {
				defer ps.wg.Done()
				var resp MediaMetaResp
				out, err := ps.requestRaw(ctx, pr.p, MethodMediaMeta, MediaReq{RoomID: pr.room, Server: m.Server, MediaID: m.ID})
				if err == nil {
					err = json.Unmarshal(out, &resp)
				}
				a := answer{pr: pr, err: err}
				if err == nil {
					a.meta, a.err = media.Verify(resp.Meta, m.Server, m.ID)
					a.raw = resp.Meta
				}
				if a.err == nil {
					h.add(pr, haveBits(resp.Have, len(a.meta.Chunks)))
				}
				answers <- a
			}()
		}
		var first *answer
		var grace <-chan time.Time
		for n := 0; n < len(wave); n++ {
			var a answer
			select {
			case a = <-answers:
			case <-grace:
				n = len(wave)
				continue
			case <-ctx.Done():
				return nil, nil, nil, ctx.Err()
			}
			if a.err != nil {
				lastErr = a.err
				if errors.Is(a.err, media.ErrBadMeta) {
					ps.log.Warn("media metadata that does not verify", "mxc", m.String(), "peer", shortPeer(a.pr.p), "err", a.err)
				}
				continue
			}
			if first == nil {
				first = &a
				grace = time.After(metaGrace)
			}
		}
		if first != nil {
			// The providers not asked yet go last: they may hold it.
			h.mu.Lock()
			h.later = append(h.later, provs[start+len(wave):]...)
			h.mu.Unlock()
			return first.meta, first.raw, h, nil
		}
	}
	if lastErr == nil {
		lastErr = errors.New("no answer")
	}
	return nil, nil, nil, fmt.Errorf("%w: %v", ErrNoMedia, lastErr)
}

// holders are the providers of one transfer: those that answered its
// metadata (in the order they did), then the others; and those banned
// for sending a bad chunk.
type holders struct {
	mu   sync.Mutex
	have []provider
	// bits are the chunks a provider said it has, for one with a
	// download under way (nil: all).
	bits   map[peer.ID][]byte
	later  []provider
	banned map[peer.ID]bool
	// slots bound the chunks asked of one provider at once to what a
	// provider serves one peer (maxServedChunksPerPeer).
	slots map[peer.ID]chan struct{}
}

// slot returns the provider's chunk slots.
func (h *holders) slot(p peer.ID) chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.slots == nil {
		h.slots = map[peer.ID]chan struct{}{}
	}
	s := h.slots[p]
	if s == nil {
		s = make(chan struct{}, maxServedChunksPerPeer)
		h.slots[p] = s
	}
	return s
}

// take waits for a chunk slot of one of provs, preferring the first
// free in order (the first of provs if none is free), and returns the
// provider and the slot's release.
func (h *holders) take(ctx context.Context, provs []provider) (provider, func(), error) {
	for _, pr := range provs {
		s := h.slot(pr.p)
		select {
		case s <- struct{}{}:
			return pr, func() { <-s }, nil
		default:
		}
	}
	s := h.slot(provs[0].p)
	select {
	case s <- struct{}{}:
		return provs[0], func() { <-s }, nil
	case <-ctx.Done():
		return provider{}, nil, ctx.Err()
	}
}

func (h *holders) add(pr provider, bits []byte) {
	h.mu.Lock()
	h.have = append(h.have, pr)
	if bits != nil {
		if h.bits == nil {
			h.bits = map[peer.ID][]byte{}
		}
		h.bits[pr.p] = bits
	}
	h.mu.Unlock()
}

// haveBits reads a media_meta answer's have: nil for "all" (or anything
// unreadable), else the bitmap of n chunks.
func haveBits(have string, n int) []byte {
	if have == "all" {
		return nil
	}
	b, err := base64.RawStdEncoding.DecodeString(have)
	if err != nil || len(b) != (n+7)/8 {
		return nil
	}
	return b
}

// has reports whether a provider said it has chunk i.
func (h *holders) has(p peer.ID, i int) bool {
	b, ok := h.bits[p]
	return !ok || b[i/8]&(1<<(i%8)) != 0
}

// list returns the providers not banned to ask for chunk n: the holders
// that have it, starting at the n-th (so chunks spread over them), then
// those that had not got it yet, then the providers not asked.
func (h *holders) list(n int) []provider {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out, lacking []provider
	for i := range h.have {
		pr := h.have[(n+i)%len(h.have)]
		switch {
		case h.banned[pr.p]:
		case h.has(pr.p, n):
			out = append(out, pr)
		default:
			lacking = append(lacking, pr)
		}
	}
	out = append(out, lacking...)
	for _, pr := range h.later {
		if !h.banned[pr.p] && !slices.Contains(out, pr) {
			out = append(out, pr)
		}
	}
	return out
}

func (h *holders) ban(p peer.ID) {
	h.mu.Lock()
	if h.banned == nil {
		h.banned = map[peer.ID]bool{}
	}
	h.banned[p] = true
	h.mu.Unlock()
}

// fetchChunks fetches the partial's missing chunks, chunksInFlight at a
// time; the first chunk no provider gives ends the transfer (what was
// written stays for the next attempt).
func (ps *Peers) fetchChunks(ctx context.Context, part *media.Partial, m store.MediaID, h *holders) error {
	missing := part.Missing()
	if len(missing) == 0 {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	next := make(chan int, len(missing))
	for _, i := range missing {
		next <- i
	}
	close(next)
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	for range min(chunksInFlight, len(missing)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := ps.fetchChunk(ctx, part, m, h, i); err != nil {
					errOnce.Do(func() { firstErr = err; cancel() })
					return
				}
			}
		}()
	}
	wg.Wait()
	return firstErr
}

// fetchChunk fetches chunk i from the providers in turn (the first with
// a free slot first), each at most once a round.
func (ps *Peers) fetchChunk(ctx context.Context, part *media.Partial, m store.MediaID, h *holders, i int) error {
	var lastErr error
	for round := range chunkRounds {
		busy := false
		provs := h.list(i)
		for len(provs) > 0 {
			pr, release, err := h.take(ctx, provs)
			if err != nil {
				return err
			}
			provs = slices.DeleteFunc(provs, func(x provider) bool { return x == pr })
			ps.media.chunkRequests.Add(1)
			data, err := ps.requestRaw(ctx, pr.p, MethodMediaChunk, MediaReq{RoomID: pr.room, Server: m.Server, MediaID: m.ID, Index: i})
			release()
			if err == nil {
				err = part.WriteChunk(i, data)
				if errors.Is(err, media.ErrChunkMismatch) {
					ps.log.Warn("media chunk that does not match its hash: provider banned for this transfer", "mxc", m.String(), "chunk", i, "peer", shortPeer(pr.p))
					h.ban(pr.p)
				}
			}
			if err == nil {
				return nil
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			var re *p2p.RemoteError
			if errors.As(err, &re) && re.Code == "M_LIMIT_EXCEEDED" {
				busy = true
			}
			lastErr = err
		}
		if !busy {
			break
		}
		select {
		case <-time.After(time.Duration(round+1) * 100 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if lastErr == nil {
		lastErr = errors.New("no provider left")
	}
	return fmt.Errorf("%w: chunk %d of %s: %v", ErrNoMedia, i, m, lastErr)
}

// errNotPrefetched ends a prefetch of media over the prefetch bounds.
var errNotPrefetched = errors.New("peers: media over the prefetch bounds")

// prefetchable reports whether media may be fetched ahead of need:
// images up to PrefetchMax, others up to MaxPrefetchOther.
func (ps *Peers) prefetchable(meta *media.Meta) bool {
	limit := int64(MaxPrefetchOther)
	if strings.HasPrefix(strings.ToLower(meta.Type), "image/") {
		limit = max(ps.media.cfg.PrefetchMax, limit)
	}
	return ps.media.cfg.PrefetchMax >= 0 && meta.Size <= limit
}
