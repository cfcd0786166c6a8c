package media

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"regexp"
	"strings"

	"github.com/parley-p2p/parley/rooms"
)

// ChunkSize is the size of every chunk of a blob but the last: the unit a
// download fetches, verifies and resumes by.
const ChunkSize = 256 << 10

// MaxSize bounds the size any metadata may declare (4 GiB, 16384 chunk
// hashes, about 720 KB of metadata); a node's own maximum upload is lower
// and a fetcher should also refuse sizes over it.
const MaxSize = 4 << 30

// MaxMetaBytes bounds signed metadata as received from a peer.
const MaxMetaBytes = 1 << 20

// metaContext is prefixed to the canonical JSON before signing, so a
// media signature can never be mistaken for any other signature the node
// key makes.
const metaContext = "parley/media/v1"

// ErrBadMeta is wrapped by every error of Verify: the metadata is
// malformed, out of bounds, not for the asked mxc, or not signed by its
// server.
var ErrBadMeta = errors.New("media: bad metadata")

var mediaIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,255}$`)

// ValidMediaID reports whether id is a media ID this node accepts in a
// path or from a peer: 1 to 255 characters of [A-Za-z0-9_-] (so never a
// path separator or "..").
func ValidMediaID(id string) bool { return mediaIDPattern.MatchString(id) }

// ValidSHA reports whether sha is a lowercase hex SHA-256, the name of a
// blob.
func ValidSHA(sha string) bool {
	if len(sha) != 2*sha256.Size {
		return false
	}
	for i := 0; i < len(sha); i++ {
		c := sha[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// Meta is what the uploader's node signs about one mxc when its upload
// completes: which file it is (size, SHA-256, the SHA-256 of each
// ChunkSize chunk) and how to present it. Any node holding the file also
// holds this document and forwards it; a fetcher checks it with Verify,
// then each chunk against Chunks.
type Meta struct {
	V       int      `json:"v"`        // 1
	Server  string   `json:"server"`   // the uploader's server name
	MediaID string   `json:"media_id"` // the mxc's media ID
	Size    int64    `json:"size"`     // bytes
	SHA256  string   `json:"sha256"`   // lowercase hex of the whole file: the blob's name
	Chunk   int      `json:"chunk"`    // ChunkSize
	Chunks  [][]byte `json:"chunks"`   // SHA-256 of each chunk (base64 in JSON)
	Type    string   `json:"type"`     // content type as uploaded
	Name    string   `json:"name,omitempty"`
	TS      int64    `json:"ts"` // upload time, ms
}

// NumChunks is the number of chunks of a file of size bytes.
func NumChunks(size int64) int { return int((size + ChunkSize - 1) / ChunkSize) }

// chunkLen is the length of chunk i of a file of size bytes.
func chunkLen(size int64, i int) int64 {
	return min(ChunkSize, size-int64(i)*ChunkSize)
}

// Sign returns m as canonical JSON with a "sig" field: the ed25519
// signature with key of "parley/media/v1" followed by the canonical JSON
// of m without "sig". m.V and m.Chunk are set to 1 and ChunkSize.
func (m *Meta) Sign(key ed25519.PrivateKey) ([]byte, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("media: sign metadata: key has %d bytes", len(key))
	}
	m.V, m.Chunk = 1, ChunkSize
	if m.Chunks == nil {
		m.Chunks = [][]byte{}
	}
	if err := m.check(); err != nil {
		return nil, fmt.Errorf("media: sign metadata: %w", err)
	}
	canon, err := rooms.MarshalCanonical(m)
	if err != nil {
		return nil, fmt.Errorf("media: sign metadata: %w", err)
	}
	sig := ed25519.Sign(key, append([]byte(metaContext), canon...))
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(canon, &obj); err != nil {
		return nil, fmt.Errorf("media: sign metadata: %w", err)
	}
	obj["sig"], _ = json.Marshal(base64.RawStdEncoding.EncodeToString(sig))
	return rooms.MarshalCanonical(obj)
}

// Verify parses signed metadata received for mxc://server/mediaID and
// returns it if it is well formed, within bounds (size ≤ MaxSize, one
// 32-byte hash per chunk, chunk = ChunkSize), names that very mxc, and is
// signed by the key server's name stands for. Errors wrap ErrBadMeta.
func Verify(raw []byte, server, mediaID string) (*Meta, error) {
	bad := func(format string, args ...any) (*Meta, error) {
		return nil, fmt.Errorf("%w: mxc://%s/%s: %s", ErrBadMeta, server, mediaID, fmt.Sprintf(format, args...))
	}
	if len(raw) > MaxMetaBytes {
		return bad("%d bytes", len(raw))
	}
	pub, err := rooms.ServerKey(server)
	if err != nil {
		return bad("%v", err)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return bad("%v", err)
	}
	var sig64 string
	if err := json.Unmarshal(obj["sig"], &sig64); err != nil {
		return bad("no signature")
	}
	sig, err := base64.RawStdEncoding.DecodeString(sig64)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return bad("malformed signature")
	}
	delete(obj, "sig")
	canon, err := rooms.MarshalCanonical(obj)
	if err != nil {
		return bad("%v", err)
	}
	if !ed25519.Verify(pub, append([]byte(metaContext), canon...), sig) {
		return bad("signature does not verify")
	}
	var m Meta
	if err := json.Unmarshal(canon, &m); err != nil {
		return bad("%v", err)
	}
	if m.Server != server || m.MediaID != mediaID {
		return bad("signed for mxc://%s/%s", m.Server, m.MediaID)
	}
	if err := m.check(); err != nil {
		return bad("%v", err)
	}
	return &m, nil
}

// check is the bounds both Sign and Verify hold metadata to.
func (m *Meta) check() error {
	switch {
	case m.V != 1:
		return fmt.Errorf("version %d", m.V)
	case m.Chunk != ChunkSize:
		return fmt.Errorf("chunk size %d", m.Chunk)
	case m.Size < 0 || m.Size > MaxSize:
		return fmt.Errorf("size %d out of range", m.Size)
	case len(m.Chunks) != NumChunks(m.Size):
		return fmt.Errorf("%d chunk hashes for %d bytes", len(m.Chunks), m.Size)
	case !ValidSHA(m.SHA256):
		return errors.New("malformed sha256")
	case !ValidMediaID(m.MediaID):
		return errors.New("malformed media ID")
	case len(m.Type) > 255 || len(m.Name) > 255:
		return errors.New("type or name too long")
	}
	if mt, _, err := mime.ParseMediaType(m.Type); err != nil || !strings.Contains(mt, "/") {
		return fmt.Errorf("content type %q is malformed", m.Type)
	}
	for i, h := range m.Chunks {
		if len(h) != sha256.Size {
			return fmt.Errorf("chunk hash %d has %d bytes", i, len(h))
		}
	}
	return nil
}

// Digest is what hashing a file gives: its SHA-256 (lowercase hex), size,
// and the SHA-256 of each ChunkSize chunk, ready for Meta.
type Digest struct {
	SHA256 string
	Size   int64
	Chunks [][]byte
}

// hasher computes a Digest from a stream: it hashes the whole and each
// chunk as bytes go by.
type hasher struct {
	whole, chunk hashState
	inChunk      int
	d            Digest
}

type hashState = interface {
	Write([]byte) (int, error)
	Sum([]byte) []byte
	Reset()
}

func newHasher() *hasher { return &hasher{whole: sha256.New(), chunk: sha256.New()} }

func (h *hasher) Write(p []byte) (int, error) {
	n := len(p)
	h.whole.Write(p)
	for len(p) > 0 {
		take := min(len(p), ChunkSize-h.inChunk)
		h.chunk.Write(p[:take])
		h.inChunk += take
		p = p[take:]
		if h.inChunk == ChunkSize {
			h.d.Chunks = append(h.d.Chunks, h.chunk.Sum(nil))
			h.chunk.Reset()
			h.inChunk = 0
		}
	}
	h.d.Size += int64(n)
	return n, nil
}

func (h *hasher) digest() Digest {
	d := h.d
	if h.inChunk > 0 {
		d.Chunks = append(d.Chunks, h.chunk.Sum(nil))
	}
	d.SHA256 = hex.EncodeToString(h.whole.Sum(nil))
	return d
}
