package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/parley-p2p/parley/errs"
	"github.com/parley-p2p/parley/node/media"
	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/rooms"
	"github.com/parley-p2p/parley/webui"
)

// The content repository: uploads land in the node's media store (a
// blob per SHA-256, node/media) with an md/ record per mxc and metadata
// signed with the node's key, so that any member node holding the file
// can serve it and none can forge it. Media of other nodes comes through
// Config.MediaFetcher (node/peers).

// Bounds and defaults of the content repository.
const (
	// DefaultMaxUpload is Config.MaxUpload's default (100 MiB).
	DefaultMaxUpload = 100 << 20
	// pendingLifetime is how long an mxc from /create waits for its bytes.
	pendingLifetime = 24 * time.Hour
	// maxPendingMedia bounds the unused /create mxcs of one user.
	maxPendingMedia = 10
	// uploadsPerUser and uploadsPerNode bound the uploads in progress.
	uploadsPerUser = 4
	uploadsPerNode = 8
	// sweepEvery is how often lapsed /create mxcs are swept (on the next
	// /create after that long).
	sweepEvery = time.Hour
)

// MediaFetcher gets media of other nodes (node/peers implements it over
// the room protocol). Fetch must check that user (a local user) may read
// mxc://server/mediaID (a reference to it visible to them in a room they
// can read), return errs.NotFound if not or if no member node has it, and
// return at once when the blob is complete here already. The blob it
// names is then in the media store; meta is its verified metadata.
type MediaFetcher interface {
	Fetch(ctx context.Context, user, server, mediaID string) (sha string, meta *media.Meta, err error)
}

// mediaReferenced reports whether a user may read mxc://server/mediaID
// through a room: a reference to it (an event naming it) that they can
// see in a room they can read. It is set by the media references
// (mediarefs.go); while nil, only the uploader reads a local upload.
var mediaReferenced func(api *API, user, server, mediaID string) bool

// mediaState is the content repository's state in memory.
type mediaState struct {
	mu        sync.Mutex
	uploading map[string]int           // uploads in progress per user
	total     int                      // uploads in progress
	waiting   map[string]*uploadWaiter // downloads waiting for a pending mxc's bytes
	lastSweep time.Time
}

func (api *API) mediaStore() (*media.Store, error) {
	if api.cfg.Media == nil {
		return nil, errs.NotFoundf("this node keeps no media")
	}
	return api.cfg.Media, nil
}

// MaxUpload implements webui.Media.
func (api *API) MaxUpload() int64 {
	if api.cfg.MaxUpload > 0 {
		return api.cfg.MaxUpload
	}
	return DefaultMaxUpload
}

// newMediaID is 24 random base64url characters (144 bits): unguessable,
// since holding an mxc is part of what lets one ask for it.
func newMediaID() string {
	var b [18]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (api *API) mxc(mediaID string) string { return "mxc://" + api.serverName + "/" + mediaID }

// beginUpload takes an upload slot of the user's: at most uploadsPerUser
// each and uploadsPerNode in all.
func (api *API) beginUpload(user string) (func(), error) {
	m := &api.media
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.uploading == nil {
		m.uploading = map[string]int{}
	}
	if m.uploading[user] >= uploadsPerUser || m.total >= uploadsPerNode {
		return nil, limitExceeded("too many uploads in progress; try again when one is done")
	}
	m.uploading[user]++
	m.total++
	return func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		m.total--
		if m.uploading[user]--; m.uploading[user] <= 0 {
			delete(m.uploading, user)
		}
	}, nil
}

// UploadsInProgress counts the uploads being received now.
func (api *API) UploadsInProgress() int {
	api.media.mu.Lock()
	defer api.media.mu.Unlock()
	return api.media.total
}

func limitExceeded(msg string) error {
	e := webui.Errorf(http.StatusTooManyRequests, "M_LIMIT_EXCEEDED", "%s", msg)
	e.Extra = map[string]any{"retry_after_ms": 1000}
	return e
}

// cleanType is a declared content type, parsed and re-formatted;
// application/octet-stream if it does not parse.
func cleanType(ct string) string {
	mt, params, err := mime.ParseMediaType(ct)
	if top, sub, ok := strings.Cut(mt, "/"); err == nil && ok && top != "" && sub != "" {
		if s := mime.FormatMediaType(mt, params); s != "" && len(s) <= 255 {
			return s
		}
	}
	return "application/octet-stream"
}

// store writes an upload's bytes to the media store and signs its
// metadata: the record of mxc://<this node>/mediaID, not yet written.
func (api *API) storeUpload(s *webui.Session, mediaID string, up webui.MediaUpload) (*store.MediaRecord, error) {
	ms, err := api.mediaStore()
	if err != nil {
		return nil, err
	}
	done, err := api.beginUpload(s.UserID)
	if err != nil {
		return nil, err
	}
	defer done()
	if up.Length > 0 {
		if !ms.Room(up.Length) {
			return nil, errs.TooLargef("this node's media quota is full")
		}
		if err := ms.CheckFree(up.Length); err != nil {
			return nil, err
		}
	}
	d, err := ms.Put(up.Body)
	if errors.Is(err, media.ErrQuotaFull) {
		return nil, errs.TooLargef("this node's media quota is full")
	}
	if err != nil {
		return nil, err
	}
	rec := &store.MediaRecord{
		SHA256: d.SHA256, Size: d.Size, Type: cleanType(up.ContentType), Name: media.CleanFilename(up.FileName),
		Created: nowMS(), Uploader: s.UserID,
	}
	m := media.Meta{Server: api.serverName, MediaID: mediaID, Size: d.Size, SHA256: d.SHA256, Chunks: d.Chunks, Type: rec.Type, Name: rec.Name, TS: rec.Created}
	if rec.Meta, err = m.Sign(api.cfg.MediaKey); err != nil {
		return nil, err
	}
	return rec, nil
}

// Upload implements webui.Media.
func (api *API) Upload(ctx context.Context, s *webui.Session, up webui.MediaUpload) (string, error) {
	id := newMediaID()
	rec, err := api.storeUpload(s, id, up)
	if err != nil {
		return "", err
	}
	if err := api.store.Update(func(t *store.Txn) error { return t.PutMedia(api.serverName, id, rec) }); err != nil {
		return "", err
	}
	return api.mxc(id), nil
}

// CreateMedia implements webui.Media.
func (api *API) CreateMedia(ctx context.Context, s *webui.Session) (string, int64, error) {
	if _, err := api.mediaStore(); err != nil {
		return "", 0, err
	}
	api.sweepPending()
	id := newMediaID()
	now := nowMS()
	expires := now + pendingLifetime.Milliseconds()
	err := api.store.Update(func(t *store.Txn) error {
		return t.PutPendingMedia(api.serverName, id, s.UserID, now, expires, now, maxPendingMedia)
	})
	if errors.Is(err, store.ErrTooManyPending) {
		return "", 0, limitExceeded(fmt.Sprintf("you have %d media IDs waiting for an upload already", maxPendingMedia))
	}
	if err != nil {
		return "", 0, err
	}
	return api.mxc(id), expires, nil
}

// sweepPending deletes lapsed /create mxcs, at most once every sweepEvery.
func (api *API) sweepPending() {
	m := &api.media
	m.mu.Lock()
	due := time.Since(m.lastSweep) > sweepEvery
	if due {
		m.lastSweep = time.Now()
	}
	m.mu.Unlock()
	if !due {
		return
	}
	for {
		var n int
		err := api.store.Update(func(t *store.Txn) error {
			var err error
			n, err = t.SweepLapsedMedia(api.serverName, nowMS(), 1000)
			return err
		})
		if err != nil {
			api.log.Warn("sweep lapsed media IDs", "err", err)
			return
		}
		if n < 1000 {
			return
		}
	}
}

// UploadTo implements webui.Media.
func (api *API) UploadTo(ctx context.Context, s *webui.Session, server, mediaID string, up webui.MediaUpload) error {
	if server != api.serverName {
		return errs.Forbiddenf("media of %s cannot be uploaded here", server)
	}
	if !media.ValidMediaID(mediaID) {
		return errs.Invalidf("malformed media ID")
	}
	// Checked before the bytes are read, and again when written.
	check := func(t *store.Txn) error {
		rec, err := t.Media(server, mediaID)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return errs.NotFoundf("no such media ID")
		case err != nil:
			return err
		case rec.Uploader != s.UserID:
			return errs.Forbiddenf("this media ID is not yours")
		case !rec.Pending:
			return webui.Errorf(http.StatusConflict, "M_CANNOT_OVERWRITE_MEDIA", "this media ID has its content already")
		case rec.Expires <= nowMS():
			return errs.NotFoundf("this media ID has lapsed")
		}
		return nil
	}
	if err := api.store.View(check); err != nil {
		return err
	}
	rec, err := api.storeUpload(s, mediaID, up)
	if err != nil {
		return err
	}
	err = api.store.Update(func(t *store.Txn) error {
		if err := check(t); err != nil {
			return err
		}
		return t.PutMedia(server, mediaID, rec)
	})
	if err != nil {
		return err
	}
	api.uploaded(mediaID)
	return nil
}

// uploadWaiter is what downloads of one pending mxc wait on.
type uploadWaiter struct {
	done chan struct{} // closed when the bytes are there
	n    int           // downloads waiting
}

// uploaded wakes the downloads waiting for a pending mxc's bytes.
func (api *API) uploaded(mediaID string) {
	m := &api.media
	m.mu.Lock()
	if w, ok := m.waiting[mediaID]; ok {
		close(w.done)
		delete(m.waiting, mediaID)
	}
	m.mu.Unlock()
}

// waitUploaded registers a download waiting for the pending mxc
// mediaID: done is closed when its bytes come; release must be called
// when the download stops waiting. Entries live only while someone
// waits, so they are bounded by the requests in flight.
func (api *API) waitUploaded(mediaID string) (done <-chan struct{}, release func()) {
	m := &api.media
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.waiting == nil {
		m.waiting = map[string]*uploadWaiter{}
	}
	w, ok := m.waiting[mediaID]
	if !ok {
		w = &uploadWaiter{done: make(chan struct{})}
		m.waiting[mediaID] = w
	}
	w.n++
	return w.done, func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		if w.n--; w.n == 0 && m.waiting[mediaID] == w {
			delete(m.waiting, mediaID)
		}
	}
}

// errNotFound is the one answer for media a user may not read or that
// is not there: no hint of which.
func errNoMedia() error { return errs.NotFoundf("no such media") }

// openMedia finds the blob of mxc://server/mediaID for the user: a local
// upload they made or can see referenced, waiting up to timeout for a
// pending one; remote media through the fetcher. It returns the blob
// open, with its type and stored name.
func (api *API) openMedia(ctx context.Context, s *webui.Session, server, mediaID string, timeout time.Duration) (*media.Blob, string, string, error) {
	ms, err := api.mediaStore()
	if err != nil {
		return nil, "", "", err
	}
	if !media.ValidMediaID(mediaID) {
		return nil, "", "", errs.Invalidf("malformed media ID")
	}
	if server != api.serverName {
		return api.openRemote(ctx, ms, s, server, mediaID, timeout)
	}
	read := func() (*store.MediaRecord, error) {
		var rec *store.MediaRecord
		err := api.store.View(func(t *store.Txn) error {
			var err error
			rec, err = t.Media(server, mediaID)
			return err
		})
		switch {
		case errors.Is(err, store.ErrNotFound):
			return nil, errNoMedia()
		case err != nil:
			return nil, err
		case !api.mayRead(s, server, mediaID, rec):
			return nil, errNoMedia()
		case rec.Pending && rec.Expires <= nowMS():
			return nil, errNoMedia()
		}
		return rec, nil
	}
	rec, err := read()
	if err != nil {
		return nil, "", "", err
	}
	if rec.Pending {
		// Wait for the bytes: registered first, then read again, so
		// that an upload finishing in between is not missed.
		done, release := api.waitUploaded(mediaID)
		defer release()
		if rec, err = read(); err != nil {
			return nil, "", "", err
		}
		if rec.Pending {
			deadline := time.NewTimer(timeout)
			defer deadline.Stop()
			select {
			case <-done:
			case <-deadline.C:
				return nil, "", "", webui.Errorf(http.StatusGatewayTimeout, "M_NOT_YET_UPLOADED", "the content of this media ID has not been uploaded yet")
			case <-ctx.Done():
				return nil, "", "", ctx.Err()
			}
			if rec, err = read(); err != nil {
				return nil, "", "", err
			}
			if rec.Pending {
				return nil, "", "", errNoMedia()
			}
		}
	}
	b, err := ms.Open(rec.SHA256)
	if errors.Is(err, media.ErrNotFound) {
		return nil, "", "", errNoMedia()
	}
	return b, rec.Type, rec.Name, err
}

// mayRead is the local read rule: the uploader, or anyone who can see an
// event referencing the mxc in a room they can read.
func (api *API) mayRead(s *webui.Session, server, mediaID string, rec *store.MediaRecord) bool {
	if rec.Uploader != "" && rec.Uploader == s.UserID {
		return true
	}
	return mediaReferenced != nil && mediaReferenced(api, s.UserID, server, mediaID)
}

// openRemote gets media of another node through the fetcher, which
// checks the user may read it.
func (api *API) openRemote(ctx context.Context, ms *media.Store, s *webui.Session, server, mediaID string, timeout time.Duration) (*media.Blob, string, string, error) {
	if _, err := rooms.ServerKey(server); err != nil || api.cfg.MediaFetcher == nil {
		return nil, "", "", errNoMedia()
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	sha, meta, err := api.cfg.MediaFetcher.Fetch(ctx, s.UserID, server, mediaID)
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
		return nil, "", "", webui.Errorf(http.StatusGatewayTimeout, "M_NOT_YET_UPLOADED", "the media could not be fetched from a member node in time")
	}
	if err != nil {
		return nil, "", "", err
	}
	b, err := ms.Open(sha)
	if errors.Is(err, media.ErrNotFound) {
		return nil, "", "", errNoMedia()
	}
	if err != nil {
		return nil, "", "", err
	}
	return b, cleanType(meta.Type), media.CleanFilename(meta.Name), nil
}

// Download implements webui.Media.
func (api *API) Download(ctx context.Context, s *webui.Session, server, mediaID, fileName string, timeout time.Duration) (*webui.MediaFile, error) {
	b, ct, name, err := api.openMedia(ctx, s, server, mediaID, timeout)
	if err != nil {
		return nil, err
	}
	if fileName != "" {
		name = media.CleanFilename(fileName)
	}
	return blobFile(b, ct, name)
}

func blobFile(b *media.Blob, ct, name string) (*webui.MediaFile, error) {
	info, err := b.Stat()
	if err != nil {
		b.Close()
		return nil, err
	}
	return &webui.MediaFile{
		Content: b, ContentType: ct, Disposition: media.Disposition(ct, name),
		ETag: info.Name(), ModTime: info.ModTime(),
	}, nil
}

// thumbSizes are the sizes of the spec's recommended thumbnails; a
// request gets the smallest at least as large as it asks, by its own
// method (else the largest), so that each blob has at most ten cached
// thumbnails, whatever clients ask.
var thumbSizes = [][2]int{{32, 32}, {96, 96}, {320, 240}, {640, 480}, {800, 600}}

// thumbSize snaps a requested size to one of thumbSizes.
func thumbSize(w, h int) (int, int) {
	for _, s := range thumbSizes {
		if s[0] >= w && s[1] >= h {
			return s[0], s[1]
		}
	}
	last := thumbSizes[len(thumbSizes)-1]
	return last[0], last[1]
}

// Thumbnail implements webui.Media.
func (api *API) Thumbnail(ctx context.Context, s *webui.Session, server, mediaID string, req webui.ThumbnailRequest) (*webui.MediaFile, error) {
	b, ct, _, err := api.openMedia(ctx, s, server, mediaID, req.Timeout)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	ms, _ := api.mediaStore()
	w, h := thumbSize(req.Width, req.Height)
	key := fmt.Sprintf("%dx%d-%s.img", w, h, req.Method)
	data, err := ms.Thumb(b.SHA256(), key)
	if err != nil {
		if data, err = api.makeThumb(b, ct, w, h, req); err != nil {
			return nil, err
		}
		if err := ms.PutThumb(b.SHA256(), key, data); err != nil {
			api.log.Warn("cache thumbnail", "sha", b.SHA256(), "err", err)
		}
	}
	info, _ := b.Stat()
	thumbType := http.DetectContentType(data)
	return &webui.MediaFile{
		Content: nopCloser{bytes.NewReader(data)}, ContentType: thumbType,
		Disposition: media.Disposition(thumbType, "thumbnail"), ETag: b.SHA256() + "-" + key, ModTime: info.ModTime(),
	}, nil
}

// makeThumb makes a thumbnail of a blob (media.Thumbnail, which makes
// one at a time and keeps a short queue: beyond it, 429).
func (api *API) makeThumb(b *media.Blob, ct string, w, h int, req webui.ThumbnailRequest) ([]byte, error) {
	info, err := b.Stat()
	if err != nil {
		return nil, err
	}
	data, _, err := media.Thumbnail(b, info.Size(), ct, w, h, req.Method, req.Animated)
	switch {
	case errors.Is(err, media.ErrThumbBusy):
		return nil, limitExceeded("too many thumbnails being made; try again shortly")
	case errors.Is(err, media.ErrNotImage):
		return nil, webui.Errorf(http.StatusBadRequest, "M_UNKNOWN", "cannot make a thumbnail of this media: %v", err)
	}
	return data, err // media's other errors are errs kinds: a bad size 400, too large 413
}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }
