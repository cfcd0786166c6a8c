package node

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/parley-p2p/parley/errs"
	"github.com/parley-p2p/parley/internal/testkit"
	"github.com/parley-p2p/parley/node/media"
	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/rooms"
)

// mediaReq makes a raw request to a node's API (token "" sends none).
func mediaReq(t *testing.T, n *testNode, method, path, token string, body io.Reader, header http.Header) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+n.HTTPAddr()+path, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// wantRawError fails unless the answer has this status and errcode.
func wantRawError(t *testing.T, what string, resp *http.Response, body []byte, status int, code string) {
	t.Helper()
	var e struct {
		ErrCode string `json:"errcode"`
	}
	json.Unmarshal(body, &e)
	if resp.StatusCode != status || e.ErrCode != code {
		t.Fatalf("%s: %d %s (%s), want %d %s", what, resp.StatusCode, e.ErrCode, body, status, code)
	}
}

func testPNG(t *testing.T) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 64, 48))
	for x := range 64 {
		for y := range 48 {
			img.Set(x, y, color.RGBA{uint8(x * 4), uint8(y * 5), 90, 255})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func downloadPath(mxc id.ContentURI) string {
	return "/_matrix/client/v1/media/download/" + mxc.Homeserver + "/" + mxc.FileID
}

// TestMediaUploadAndDownload: an upload comes back byte for byte, with
// headers that keep it from running on the app's origin, by Range too,
// on the legacy path only with a token, and still after a restart; a
// user who has no way to it is told it does not exist.
func TestMediaUploadAndDownload(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n := newTestNode(t, testOpts{regToken: "media"})
	alice, bob := n.register(ctx, "alice"), n.register(ctx, "bob")
	pic := testPNG(t)
	up, err := alice.UploadBytesWithName(ctx, pic, "image/png", "cat.png")
	if err != nil {
		t.Fatal(err)
	}
	if up.ContentURI.Homeserver != n.ServerName() || len(up.ContentURI.FileID) != 24 {
		t.Fatalf("content URI %s: want this node's server and a 24-character media ID", up.ContentURI)
	}

	resp, err := alice.Download(ctx, up.ContentURI)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Equal(got, pic) {
		t.Fatal("downloaded bytes differ from the upload")
	}
	for header, want := range map[string]string{
		"Content-Type":                 "image/png",
		"Content-Disposition":          `inline; filename="cat.png"`,
		"X-Content-Type-Options":       "nosniff",
		"Cross-Origin-Resource-Policy": "cross-origin",
		"Cache-Control":                "private, max-age=31536000, immutable",
	} {
		if v := resp.Header.Get(header); v != want {
			t.Errorf("%s: %q, want %q", header, v, want)
		}
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.HasPrefix(csp, "sandbox;") || !strings.Contains(csp, "script-src 'none'") {
		t.Errorf("Content-Security-Policy %q does not sandbox", csp)
	}

	// The name in the path names the file.
	r, _ := mediaReq(t, n, "GET", downloadPath(up.ContentURI)+"/kitten.png", alice.AccessToken, nil, nil)
	if d := r.Header.Get("Content-Disposition"); d != `inline; filename="kitten.png"` {
		t.Errorf("Content-Disposition with a name in the path: %q", d)
	}

	// Range: the rest of the file from byte 100.
	r, body := mediaReq(t, n, "GET", downloadPath(up.ContentURI), alice.AccessToken, nil, http.Header{"Range": {"bytes=100-"}})
	if r.StatusCode != http.StatusPartialContent || !bytes.Equal(body, pic[100:]) {
		t.Fatalf("Range bytes=100-: %d, %d bytes; want 206 and %d bytes", r.StatusCode, len(body), len(pic)-100)
	}

	// Bob shares no room with the picture: it does not exist for him.
	_, err = bob.Download(ctx, up.ContentURI)
	wantHTTP(t, "bob downloading alice's unshared upload", err, http.StatusNotFound, "M_NOT_FOUND")

	// The legacy path answers only with a token.
	legacy := "/_matrix/media/v3/download/" + up.ContentURI.Homeserver + "/" + up.ContentURI.FileID
	r, body = mediaReq(t, n, "GET", legacy, alice.AccessToken, nil, nil)
	if r.StatusCode != 200 || !bytes.Equal(body, pic) {
		t.Fatalf("legacy download with a token: %d", r.StatusCode)
	}
	r, body = mediaReq(t, n, "GET", legacy, "", nil, nil)
	wantRawError(t, "legacy download without a token", r, body, http.StatusNotFound, "M_NOT_FOUND")
	r, body = mediaReq(t, n, "GET", "/_matrix/media/v3/config", "", nil, nil)
	wantRawError(t, "legacy config without a token", r, body, http.StatusNotFound, "M_NOT_FOUND")
	r, body = mediaReq(t, n, "GET", "/_matrix/media/v3/config", alice.AccessToken, nil, nil)
	if r.StatusCode != 200 || !strings.Contains(string(body), `"m.upload.size":104857600`) {
		t.Fatalf("legacy config with a token: %d %s", r.StatusCode, body)
	}
	r, body = mediaReq(t, n, "GET", "/_matrix/client/v1/media/preview_url?url=http://example.org", alice.AccessToken, nil, nil)
	wantRawError(t, "preview_url", r, body, http.StatusNotFound, "M_UNRECOGNIZED")
	r, body = mediaReq(t, n, "GET", downloadPath(up.ContentURI), "", nil, nil)
	wantRawError(t, "download without a token", r, body, http.StatusUnauthorized, "M_MISSING_TOKEN")

	// UploadMedia streams a body of unknown length.
	up2, err := alice.UploadMedia(ctx, mautrix.ReqUploadMedia{Content: bytes.NewReader(pic), ContentLength: -1, ContentType: "image/png"})
	if err != nil {
		t.Fatal(err)
	}
	if up2.ContentURI == up.ContentURI {
		t.Fatal("a second upload of the same bytes got the same media ID")
	}
	if u := n.media.Usage(); u.Blobs != 1 || u.Local != int64(len(pic)) {
		t.Fatalf("two uploads of the same bytes: usage %+v, want one local blob", u)
	}

	// After a restart the upload is still there, and still local.
	dir := n.dir
	n.Close()
	n2 := newTestNode(t, testOpts{dir: dir, regToken: "media"})
	alice.HomeserverURL, _ = url.Parse("http://" + n2.HTTPAddr())
	got, err = alice.DownloadBytes(ctx, up.ContentURI)
	if err != nil || !bytes.Equal(got, pic) {
		t.Fatalf("download after a restart: %v", err)
	}
	if u := n2.media.Usage(); u.Local != int64(len(pic)) {
		t.Fatalf("after a restart the upload is not counted local: %+v", u)
	}
}

// TestMediaLimits: the configured maximum upload is reported and held
// to, with or without a Content-Length; uploads past the quota are
// refused.
func TestMediaLimits(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n := newTestNode(t, testOpts{maxUpload: 1 << 20, mediaQuota: 3 << 20})
	alice := n.register(ctx, "alice")
	cfg, err := alice.GetMediaConfig(ctx)
	if err != nil || cfg.UploadSize != 1<<20 {
		t.Fatalf("media config %+v, %v", cfg, err)
	}
	if _, err := alice.UploadBytes(ctx, make([]byte, 1<<20), "application/octet-stream"); err != nil {
		t.Fatalf("an upload of exactly the maximum: %v", err)
	}
	_, err = alice.UploadBytes(ctx, make([]byte, 1<<20+1), "application/octet-stream")
	wantHTTP(t, "an upload one byte over the maximum", err, http.StatusRequestEntityTooLarge, "M_TOO_LARGE")
	// Without a Content-Length the limit holds while reading.
	_, err = alice.UploadMedia(ctx, mautrix.ReqUploadMedia{Content: io.LimitReader(neverEnding('x'), 1<<20+1), ContentLength: -1})
	wantHTTP(t, "a chunked upload over the maximum", err, http.StatusRequestEntityTooLarge, "M_TOO_LARGE")

	// 1 MiB is stored; 1 MiB + 1 MiB fills 3 MiB less a byte; the next is refused.
	for i := range 2 {
		data := bytes.Repeat([]byte{byte(i + 1)}, 1<<20)
		if _, err := alice.UploadBytes(ctx, data, "application/octet-stream"); err != nil {
			t.Fatalf("upload %d within the quota: %v", i, err)
		}
	}
	_, err = alice.UploadBytes(ctx, []byte("one more"), "text/plain")
	wantHTTP(t, "an upload past the media quota", err, http.StatusRequestEntityTooLarge, "M_TOO_LARGE")
	_, err = alice.UploadMedia(ctx, mautrix.ReqUploadMedia{Content: strings.NewReader("one more"), ContentLength: -1})
	wantHTTP(t, "a chunked upload past the media quota", err, http.StatusRequestEntityTooLarge, "M_TOO_LARGE")
	if u := n.media.Usage(); u.Local != 3<<20 || u.Blobs != 3 {
		t.Fatalf("usage after refused uploads %+v", u)
	}
}

type neverEnding byte

func (b neverEnding) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(b)
	}
	return len(p), nil
}

// TestMediaTypesAreServedSafely: what a browser would run (HTML, SVG) is
// only ever an attachment; file names are cleaned and encoded.
func TestMediaTypesAreServedSafely(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n := newTestNode(t, testOpts{})
	alice := n.register(ctx, "alice")
	for _, tc := range []struct {
		name, ct, file, wantDisposition string
	}{
		{"HTML is an attachment", "text/html; charset=utf-8", "page.html", `attachment; filename="page.html"`},
		{"SVG is an attachment", "image/SVG+xml", "logo.svg", `attachment; filename="logo.svg"`},
		{"XHTML is an attachment", "application/xhtml+xml", "", "attachment"},
		{"a malformed type is an attachment", "text/", "x", `attachment; filename="x"`},
		{"plain text is inline", "text/plain", "notes.txt", `inline; filename="notes.txt"`},
		{"a name with quotes, CR/LF and non-ASCII is cleaned and encoded", "text/plain", "a\"b\r\nc é.txt",
			`inline; filename="a_bc _.txt"; filename*=utf-8''a%22bc%20%C3%A9.txt`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up, err := alice.UploadBytesWithName(ctx, []byte("<html><script>alert(1)</script></html>"), tc.ct, tc.file)
			if err != nil {
				t.Fatal(err)
			}
			r, _ := mediaReq(t, n, "GET", downloadPath(up.ContentURI), alice.AccessToken, nil, nil)
			if r.StatusCode != 200 {
				t.Fatalf("download: %d", r.StatusCode)
			}
			if d := r.Header.Get("Content-Disposition"); d != tc.wantDisposition {
				t.Errorf("Content-Disposition %q, want %q", d, tc.wantDisposition)
			}
			if !strings.HasPrefix(r.Header.Get("Content-Security-Policy"), "sandbox") || r.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("no sandbox or nosniff: %v", r.Header)
			}
		})
	}
}

// TestMediaAsyncUpload: a created media ID waits for its bytes (a
// download waits, up to its timeout), takes them once, from its creator
// only; a user holds at most ten unused; a lapsed one is gone.
func TestMediaAsyncUpload(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n := newTestNode(t, testOpts{regToken: "media"})
	alice, bob := n.register(ctx, "alice"), n.register(ctx, "bob")
	created, err := alice.CreateMXC(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if left := time.Until(created.UnusedExpiresAt.Time); left < 23*time.Hour || left > 25*time.Hour {
		t.Fatalf("unused_expires_at %v: want about 24 h from now", created.UnusedExpiresAt.Time)
	}
	mxc := created.ContentURI
	r, body := mediaReq(t, n, "GET", downloadPath(mxc)+"?timeout_ms=300", alice.AccessToken, nil, nil)
	wantRawError(t, "download before the upload", r, body, http.StatusGatewayTimeout, "M_NOT_YET_UPLOADED")

	// A download waiting for the bytes gets them once they come.
	type result struct {
		data []byte
		err  error
	}
	waiting := make(chan result, 1)
	go func() {
		resp, err := alice.DownloadWithParams(ctx, mxc, mautrix.DownloadExtra{Query: map[string]string{"timeout_ms": "30000"}})
		if err != nil {
			waiting <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		waiting <- result{b, err}
	}()
	_, err = bob.UploadMedia(ctx, mautrix.ReqUploadMedia{MXC: mxc, ContentBytes: []byte("bob's"), ContentType: "text/plain"})
	wantHTTP(t, "bob uploading to alice's media ID", err, http.StatusForbidden, "M_FORBIDDEN")
	if _, err := alice.UploadMedia(ctx, mautrix.ReqUploadMedia{MXC: mxc, ContentBytes: []byte("hello"), ContentType: "text/plain"}); err != nil {
		t.Fatal(err)
	}
	if res := <-waiting; res.err != nil || string(res.data) != "hello" {
		t.Fatalf("the waiting download: %q, %v", res.data, res.err)
	}
	_, err = alice.UploadMedia(ctx, mautrix.ReqUploadMedia{MXC: mxc, ContentBytes: []byte("again"), ContentType: "text/plain"})
	wantHTTP(t, "a second upload to the same media ID", err, http.StatusConflict, "M_CANNOT_OVERWRITE_MEDIA")
	other := rooms.ServerName(make(ed25519.PublicKey, ed25519.PublicKeySize))
	_, err = alice.UploadMedia(ctx, mautrix.ReqUploadMedia{MXC: id.ContentURI{Homeserver: other, FileID: mxc.FileID}, ContentBytes: []byte("x")})
	wantHTTP(t, "an upload to another server's media ID", err, http.StatusForbidden, "M_FORBIDDEN")
	_, err = alice.UploadMedia(ctx, mautrix.ReqUploadMedia{MXC: id.ContentURI{Homeserver: n.ServerName(), FileID: "neverCreated"}, ContentBytes: []byte("x")})
	wantHTTP(t, "an upload to a media ID never created", err, http.StatusNotFound, "M_NOT_FOUND")

	// UploadAsync: create and upload in the background.
	done := make(chan struct{})
	async, err := alice.UploadAsync(ctx, mautrix.ReqUploadMedia{ContentBytes: []byte("later"), ContentType: "text/plain", DoneCallback: func() { close(done) }})
	if err != nil {
		t.Fatal(err)
	}
	<-done
	if got, err := alice.DownloadBytes(ctx, async.ContentURI); err != nil || string(got) != "later" {
		t.Fatalf("download of an async upload: %q, %v", got, err)
	}

	// Ten unused media IDs at most.
	for i := range 10 {
		if _, err := alice.CreateMXC(ctx); err != nil {
			t.Fatalf("create %d: %v", i, err)
		}
	}
	_, err = alice.CreateMXC(ctx)
	wantHTTP(t, "an eleventh unused media ID", err, http.StatusTooManyRequests, "M_LIMIT_EXCEEDED")
	if _, err := bob.CreateMXC(ctx); err != nil {
		t.Fatalf("bob's first create while alice holds ten: %v", err)
	}

	// A lapsed media ID is gone.
	const lapsedID = "lapsedMediaID"
	now := time.Now().UnixMilli()
	if err := n.store.Update(func(tx *store.Txn) error {
		return tx.PutPendingMedia(n.ServerName(), lapsedID, bob.UserID.String(), now-2, now-1, now-2, 10)
	}); err != nil {
		t.Fatal(err)
	}
	lapsed := id.ContentURI{Homeserver: n.ServerName(), FileID: lapsedID}
	_, err = bob.UploadMedia(ctx, mautrix.ReqUploadMedia{MXC: lapsed, ContentBytes: []byte("x")})
	wantHTTP(t, "an upload to a lapsed media ID", err, http.StatusNotFound, "M_NOT_FOUND")
	_, err = bob.Download(ctx, lapsed)
	wantHTTP(t, "a download of a lapsed media ID", err, http.StatusNotFound, "M_NOT_FOUND")
}

// TestMediaBadInput: malformed media IDs, unknown servers and bad
// thumbnail parameters get clear errors, never a file outside the store.
func TestMediaBadInput(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n := newTestNode(t, testOpts{})
	alice := n.register(ctx, "alice")
	up, err := alice.UploadBytesWithName(ctx, []byte("just text"), "text/plain", "a.txt")
	if err != nil {
		t.Fatal(err)
	}
	srv := n.ServerName()
	other := rooms.ServerName(make(ed25519.PublicKey, ed25519.PublicKeySize))
	for _, tc := range []struct {
		name, path string
		status     int
		code       string
	}{
		{"a media ID that escapes its directory", "/download/" + srv + "/..%2F..%2Fclaim-code", 400, "M_INVALID_PARAM"},
		{"a media ID with a dot", "/download/" + srv + "/a.b", 400, "M_INVALID_PARAM"},
		{"a media ID of 256 characters", "/download/" + srv + "/" + strings.Repeat("a", 256), 400, "M_INVALID_PARAM"},
		{"a media ID unknown here", "/download/" + srv + "/unknownMediaID", 404, "M_NOT_FOUND"},
		{"a server name that is no parley node", "/download/example.org/" + up.ContentURI.FileID, 404, "M_NOT_FOUND"},
		{"another node's media, with no way to fetch it", "/download/" + other + "/abc", 404, "M_NOT_FOUND"},
		{"a negative timeout", "/download/" + srv + "/" + up.ContentURI.FileID + "?timeout_ms=-1", 400, "M_INVALID_PARAM"},
		{"a thumbnail without a width", "/thumbnail/" + srv + "/" + up.ContentURI.FileID + "?height=32", 400, "M_MISSING_PARAM"},
		{"a thumbnail of negative width", "/thumbnail/" + srv + "/" + up.ContentURI.FileID + "?width=-3&height=32", 400, "M_UNKNOWN"},
		{"a thumbnail by an unknown method", "/thumbnail/" + srv + "/" + up.ContentURI.FileID + "?width=32&height=32&method=stretch", 400, "M_UNKNOWN"},
		{"a thumbnail of text", "/thumbnail/" + srv + "/" + up.ContentURI.FileID + "?width=32&height=32", 400, "M_UNKNOWN"},
		{"a thumbnail of an unknown media ID", "/thumbnail/" + srv + "/unknownMediaID?width=32&height=32", 404, "M_NOT_FOUND"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, body := mediaReq(t, n, "GET", "/_matrix/client/v1/media"+tc.path, alice.AccessToken, nil, nil)
			wantRawError(t, tc.name, r, body, tc.status, tc.code)
		})
	}
	r, body := mediaReq(t, n, "PUT", "/_matrix/media/v3/upload/"+srv+"/..%2Fx", alice.AccessToken, strings.NewReader("x"), nil)
	wantRawError(t, "an async upload to a malformed media ID", r, body, 400, "M_INVALID_PARAM")
}

// TestMediaUploadsInProgressAreBounded: a user has at most four uploads
// in progress; a fifth is told to come back, and can once one ends.
func TestMediaUploadsInProgressAreBounded(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n := newTestNode(t, testOpts{})
	alice := n.register(ctx, "alice")
	var writers []*io.PipeWriter
	results := make(chan int, 4)
	for range 4 {
		pr, pw := io.Pipe()
		writers = append(writers, pw)
		req, err := http.NewRequestWithContext(ctx, "POST", "http://"+n.HTTPAddr()+"/_matrix/media/v3/upload", pr)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+alice.AccessToken)
		// Its own connection each, so that none waits for another's.
		c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		go func() {
			resp, err := c.Do(req)
			if err != nil {
				results <- 0
				return
			}
			resp.Body.Close()
			results <- resp.StatusCode
		}()
		go pw.Write([]byte("slow "))
	}
	testkit.WaitFor(t, 20*time.Second, "four uploads in progress", func() bool { return n.api.UploadsInProgress() == 4 })
	_, err := alice.UploadBytes(ctx, []byte("quick"), "text/plain")
	wantHTTP(t, "a fifth upload", err, http.StatusTooManyRequests, "M_LIMIT_EXCEEDED")
	for _, pw := range writers {
		pw.Close()
	}
	for range 4 {
		if status := <-results; status != http.StatusOK {
			t.Fatalf("a slow upload: status %d", status)
		}
	}
	if _, err := alice.UploadBytes(ctx, []byte("quick"), "text/plain"); err != nil {
		t.Fatalf("an upload once the others ended: %v", err)
	}
}

// TestMediaUploadsStopBeforeTheDiskFills: an upload that would take the
// disk below the space the node keeps free is refused (507), and the
// node's other writes go on.
func TestMediaUploadsStopBeforeTheDiskFills(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var free atomic.Uint64
	free.Store(1 << 30)
	n := newTestNode(t, testOpts{freeSpace: func(string) (uint64, error) { return free.Load(), nil }})
	alice := n.register(ctx, "alice")
	if _, err := alice.UploadBytes(ctx, make([]byte, 2<<20), "application/octet-stream"); err != nil {
		t.Fatal(err)
	}
	free.Store(65 << 20) // the node keeps 64 MiB free
	_, err := alice.UploadBytes(ctx, make([]byte, 2<<20), "application/octet-stream")
	wantHTTP(t, "an upload the disk cannot take", err, http.StatusInsufficientStorage, "M_RESOURCE_LIMIT_EXCEEDED")
	if u := n.media.Usage(); u.Blobs != 1 {
		t.Fatalf("a refused upload was kept: %+v", u)
	}
	privateRoom(t, ctx, alice) // events are still written
}

// fakeFetcher stands for the node's peers when media of another server
// is asked for: it "fetches" files it was given, signed by that server,
// through the media store's partial downloads, as the real fetcher does.
type fakeFetcher struct {
	node    func() *testNode
	key     ed25519.PrivateKey
	mu      sync.Mutex
	files   map[string][]byte // media ID -> bytes
	fetches map[string]int
	block   bool // wait for the request to end instead
}

func newFakeFetcher() *fakeFetcher {
	_, key, _ := ed25519.GenerateKey(nil)
	return &fakeFetcher{key: key, files: map[string][]byte{}, fetches: map[string]int{}}
}

func (f *fakeFetcher) server() string { return rooms.ServerName(f.key.Public().(ed25519.PublicKey)) }

func (f *fakeFetcher) mxc(mediaID string) id.ContentURI {
	return id.ContentURI{Homeserver: f.server(), FileID: mediaID}
}

func (f *fakeFetcher) Fetch(ctx context.Context, user, server, mediaID string) (string, *media.Meta, error) {
	f.mu.Lock()
	data, ok := f.files[mediaID]
	block := f.block
	f.mu.Unlock()
	if block {
		<-ctx.Done()
		return "", nil, ctx.Err()
	}
	if !ok || server != f.server() {
		return "", nil, errs.NotFoundf("no such media")
	}
	var chunks [][]byte
	for i := 0; i < len(data); i += media.ChunkSize {
		sum := sha256.Sum256(data[i:min(len(data), i+media.ChunkSize)])
		chunks = append(chunks, sum[:])
	}
	whole := sha256.Sum256(data)
	m := &media.Meta{Server: server, MediaID: mediaID, Size: int64(len(data)), SHA256: hex.EncodeToString(whole[:]), Chunks: chunks, Type: "image/png", Name: "remote.png"}
	raw, err := m.Sign(f.key)
	if err != nil {
		return "", nil, err
	}
	if m, err = media.Verify(raw, server, mediaID); err != nil {
		return "", nil, err
	}
	ms := f.node().media
	if !ms.Has(m.SHA256) {
		f.mu.Lock()
		f.fetches[mediaID]++
		f.mu.Unlock()
		p, err := ms.OpenPartial(m)
		if err != nil {
			return "", nil, err
		}
		for _, i := range p.Missing() {
			if err := p.WriteChunk(i, data[i*media.ChunkSize:min(len(data), (i+1)*media.ChunkSize)]); err != nil {
				p.Close()
				return "", nil, err
			}
		}
		if err := p.Complete(); err != nil {
			return "", nil, err
		}
	}
	return m.SHA256, m, nil
}

func (f *fakeFetcher) count(mediaID string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fetches[mediaID]
}

// TestRemoteMediaAndEviction: media of another server comes through the
// fetcher and is served as local media is; when copies of others' media
// fill the quota, the least recently used goes first, never an upload of
// this node's; an evicted copy is fetched again when asked for.
func TestRemoteMediaAndEviction(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	f := newFakeFetcher()
	n := newTestNode(t, testOpts{mediaQuota: 4 << 20, mediaFetcher: f})
	f.node = func() *testNode { return n }
	alice := n.register(ctx, "alice")
	own := bytes.Repeat([]byte("own "), 1<<18) // 1 MiB
	up, err := alice.UploadBytes(ctx, own, "application/octet-stream")
	if err != nil {
		t.Fatal(err)
	}
	for i, name := range []string{"r1", "r2", "r3"} {
		f.files[name] = bytes.Repeat([]byte{byte('a' + i)}, 1<<20)
	}
	get := func(name string) {
		t.Helper()
		resp, err := alice.Download(ctx, f.mxc(name))
		if err != nil {
			t.Fatalf("download %s: %v", name, err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !bytes.Equal(got, f.files[name]) {
			t.Fatalf("download %s: wrong bytes", name)
		}
		if ct, d := resp.Header.Get("Content-Type"), resp.Header.Get("Content-Disposition"); ct != "image/png" || d != `inline; filename="remote.png"` {
			t.Fatalf("download %s: %s, %s", name, ct, d)
		}
	}
	get("r1")
	get("r2")
	get("r1") // r2 is now the least recently used
	if u := n.media.Usage(); u.Total != 3<<20 || u.Evicted != 0 {
		t.Fatalf("usage before the quota fills %+v", u)
	}
	get("r3") // 4 MiB of 4 MiB: down to 80 %, r2 goes
	if u := n.media.Usage(); u.Evicted != 1 || u.Total != 3<<20 || u.Local != 1<<20 {
		t.Fatalf("usage after eviction %+v", u)
	}
	if got, err := alice.DownloadBytes(ctx, up.ContentURI); err != nil || !bytes.Equal(got, own) {
		t.Fatalf("the local upload after eviction: %v", err)
	}
	get("r1")
	if f.count("r1") != 1 || f.count("r2") != 1 {
		t.Fatalf("fetches r1 %d, r2 %d: r1 should have stayed", f.count("r1"), f.count("r2"))
	}
	get("r2")
	if f.count("r2") != 2 {
		t.Fatalf("the evicted r2 was fetched %d times, want 2", f.count("r2"))
	}

	_, err = alice.Download(ctx, f.mxc("unknown"))
	wantHTTP(t, "remote media no member has", err, http.StatusNotFound, "M_NOT_FOUND")
	f.mu.Lock()
	f.block = true
	f.mu.Unlock()
	r, body := mediaReq(t, n, "GET", downloadPath(f.mxc("r3"))+"?timeout_ms=200", alice.AccessToken, nil, nil)
	wantRawError(t, "remote media not fetched in time", r, body, http.StatusGatewayTimeout, "M_NOT_YET_UPLOADED")
}
