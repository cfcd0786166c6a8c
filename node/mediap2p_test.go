package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/parley-p2p/parley/internal/testkit"
	"github.com/parley-p2p/parley/node/peers"
	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/p2p"
)

// Media between nodes, through real nodes and mautrix-go: fetched from
// the members of a room that references it, sealed under the room's
// secret, refused to anyone else, verified chunk by chunk, resumed, and
// dropped from caches when its event is redacted.

// randomBytes returns n random bytes (so no two test files share a blob).
func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// sendMedia uploads data as the user and sends it to the room as an
// m.image (or m.file for types that are not images), returning the mxc
// and the event.
func sendMedia(t testing.TB, ctx context.Context, c *mautrix.Client, room id.RoomID, data []byte, contentType string) (id.ContentURI, id.EventID) {
	t.Helper()
	up, err := c.UploadBytesWithName(ctx, data, contentType, "file.bin")
	if err != nil {
		t.Fatalf("upload: %v", err)
	}
	msgtype := event.MsgFile
	if strings.HasPrefix(contentType, "image/") {
		msgtype = event.MsgImage
	}
	resp, err := c.SendMessageEvent(ctx, room, event.EventMessage, &event.MessageEventContent{
		MsgType: msgtype,
		Body:    "file.bin",
		URL:     up.ContentURI.CUString(),
		Info:    &event.FileInfo{MimeType: contentType, Size: len(data)},
	})
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	return up.ContentURI, resp.EventID
}

// download fetches an mxc through the client's node: the bytes, or the
// HTTP status of the refusal.
func download(ctx context.Context, c *mautrix.Client, mxc id.ContentURI) ([]byte, int, error) {
	resp, err := c.Download(ctx, mxc)
	if err != nil {
		var he mautrix.HTTPError
		if errors.As(err, &he) && he.Response != nil {
			return nil, he.Response.StatusCode, err
		}
		return nil, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return b, resp.StatusCode, err
}

// seesEvent waits until the client's node shows it the message, in
// clear (its key may come after it).
func seesEvent(t testing.TB, ctx context.Context, c *mautrix.Client, room id.RoomID, ev id.EventID) {
	t.Helper()
	testkit.WaitFor(t, 30*time.Second, "the message to reach "+c.UserID.String(), func() bool {
		e, err := c.GetEvent(ctx, room, ev)
		return err == nil && e.Type == event.EventMessage
	})
}

// knowsMedia waits until the node has stored a reference of the mxc (a
// client may be shown the event a moment before).
func (n *Node) knowsMedia(t testing.TB, mxc id.ContentURI) {
	t.Helper()
	testkit.WaitFor(t, 30*time.Second, "the node to record the media reference", func() bool { return n.mediaRefs(mxc) > 0 })
}

// holdsMedia reports whether the node holds the complete blob of an mxc.
func (n *Node) holdsMedia(mxc id.ContentURI) bool {
	var rec *store.MediaRecord
	err := n.store.View(func(t *store.Txn) error {
		var err error
		rec, err = t.Media(mxc.Homeserver, mxc.FileID)
		return err
	})
	return err == nil && rec.SHA256 != "" && n.media.Has(rec.SHA256)
}

// mediaRefs counts the node's references of an mxc.
func (n *Node) mediaRefs(mxc id.ContentURI) int {
	count := 0
	n.store.View(func(t *store.Txn) error {
		return t.MediaRefs(store.MediaID{Server: mxc.Homeserver, ID: mxc.FileID}, func(string, string) (bool, error) {
			count++
			return true, nil
		})
	})
	return count
}

// chunkCounter wraps a node's handler to count (and let a test break or
// corrupt) the media chunks it serves.
type chunkCounter struct {
	served  atomic.Int64
	failing atomic.Bool
	// failAfter, if not 0, fails every chunk after that many were served
	// (until failing is cleared).
	failAfter atomic.Int64
	tamper    atomic.Bool
	tampered  atomic.Int64
}

func (cc *chunkCounter) wrap(h p2p.Handler) p2p.Handler {
	return func(ctx context.Context, from peer.ID, method string, body []byte) ([]byte, error) {
		if method != peers.MethodMediaChunk {
			return h(ctx, from, method, body)
		}
		if cc.failing.Load() {
			return nil, remoteErr("M_UNKNOWN", "broken")
		}
		out, err := h(ctx, from, method, body)
		if err != nil {
			return out, err
		}
		if n, fa := cc.served.Add(1), cc.failAfter.Load(); fa > 0 && n >= fa {
			cc.failing.Store(true)
		}
		if cc.tamper.Load() && len(out) > 0 {
			out = bytes.Clone(out)
			out[len(out)/2] ^= 0xff
			cc.tampered.Add(1)
		}
		return out, nil
	}
}

// TestMediaSentOnOneNodeIsDownloadedOnAnother: alice's picture, sent in a
// room, is read by bob on his node, byte for byte, fetched from alice's
// node under the room's secret.
func TestMediaSentOnOneNodeIsDownloadedOnAnother(t *testing.T) {
	ctx := context.Background()
	_, b, alice, bob, room := twoMembers(t, ctx, testOpts{}, testOpts{noPrefetch: true})
	data := randomBytes(t, 600<<10) // three chunks
	mxc, ev := sendMedia(t, ctx, alice, room, data, "image/png")
	seesEvent(t, ctx, bob, room, ev)
	b.knowsMedia(t, mxc)
	if b.holdsMedia(mxc) {
		t.Fatal("b holds the picture before anyone asked: prefetch was off")
	}
	got, status, err := download(ctx, bob, mxc)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("bob's download: %d bytes, status %d, %v; want the %d bytes alice sent", len(got), status, err, len(data))
	}
	if !b.holdsMedia(mxc) {
		t.Error("b does not keep the fetched copy")
	}
	if n := b.peers.MediaChunkRequests(); n != 3 {
		t.Errorf("b asked for %d chunks of a 3-chunk file", n)
	}
}

// TestMediaPrefetchedIsServedWhileItsSenderIsOffline: bob's node fetches
// alice's small picture as soon as it sees it; with alice's node stopped,
// carol's node (which did not prefetch) gets it from bob's.
func TestMediaPrefetchedIsServedWhileItsSenderIsOffline(t *testing.T) {
	ctx := context.Background()
	ns, cs, room := threeNodeRoom(t, ctx, testOpts{}, testOpts{}, testOpts{noPrefetch: true, requestTimeout: 5 * time.Second})
	a, b, c := ns[0], ns[1], ns[2]
	alice, carol := cs[0], cs[2]
	data := randomBytes(t, 300<<10)
	mxc, ev := sendMedia(t, ctx, alice, room, data, "image/jpeg")
	testkit.WaitFor(t, 30*time.Second, "b to prefetch the picture", func() bool { return b.holdsMedia(mxc) })
	seesEvent(t, ctx, carol, room, ev)
	c.knowsMedia(t, mxc)
	if c.holdsMedia(mxc) {
		t.Fatal("c prefetched with prefetch off")
	}
	// A file over the prefetch bounds (1 MiB for what is not an image)
	// stays with alice's node only.
	big, bigEv := sendMedia(t, ctx, alice, room, randomBytes(t, 2<<20), "application/octet-stream")
	seesEvent(t, ctx, carol, room, bigEv)
	c.knowsMedia(t, big)
	a.Close()
	got, status, err := download(ctx, carol, mxc)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("carol's download with alice's node stopped: %d bytes, status %d, %v", len(got), status, err)
	}
	resp, err := carol.DownloadWithParams(ctx, big, mautrix.DownloadExtra{Query: map[string]string{"timeout_ms": "3000"}})
	if err == nil {
		resp.Body.Close()
		t.Fatal("carol got the big file with its only holder stopped")
	}
	var he mautrix.HTTPError
	if !errors.As(err, &he) || he.Response == nil || (he.Response.StatusCode != http.StatusNotFound && he.Response.StatusCode != http.StatusGatewayTimeout) {
		t.Errorf("carol's download of the big file: %v; want 404 or 504", err)
	}
}

// TestMediaIsRefusedToThoseOutsideItsRoom: a user sharing no room with
// the picture gets 404; a node in another room of alice's cannot fetch it
// under that room's secret; bob's node, once bob is kicked, is refused
// though it still holds the room's old secret.
func TestMediaIsRefusedToThoseOutsideItsRoom(t *testing.T) {
	ctx := context.Background()
	a, b, alice, bob, room := twoMembers(t, ctx, testOpts{}, testOpts{noPrefetch: true})
	d := newTestNode(t, testOpts{bootstrap: []*testNode{a}})
	dave := d.register(ctx, "dave")
	data := randomBytes(t, 10<<10)
	mxc, ev := sendMedia(t, ctx, alice, room, data, "image/png")
	seesEvent(t, ctx, bob, room, ev)

	// Dave shares no room with the picture.
	if _, status, err := download(ctx, dave, mxc); err == nil || status != http.StatusNotFound {
		t.Errorf("dave (no shared room): status %d, %v; want 404", status, err)
	}

	// Dave joins another room of alice's: d holds that room's secret,
	// but the picture is not referenced there.
	other := privateRoom(t, ctx, alice)
	joinThrough(t, ctx, other, alice, dave)
	if _, status, err := download(ctx, dave, mxc); err == nil || status != http.StatusNotFound {
		t.Errorf("dave (in another room of alice's): status %d, %v; want 404", status, err)
	}
	var resp peers.MediaMetaResp
	err := d.peers.Request(ctx, a.host.ID(), peers.MethodMediaMeta, peers.MediaReq{RoomID: other.String(), Server: mxc.Homeserver, MediaID: mxc.FileID}, &resp)
	var re *p2p.RemoteError
	if !errors.As(err, &re) || re.Code != "M_NOT_FOUND" {
		t.Errorf("d asking a for the picture under another room's secret: %v; want M_NOT_FOUND", err)
	}
	err = d.peers.Request(ctx, a.host.ID(), peers.MethodMediaMeta, peers.MediaReq{RoomID: room.String(), Server: mxc.Homeserver, MediaID: mxc.FileID}, &resp)
	if err == nil {
		t.Error("d fetched the picture's metadata for a room it is not in")
	}

	// Bob's node may ask while bob is in the room...
	req := peers.MediaReq{RoomID: room.String(), Server: mxc.Homeserver, MediaID: mxc.FileID}
	if err := b.peers.Request(ctx, a.host.ID(), peers.MethodMediaMeta, req, &resp); err != nil {
		t.Fatalf("b asking as a member: %v", err)
	}
	// Bad requests are refused, and change nothing.
	for _, bad := range []peers.MediaReq{
		{RoomID: room.String(), Server: mxc.Homeserver, MediaID: mxc.FileID, Index: -1},
		{RoomID: room.String(), Server: mxc.Homeserver, MediaID: mxc.FileID, Index: 1 << 30},
		{RoomID: room.String(), Server: mxc.Homeserver, MediaID: "../../" + mxc.FileID},
		{RoomID: room.String(), Server: "not-a-server", MediaID: mxc.FileID},
	} {
		var chunk json.RawMessage
		err := b.peers.Request(ctx, a.host.ID(), peers.MethodMediaChunk, bad, &chunk)
		if !errors.As(err, &re) || re.Code != "M_NOT_FOUND" {
			t.Errorf("chunk request %+v: %v; want M_NOT_FOUND", bad, err)
		}
	}
	// ...and not once he is kicked.
	if _, err := alice.KickUser(ctx, room, &mautrix.ReqKickUser{UserID: bob.UserID}); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 20*time.Second, "bob's kick on a", func() bool {
		return a.membership(a.getRoom(room.String()), bob.UserID.String()) == "leave"
	})
	err = b.peers.Request(ctx, a.host.ID(), peers.MethodMediaMeta, req, &resp)
	if err == nil {
		t.Error("b, kicked, still gets the picture's metadata")
	}
	err = b.peers.Request(ctx, a.host.ID(), peers.MethodMediaChunk, req, &resp)
	if err == nil {
		t.Error("b, kicked, still gets a chunk")
	}
}

// TestMediaTamperedChunkIsCaughtAndFetchedElsewhere: bob's node corrupts
// every chunk it serves; carol's download notices, bans it for the
// transfer and completes from alice's node, byte for byte.
func TestMediaTamperedChunkIsCaughtAndFetchedElsewhere(t *testing.T) {
	ctx := context.Background()
	liar := &chunkCounter{}
	ns, cs, room := threeNodeRoom(t, ctx, testOpts{}, testOpts{wrap: liar.wrap}, testOpts{noPrefetch: true})
	b, c := ns[1], ns[2]
	alice, carol := cs[0], cs[2]
	data := randomBytes(t, 1<<20) // four chunks
	mxc, ev := sendMedia(t, ctx, alice, room, data, "image/png")
	testkit.WaitFor(t, 30*time.Second, "b to prefetch the picture", func() bool { return b.holdsMedia(mxc) })
	seesEvent(t, ctx, carol, room, ev)
	c.knowsMedia(t, mxc)
	liar.tamper.Store(true)
	got, status, err := download(ctx, carol, mxc)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("carol's download: %d bytes, status %d, %v", len(got), status, err)
	}
	if liar.tampered.Load() == 0 {
		t.Fatal("b was never asked for a chunk: the test proves nothing")
	}
	if !c.holdsMedia(mxc) {
		t.Error("c does not keep the copy")
	}
}

// TestMediaTransferBrokenMidwayResumes: alice's node fails every chunk
// after the tenth; bob's download fails, and once it serves again the
// next download fetches only what was missing.
func TestMediaTransferBrokenMidwayResumes(t *testing.T) {
	ctx := context.Background()
	cc := &chunkCounter{}
	cc.failAfter.Store(10)
	_, b, alice, bob, room := twoMembers(t, ctx, testOpts{wrap: cc.wrap}, testOpts{noPrefetch: true})
	data := randomBytes(t, 8<<20) // 32 chunks
	mxc, ev := sendMedia(t, ctx, alice, room, data, "application/octet-stream")
	seesEvent(t, ctx, bob, room, ev)
	b.knowsMedia(t, mxc)
	if _, status, err := download(ctx, bob, mxc); err == nil {
		t.Fatalf("the broken transfer succeeded (status %d)", status)
	} else {
		t.Logf("the broken transfer: status %d, %v", status, err)
	}
	before := b.peers.MediaChunkRequests()
	if before < 10 || before >= 32 {
		t.Fatalf("%d chunk requests before the break, want 10 to 31", before)
	}
	cc.failAfter.Store(0)
	cc.failing.Store(false)
	got, status, err := download(ctx, bob, mxc)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("the resumed download: %d bytes, status %d, %v", len(got), status, err)
	}
	if n := b.peers.MediaChunkRequests(); n >= 32+8 {
		t.Errorf("%d chunk requests in all for 32 chunks: the transfer started over", n)
	}
	if s := cc.served.Load(); s > 32+2 {
		t.Errorf("a served %d chunks of a 32-chunk file", s)
	}
}

// TestMediaRedactedIsDroppedFromOtherNodes: bob's node fetched alice's
// picture; once alice redacts its event, the copy is deleted from bob's
// node and bob's download is 404. Alice's original stays.
func TestMediaRedactedIsDroppedFromOtherNodes(t *testing.T) {
	ctx := context.Background()
	a, b, alice, bob, room := twoMembers(t, ctx, testOpts{}, testOpts{})
	data := randomBytes(t, 100<<10)
	mxc, ev := sendMedia(t, ctx, alice, room, data, "image/png")
	seesEvent(t, ctx, bob, room, ev)
	b.knowsMedia(t, mxc)
	if got, _, err := download(ctx, bob, mxc); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("bob's download: %v", err)
	}
	if _, err := alice.RedactEvent(ctx, room, ev); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 30*time.Second, "b to drop the redacted picture", func() bool { return !b.holdsMedia(mxc) })
	if _, status, err := download(ctx, bob, mxc); err == nil || status != http.StatusNotFound {
		t.Errorf("bob's download after the redaction: status %d, %v; want 404", status, err)
	}
	if !a.holdsMedia(mxc) {
		t.Error("alice's node lost its original")
	}
	if got, _, err := download(ctx, alice, mxc); err != nil || !bytes.Equal(got, data) {
		t.Errorf("alice, the uploader, cannot read her own upload: %v", err)
	}
}

// TestMediaTransferResumesAfterARestart: bob's node stops in the middle
// of a transfer (alice's node broke it after ten chunks); started again
// on the same data, it fetches only the chunks its partial file lacks.
func TestMediaTransferResumesAfterARestart(t *testing.T) {
	ctx := context.Background()
	cc := &chunkCounter{}
	cc.failAfter.Store(10)
	bdir := t.TempDir()
	a, b, alice, bob, room := twoMembers(t, ctx, testOpts{wrap: cc.wrap}, testOpts{dir: bdir, noPrefetch: true})
	data := randomBytes(t, 8<<20) // 32 chunks
	mxc, ev := sendMedia(t, ctx, alice, room, data, "application/octet-stream")
	seesEvent(t, ctx, bob, room, ev)
	b.knowsMedia(t, mxc)
	if _, status, err := download(ctx, bob, mxc); err == nil {
		t.Fatalf("the broken transfer succeeded (status %d)", status)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	cc.failAfter.Store(0)
	cc.failing.Store(false)
	b2 := newTestNode(t, testOpts{dir: bdir, noPrefetch: true, bootstrap: []*testNode{a}})
	bob2 := b2.client()
	bob2.SetCredentials(bob.UserID, bob.AccessToken)
	var got []byte
	testkit.WaitFor(t, 30*time.Second, "bob's download after the restart", func() bool {
		var err error
		got, _, err = download(ctx, bob2, mxc)
		return err == nil
	})
	if !bytes.Equal(got, data) {
		t.Fatalf("the resumed download: %d bytes, want %d", len(got), len(data))
	}
	if n := b2.peers.MediaChunkRequests(); n > 32-8 {
		t.Errorf("%d chunk requests after the restart for a file of 32 chunks of which at least 10 were fetched before", n)
	}
}

// TestMediaEncryptedByItsClientIsServedToTheRoom: an attachment whose
// event this node cannot read (the client encrypted it) has no reference
// in clear; alice's node serves it to bob's, a member of a room alice is
// in, as ciphertext (application/octet-stream), and nothing else
// unreferenced.
func TestMediaEncryptedByItsClientIsServedToTheRoom(t *testing.T) {
	ctx := context.Background()
	_, b, alice, bob, _ := twoMembers(t, ctx, testOpts{}, testOpts{noPrefetch: true})
	cipher := randomBytes(t, 50<<10)
	up, err := alice.UploadBytesWithName(ctx, cipher, "application/octet-stream", "")
	if err != nil {
		t.Fatal(err)
	}
	got, status, err := download(ctx, bob, up.ContentURI)
	if err != nil || !bytes.Equal(got, cipher) {
		t.Fatalf("bob's download of an unreferenced ciphertext: %d bytes, status %d, %v", len(got), status, err)
	}
	if b.mediaRefs(up.ContentURI) != 0 {
		t.Error("a reference was recorded for media no event names")
	}
	pic, err := alice.UploadBytesWithName(ctx, randomBytes(t, 1000), "image/png", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, status, err := download(ctx, bob, pic.ContentURI); err == nil || status != http.StatusNotFound {
		t.Errorf("bob's download of an unreferenced picture: status %d, %v; want 404", status, err)
	}
}

// TestMediaDownloadUnderWayIsServedAlready: while bob's node is still
// fetching a file (alice's node holds back its later chunks), carol's
// node learns which chunks bob's has and gets those from it, and not the
// others.
func TestMediaDownloadUnderWayIsServedAlready(t *testing.T) {
	ctx := context.Background()
	release := make(chan struct{})
	var bPeer atomic.Value
	holdBack := func(h p2p.Handler) p2p.Handler {
		return func(ctx context.Context, from peer.ID, method string, body []byte) ([]byte, error) {
			var req peers.MediaReq
			if method == peers.MethodMediaChunk && json.Unmarshal(body, &req) == nil && req.Index >= 10 && bPeer.Load() == from {
				select {
				case <-release:
				case <-ctx.Done():
					return nil, ctx.Err()
				}
			}
			return h(ctx, from, method, body)
		}
	}
	ns, cs, room := threeNodeRoom(t, ctx, testOpts{wrap: holdBack}, testOpts{noPrefetch: true}, testOpts{noPrefetch: true})
	b, c := ns[1], ns[2]
	alice, bob := cs[0], cs[1]
	bPeer.Store(b.host.ID())
	data := randomBytes(t, 8<<20) // 32 chunks
	mxc, ev := sendMedia(t, ctx, alice, room, data, "application/octet-stream")
	seesEvent(t, ctx, bob, room, ev)
	b.knowsMedia(t, mxc)
	c.knowsMedia(t, mxc)
	done := make(chan error, 1)
	go func() {
		got, _, err := download(ctx, bob, mxc)
		if err == nil && !bytes.Equal(got, data) {
			err = errors.New("bytes differ")
		}
		done <- err
	}()
	req := peers.MediaReq{RoomID: room.String(), Server: mxc.Homeserver, MediaID: mxc.FileID}
	var meta peers.MediaMetaResp
	testkit.WaitFor(t, 30*time.Second, "b to have the first chunks", func() bool {
		meta = peers.MediaMetaResp{}
		err := c.peers.Request(ctx, b.host.ID(), peers.MethodMediaMeta, req, &meta)
		bits, derr := base64.RawStdEncoding.DecodeString(meta.Have)
		return err == nil && derr == nil && len(bits) == 4 && bits[0]&1 != 0
	})
	var chunk json.RawMessage
	err := c.peers.Request(ctx, b.host.ID(), peers.MethodMediaChunk, req, &chunk)
	var re *p2p.RemoteError
	if errors.As(err, &re) {
		t.Errorf("chunk 0 of b's download under way: %v", err)
	}
	req.Index = 31
	err = c.peers.Request(ctx, b.host.ID(), peers.MethodMediaChunk, req, &chunk)
	if !errors.As(err, &re) || re.Code != "M_NOT_FOUND" {
		t.Errorf("chunk 31, which b has not got: %v; want M_NOT_FOUND", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("bob's download: %v", err)
	}
}

// TestMediaFollowsHistoryVisibility: in a room whose history is shown
// only from one's join, a picture sent before bob joined is refused to
// his node, and one sent after is not.
func TestMediaFollowsHistoryVisibility(t *testing.T) {
	ctx := context.Background()
	a, b, alice, bob := twoNodes(t, ctx, testOpts{}, testOpts{noPrefetch: true})
	room := privateRoom(t, ctx, alice)
	if _, err := alice.SendStateEvent(ctx, room, event.StateHistoryVisibility, "", map[string]string{"history_visibility": "joined"}); err != nil {
		t.Fatal(err)
	}
	before, _ := sendMedia(t, ctx, alice, room, randomBytes(t, 20<<10), "image/png")
	joinThrough(t, ctx, room, alice, bob)
	testkit.WaitFor(t, 20*time.Second, "bob's join to reach a", func() bool {
		return a.membership(a.getRoom(room.String()), bob.UserID.String()) == "join"
	})
	data := randomBytes(t, 20<<10)
	after, ev := sendMedia(t, ctx, alice, room, data, "image/png")
	seesEvent(t, ctx, bob, room, ev)
	b.knowsMedia(t, after)
	if got, status, err := download(ctx, bob, after); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("the picture sent after bob joined: status %d, %v", status, err)
	}
	if _, status, err := download(ctx, bob, before); err == nil || status != http.StatusNotFound {
		t.Errorf("the picture sent before bob joined: status %d, %v; want 404", status, err)
	}
	var meta peers.MediaMetaResp
	err := b.peers.Request(ctx, a.host.ID(), peers.MethodMediaMeta, peers.MediaReq{RoomID: room.String(), Server: before.Homeserver, MediaID: before.FileID}, &meta)
	var re *p2p.RemoteError
	if !errors.As(err, &re) || re.Code != "M_NOT_FOUND" {
		t.Errorf("b asking a for the picture from before its join: %v; want M_NOT_FOUND", err)
	}
}
