package webui

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"
)

// Media is the content repository (client-server API "Content
// repository", v1.11 authenticated media): uploads, asynchronous uploads,
// downloads and thumbnails. Media IDs must match [A-Za-z0-9_-]{1,255};
// an mxc the user may not read is not found (never forbidden, so that no
// one learns it exists).
type Media interface {
	// MaxUpload is the largest upload accepted, in bytes
	// (m.upload.size).
	MaxUpload() int64
	// Upload stores an upload and returns its mxc URI. The body is
	// bounded by MaxUpload already; errs.TooLarge when this node's media
	// quota is full.
	Upload(ctx context.Context, s *Session, up MediaUpload) (string, error)
	// CreateMedia reserves an mxc URI for a later UploadTo and returns it
	// with the time (ms) it lapses if unused.
	CreateMedia(ctx context.Context, s *Session) (mxc string, expiresAt int64, err error)
	// UploadTo uploads the bytes of an mxc reserved by CreateMedia.
	UploadTo(ctx context.Context, s *Session, server, mediaID string, up MediaUpload) error
	// Download opens an mxc's bytes, waiting up to timeout for one not
	// yet uploaded. fileName, if set, names the file in the answer.
	Download(ctx context.Context, s *Session, server, mediaID, fileName string, timeout time.Duration) (*MediaFile, error)
	// Thumbnail opens a thumbnail of an mxc.
	Thumbnail(ctx context.Context, s *Session, server, mediaID string, t ThumbnailRequest) (*MediaFile, error)
}

// MediaUpload is an upload's body and what the request says of it.
type MediaUpload struct {
	Body        io.Reader
	Length      int64 // Content-Length; -1 if unknown
	ContentType string
	FileName    string
}

// ThumbnailRequest is what a client asks of a thumbnail.
type ThumbnailRequest struct {
	Width, Height int
	Method        string // "crop" or "scale"
	Animated      bool
	Timeout       time.Duration
}

// MediaFile is media to send: the handler serves it with
// http.ServeContent (so Range and conditional requests work) and the
// headers that keep it from running as a page of this origin.
type MediaFile struct {
	Content     io.ReadSeekCloser
	ContentType string
	// Disposition is the whole Content-Disposition value: "inline" only
	// for types safe to show in place, with the file name.
	Disposition string
	// ETag identifies the bytes (their SHA-256); media never change.
	ETag    string
	ModTime time.Time
}

// Download timeouts (timeout_ms): the spec's default, and our cap.
const (
	defaultMediaTimeout = 20 * time.Second
	maxMediaTimeout     = 120 * time.Second
	// uploadBodyTimeout replaces the 30 s body deadline for uploads.
	uploadBodyTimeout = 10 * time.Minute
)

// mediaCSP keeps media opened directly from running anything, whatever
// its type (the spec's recommended policy).
const mediaCSP = "sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; style-src 'unsafe-inline'; object-src 'self';"

func (s *Server) mediaConfig(w http.ResponseWriter, r *http.Request, _ *Session) error {
	writeJSON(w, http.StatusOK, map[string]any{"m.upload.size": s.media.MaxUpload()})
	return nil
}

// mediaUpload reads the upload's body as a stream: never whole in memory,
// bounded by MaxUpload, with ten minutes to arrive.
func (s *Server) readUpload(w http.ResponseWriter, r *http.Request) (MediaUpload, error) {
	limit := s.media.MaxUpload()
	if r.ContentLength > limit {
		return MediaUpload{}, errUploadTooLarge(limit)
	}
	http.NewResponseController(w).SetReadDeadline(time.Now().Add(uploadBodyTimeout))
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		ct = "application/octet-stream"
	}
	return MediaUpload{
		Body:        http.MaxBytesReader(w, r.Body, limit),
		Length:      r.ContentLength,
		ContentType: ct,
		FileName:    r.URL.Query().Get("filename"),
	}, nil
}

func errUploadTooLarge(limit int64) *Error {
	return Errorf(http.StatusRequestEntityTooLarge, "M_TOO_LARGE", "upload over this node's limit of %d bytes", limit)
}

// uploadError turns what reading an upload's body can fail with into a
// Matrix error: over the size limit, too slow; anything else as it is.
func (s *Server) uploadError(err error) error {
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return errUploadTooLarge(tooBig.Limit)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return Errorf(http.StatusRequestTimeout, "M_UNKNOWN", "the upload took too long to arrive")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return Errorf(http.StatusBadRequest, "M_UNKNOWN", "the upload was cut short")
	}
	return err
}

func (s *Server) mediaUpload(w http.ResponseWriter, r *http.Request, sess *Session) error {
	up, err := s.readUpload(w, r)
	if err != nil {
		return err
	}
	mxc, err := s.media.Upload(r.Context(), sess, up)
	if err != nil {
		return s.uploadError(err)
	}
	writeJSON(w, http.StatusOK, map[string]string{"content_uri": mxc})
	return nil
}

func (s *Server) mediaCreate(w http.ResponseWriter, r *http.Request, sess *Session) error {
	if _, err := readBody(r); err != nil {
		return err
	}
	mxc, expires, err := s.media.CreateMedia(r.Context(), sess)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"content_uri": mxc, "unused_expires_at": expires})
	return nil
}

func (s *Server) mediaUploadTo(w http.ResponseWriter, r *http.Request, sess *Session) error {
	up, err := s.readUpload(w, r)
	if err != nil {
		return err
	}
	if err := s.media.UploadTo(r.Context(), sess, r.PathValue("serverName"), r.PathValue("mediaId"), up); err != nil {
		return s.uploadError(err)
	}
	writeJSON(w, http.StatusOK, map[string]any{})
	return nil
}

// mediaTimeout reads timeout_ms: default 20 s, at most 120 s.
func mediaTimeout(r *http.Request) (time.Duration, error) {
	ms, ok, err := queryInt(r.URL.Query(), "timeout_ms", 0)
	if err != nil || !ok {
		return defaultMediaTimeout, err
	}
	return min(time.Duration(ms)*time.Millisecond, maxMediaTimeout), nil
}

func (s *Server) mediaDownload(w http.ResponseWriter, r *http.Request, sess *Session) error {
	timeout, err := mediaTimeout(r)
	if err != nil {
		return err
	}
	f, err := s.media.Download(r.Context(), sess, r.PathValue("serverName"), r.PathValue("mediaId"), r.PathValue("fileName"), timeout)
	if err != nil {
		return err
	}
	serveMedia(w, r, f)
	return nil
}

func (s *Server) mediaThumbnail(w http.ResponseWriter, r *http.Request, sess *Session) error {
	q := r.URL.Query()
	var t ThumbnailRequest
	var err error
	for _, p := range []struct {
		name string
		v    *int
	}{{"width", &t.Width}, {"height", &t.Height}} {
		var ok bool
		if *p.v, ok, err = queryInt(q, p.name, 1); err != nil {
			return Errorf(http.StatusBadRequest, "M_UNKNOWN", "%s must be a positive integer", p.name)
		} else if !ok {
			return errMissingParam("%s is required", p.name)
		}
	}
	switch t.Method = q.Get("method"); t.Method {
	case "":
		t.Method = "scale"
	case "crop", "scale":
	default:
		return Errorf(http.StatusBadRequest, "M_UNKNOWN", "method must be crop or scale")
	}
	if t.Animated, err = queryBool(q, "animated"); err != nil {
		return err
	}
	if t.Timeout, err = mediaTimeout(r); err != nil {
		return err
	}
	f, err := s.media.Thumbnail(r.Context(), sess, r.PathValue("serverName"), r.PathValue("mediaId"), t)
	if err != nil {
		return err
	}
	serveMedia(w, r, f)
	return nil
}

// serveMedia sends media with the headers that make it safe on the app's
// own origin: a sandboxing CSP, the disposition the backend chose, and no
// sniffing (set for every answer); Range and If-None-Match through
// http.ServeContent.
func serveMedia(w http.ResponseWriter, r *http.Request, f *MediaFile) {
	defer f.Content.Close()
	h := w.Header()
	h.Set("Content-Type", f.ContentType)
	h.Set("Content-Disposition", f.Disposition)
	h.Set("Content-Security-Policy", mediaCSP)
	h.Set("Cross-Origin-Resource-Policy", "cross-origin")
	h.Set("Cache-Control", "private, max-age=31536000, immutable")
	if f.ETag != "" {
		h.Set("ETag", strconv.Quote(f.ETag))
	}
	http.ServeContent(w, r, "", f.ModTime, f.Content)
}

// legacyMedia serves the frozen /_matrix/media/v3 download, thumbnail
// and config paths only to a request with an access token (the spec lets
// a server answer 404 for media made after the freeze, which all of this
// node's is); without one, 404 M_NOT_FOUND.
func (s *Server) legacyMedia(h func(w http.ResponseWriter, r *http.Request, sess *Session) error) http.Handler {
	withToken := s.authed(h)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if accessToken(r) == "" {
			writeError(w, s.log, r, Errorf(http.StatusNotFound, "M_NOT_FOUND", "media downloads need an access token: use /_matrix/client/v1/media"))
			return
		}
		withToken.ServeHTTP(w, r)
	})
}

// mediaRoutes are the content repository's routes (see routes).
func (s *Server) mediaRoutes(mux *http.ServeMux) {
	const v1 = "/_matrix/client/v1/media"
	mux.Handle("GET "+v1+"/config", s.authed(s.mediaConfig))
	mux.Handle("GET "+v1+"/download/{serverName}/{mediaId}", s.authed(s.mediaDownload))
	mux.Handle("GET "+v1+"/download/{serverName}/{mediaId}/{fileName}", s.authed(s.mediaDownload))
	mux.Handle("GET "+v1+"/thumbnail/{serverName}/{mediaId}", s.authed(s.mediaThumbnail))
	mux.Handle("POST /_matrix/media/v3/upload", s.authed(s.mediaUpload))
	mux.Handle("POST /_matrix/media/v1/create", s.authed(s.mediaCreate))
	mux.Handle("PUT /_matrix/media/v3/upload/{serverName}/{mediaId}", s.authed(s.mediaUploadTo))
	const legacy = "/_matrix/media/v3"
	mux.Handle("GET "+legacy+"/config", s.legacyMedia(s.mediaConfig))
	mux.Handle("GET "+legacy+"/download/{serverName}/{mediaId}", s.legacyMedia(s.mediaDownload))
	mux.Handle("GET "+legacy+"/download/{serverName}/{mediaId}/{fileName}", s.legacyMedia(s.mediaDownload))
	mux.Handle("GET "+legacy+"/thumbnail/{serverName}/{mediaId}", s.legacyMedia(s.mediaThumbnail))
}
