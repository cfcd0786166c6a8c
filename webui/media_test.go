package webui

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// fakeMedia serves one file and records what it was asked.
type fakeMedia struct {
	data     []byte
	timeout  time.Duration
	thumb    ThumbnailRequest
	uploaded []byte
}

type readSeekNopCloser struct{ *bytes.Reader }

func (readSeekNopCloser) Close() error { return nil }

func (f *fakeMedia) MaxUpload() int64 { return 16 }

func (f *fakeMedia) Upload(ctx context.Context, s *Session, up MediaUpload) (string, error) {
	b, err := io.ReadAll(up.Body)
	if err != nil {
		return "", err
	}
	f.uploaded = b
	return "mxc://srv/new", nil
}

func (f *fakeMedia) CreateMedia(ctx context.Context, s *Session) (string, int64, error) {
	return "mxc://srv/created", 42, nil
}

func (f *fakeMedia) UploadTo(ctx context.Context, s *Session, server, mediaID string, up MediaUpload) error {
	_, err := io.ReadAll(up.Body)
	return err
}

func (f *fakeMedia) file() *MediaFile {
	return &MediaFile{Content: readSeekNopCloser{bytes.NewReader(f.data)}, ContentType: "text/plain", Disposition: "inline", ETag: "abc", ModTime: time.Unix(1, 0)}
}

func (f *fakeMedia) Download(ctx context.Context, s *Session, server, mediaID, fileName string, timeout time.Duration) (*MediaFile, error) {
	f.timeout = timeout
	return f.file(), nil
}

func (f *fakeMedia) Thumbnail(ctx context.Context, s *Session, server, mediaID string, t ThumbnailRequest) (*MediaFile, error) {
	f.thumb = t
	return f.file(), nil
}

func mediaHarness(t *testing.T) (*harness, *fakeMedia, string) {
	rec := &record{}
	h := &harness{t: t, rec: rec, acc: newFakeAccounts(rec)}
	tok := h.acc.addUser("alice", "pw")
	f := &fakeMedia{data: []byte("0123456789")}
	h.srv = New(Config{Addr: testAddr}, Backends{Accounts: h.acc, Media: f})
	h.h = h.srv.Handler()
	return h, f, tok
}

func TestMediaDownloadTimeouts(t *testing.T) {
	h, f, tok := mediaHarness(t)
	for q, want := range map[string]time.Duration{
		"": 20 * time.Second, "?timeout_ms=500": 500 * time.Millisecond, "?timeout_ms=999999999": 120 * time.Second,
	} {
		w := h.do("GET", "/_matrix/client/v1/media/download/srv/id"+q, "", token(tok))
		wantStatus(t, w, 200)
		if f.timeout != want {
			t.Errorf("timeout for %q: %v, want %v", q, f.timeout, want)
		}
	}
	wantError(t, h.do("GET", "/_matrix/client/v1/media/download/srv/id?timeout_ms=x", "", token(tok)), 400, "M_INVALID_PARAM")
}

func TestMediaAnswersAreConditionalAndRanged(t *testing.T) {
	h, _, tok := mediaHarness(t)
	path := "/_matrix/client/v1/media/download/srv/id"
	w := h.do("GET", path, "", token(tok), header("Range", "bytes=2-4"))
	wantStatus(t, w, http.StatusPartialContent)
	if w.Body.String() != "234" || w.Header().Get("Content-Range") != "bytes 2-4/10" {
		t.Errorf("range answer %q, %q", w.Body.String(), w.Header().Get("Content-Range"))
	}
	w = h.do("GET", path, "", token(tok), header("If-None-Match", `"abc"`))
	wantStatus(t, w, http.StatusNotModified)
	w = h.do("HEAD", path, "", token(tok))
	wantStatus(t, w, 200)
	if w.Body.Len() != 0 || w.Header().Get("Content-Length") != "10" || !strings.HasPrefix(w.Header().Get("Content-Security-Policy"), "sandbox") {
		t.Errorf("HEAD: %d bytes, headers %v", w.Body.Len(), w.Header())
	}
}

func TestMediaThumbnailParameters(t *testing.T) {
	h, f, tok := mediaHarness(t)
	wantStatus(t, h.do("GET", "/_matrix/client/v1/media/thumbnail/srv/id?width=10&height=20", "", token(tok)), 200)
	if f.thumb.Width != 10 || f.thumb.Height != 20 || f.thumb.Method != "scale" || f.thumb.Animated {
		t.Errorf("default thumbnail request %+v", f.thumb)
	}
	wantStatus(t, h.do("GET", "/_matrix/client/v1/media/thumbnail/srv/id?width=1&height=2&method=crop&animated=true", "", token(tok)), 200)
	if f.thumb.Method != "crop" || !f.thumb.Animated {
		t.Errorf("crop animated request %+v", f.thumb)
	}
	wantError(t, h.do("GET", "/_matrix/client/v1/media/thumbnail/srv/id?width=1", "", token(tok)), 400, "M_MISSING_PARAM")
	wantError(t, h.do("GET", "/_matrix/client/v1/media/thumbnail/srv/id?width=0&height=2", "", token(tok)), 400, "M_UNKNOWN")
	wantError(t, h.do("GET", "/_matrix/client/v1/media/thumbnail/srv/id?width=1&height=2&animated=maybe", "", token(tok)), 400, "M_INVALID_PARAM")
}

func TestMediaUploadBodies(t *testing.T) {
	h, f, tok := mediaHarness(t)
	w := h.do("POST", "/_matrix/media/v3/upload", "sixteen bytes!!!", token(tok))
	wantStatus(t, w, 200)
	if string(f.uploaded) != "sixteen bytes!!!" || decode(t, w)["content_uri"] != "mxc://srv/new" {
		t.Errorf("upload stored %q, answered %s", f.uploaded, w.Body.String())
	}
	wantError(t, h.do("POST", "/_matrix/media/v3/upload", "seventeen bytes!!", token(tok)), 413, "M_TOO_LARGE")
	w = h.do("POST", "/_matrix/media/v1/create", "", token(tok))
	wantStatus(t, w, 200)
	if m := decode(t, w); m["content_uri"] != "mxc://srv/created" || m["unused_expires_at"] != float64(42) {
		t.Errorf("create answered %v", m)
	}
	wantStatus(t, h.do("PUT", "/_matrix/media/v3/upload/srv/created", "bytes", token(tok)), 200)
}

func TestMediaRoutesNeedTheRole(t *testing.T) {
	h := newHarness(t)
	tok := h.acc.addUser("alice", "pw")
	wantError(t, h.do("GET", "/_matrix/client/v1/media/config", "", token(tok)), 404, "M_UNRECOGNIZED")
	wantError(t, h.do("POST", "/_matrix/media/v3/upload", "x", token(tok)), 404, "M_UNRECOGNIZED")
}

func TestLegacyMediaNeedsAToken(t *testing.T) {
	h, _, tok := mediaHarness(t)
	for _, p := range []string{"/_matrix/media/v3/download/srv/id", "/_matrix/media/v3/download/srv/id/name.txt", "/_matrix/media/v3/thumbnail/srv/id?width=1&height=1", "/_matrix/media/v3/config"} {
		wantError(t, h.do("GET", p, ""), 404, "M_NOT_FOUND")
		wantStatus(t, h.do("GET", p, "", token(tok)), 200)
		wantStatus(t, h.do("GET", p+map[bool]string{true: "&", false: "?"}[strings.Contains(p, "?")]+"access_token="+tok, ""), 200)
	}
}
