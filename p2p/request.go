package p2p

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// RequestProtocol is the stream protocol for requests between nodes.
//
// One request per stream. Every frame is a uvarint length followed by that
// many raw bytes (no JSON around bodies, so a 64 MiB state response costs no
// encoding):
//
//	request  (client to server, then the client closes its write side;
//	          the server answers only once it has seen that close)
//	    frame: method name, 1 to 256 bytes
//	    frame: body, at most MaxRequestSize bytes
//	response (server to client, then the server closes the stream)
//	    1 byte status: 0 success, 1 error
//	    success: frame: body, at most MaxResponseSize bytes
//	    error:   frame: JSON {"code": "M_...", "message": "..."}, at most 256 KiB
//
// Both sides enforce the limits while reading, before allocating. A server
// that receives an oversized request answers M_TOO_LARGE; anything else
// malformed resets the stream.
const RequestProtocol = "/parley/req/1"

// Limits of the request protocol.
const (
	// MaxRequestSize bounds a request body. The largest honest request
	// is an invite: one event (at most 64 KiB) and its stripped state
	// (at most 8 KiB, trimmed by the sender as the receiver would).
	MaxRequestSize        = 256 << 10
	MaxResponseSize       = 64 << 20 // response body
	MaxMethodLen          = 256
	DefaultRequestTimeout = 30 * time.Second // for a ctx without deadline, and for handlers

	maxErrorFrame   = 256 << 10
	maxErrorMessage = 16 << 10
	// responseWriteTimeout bounds sending a response, which can be large.
	responseWriteTimeout = 2 * time.Minute
	// smallFrame: frames up to this size are written in one piece.
	smallFrame = 64 << 10
)

// Error codes the request protocol itself produces. Handlers may use any
// Matrix-style code in a RemoteError.
const (
	CodeUnknown      = "M_UNKNOWN"      // a handler failed with an ordinary error
	CodeTooLarge     = "M_TOO_LARGE"    // a request or response exceeded its limit
	CodeUnrecognized = "M_UNRECOGNIZED" // the node serves no requests
)

const (
	statusOK  byte = 0
	statusErr byte = 1
)

// ErrTooLarge is wrapped by errors about frames over their limit.
var ErrTooLarge = errors.New("too large")

// Handler serves requests from other nodes. ctx ends when the host closes or
// after DefaultRequestTimeout. Returning a *RemoteError (or an error wrapping
// one) sends it as is; any other error is sent as M_UNKNOWN with its message.
type Handler func(ctx context.Context, from peer.ID, method string, body []byte) ([]byte, error)

// RemoteError is an error answered by the remote node.
type RemoteError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *RemoteError) Error() string {
	return "p2p: remote error " + e.Code + ": " + e.Message
}

// Handle sets the handler for incoming requests. Set it before Start; until a
// handler is set, requests are answered with M_UNRECOGNIZED.
func (h *Host) Handle(fn Handler) {
	if fn == nil {
		h.handler.Store(nil)
		return
	}
	h.handler.Store(&fn)
}

// Request sends a request to p and returns the response body. It connects
// first if needed (see Connect). If ctx has no deadline, DefaultRequestTimeout
// applies; a peer that never answers costs only the deadline. An error the
// remote handler returned comes back as a *RemoteError.
func (h *Host) Request(ctx context.Context, p peer.ID, method string, body []byte) ([]byte, error) {
	if len(method) == 0 || len(method) > MaxMethodLen {
		return nil, fmt.Errorf("p2p: request to %s: method name of %d bytes (want 1 to %d)", p, len(method), MaxMethodLen)
	}
	if len(body) > MaxRequestSize {
		return nil, fmt.Errorf("p2p: request %s to %s: body of %d bytes exceeds %d: %w",
			method, p, len(body), MaxRequestSize, ErrTooLarge)
	}
	lh, _, err := h.running()
	if err != nil {
		return nil, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultRequestTimeout)
		defer cancel()
	}
	fail := func(err error) ([]byte, error) {
		if cerr := ctx.Err(); cerr != nil {
			err = cerr // the stream error is only the echo of the cancellation
		}
		return nil, fmt.Errorf("p2p: request %s to %s: %w", method, p, err)
	}
	if err := h.Connect(ctx, p); err != nil {
		return fail(err)
	}
	// A relayed connection will do (see limited.go).
	s, err := lh.NewStream(allowLimited(ctx), p, RequestProtocol)
	if err != nil {
		return fail(err)
	}
	// Cut the stream when ctx ends, which unblocks any read or write.
	stop := context.AfterFunc(ctx, func() { s.Reset() })
	defer stop()

	resp, err := exchange(s, method, body)
	var re *RemoteError
	switch {
	case errors.As(err, &re):
		s.Close()
		return nil, re
	case err != nil:
		s.Reset()
		return fail(err)
	}
	s.Close()
	return resp, nil
}

// exchange writes a request on s and reads the response.
func exchange(s network.Stream, method string, body []byte) ([]byte, error) {
	req := binary.AppendUvarint(make([]byte, 0, 2*binary.MaxVarintLen64+len(method)+min(len(body), smallFrame)), uint64(len(method)))
	req = append(req, method...)
	if err := writeFrame(s, req, body); err != nil {
		return nil, fmt.Errorf("send: %w", err)
	}
	if err := s.CloseWrite(); err != nil {
		return nil, fmt.Errorf("send: %w", err)
	}
	br := bufio.NewReader(s)
	status, err := br.ReadByte()
	if err != nil {
		return nil, fmt.Errorf("read response: %w", eofIsUnexpected(err))
	}
	switch status {
	case statusOK:
		resp, err := readFrame(br, MaxResponseSize)
		if err != nil {
			return nil, fmt.Errorf("read response: %w", err)
		}
		return resp, nil
	case statusErr:
		raw, err := readFrame(br, maxErrorFrame)
		if err != nil {
			return nil, fmt.Errorf("read error response: %w", err)
		}
		re := new(RemoteError)
		if err := json.Unmarshal(raw, re); err != nil || re.Code == "" {
			return nil, fmt.Errorf("malformed error response %.100q", raw)
		}
		return nil, re
	default:
		return nil, fmt.Errorf("malformed response: status byte %d", status)
	}
}

// serveStream answers one request. It runs on a libp2p goroutine, which the
// Host tracks so that Close waits for it.
func (h *Host) serveStream(s network.Stream) {
	if !h.track() {
		s.Reset()
		return
	}
	defer h.wg.Done()
	from := s.Conn().RemotePeer()

	// Take a slot before reading anything: the body's memory is what the
	// slots bound.
	release, ok := h.admit.acquire(from, h.ctx.Done())
	if !ok {
		h.countAndLog(&h.stats.refused, "request refused: too many in flight", "peer", from)
		s.Reset()
		return
	}
	defer release()

	s.SetReadDeadline(time.Now().Add(requestReadTimeout))
	br := bufio.NewReader(s)
	method, body, err := readRequest(br)
	if err == nil {
		s.SetReadDeadline(time.Time{})
		h.answer(s, from, string(method), body)
		return
	}
	h.log.Debug("bad request stream", "peer", from, "err", err)
	if errors.Is(err, ErrTooLarge) {
		s.SetWriteDeadline(time.Now().Add(responseWriteTimeout))
		if writeError(s, &RemoteError{Code: CodeTooLarge, Message: err.Error()}) == nil {
			s.Close()
			return
		}
	}
	s.Reset()
}

// readRequest reads a request up to the end of the client's side of the
// stream. Waiting for the end also means the response cannot race the
// client's close (QUIC reports closing a stream the peer stopped reading as
// an error).
func readRequest(br *bufio.Reader) (method, body []byte, err error) {
	if method, err = readFrame(br, MaxMethodLen); err != nil {
		return nil, nil, err
	}
	if body, err = readFrame(br, MaxRequestSize); err != nil {
		return nil, nil, err
	}
	if _, err := br.ReadByte(); err != io.EOF {
		if err == nil {
			err = errors.New("data after the request")
		}
		return nil, nil, err
	}
	return method, body, nil
}

// track registers a stream handler with the Host's WaitGroup, unless the
// host is shutting down.
func (h *Host) track() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.state != stateRunning {
		return false
	}
	h.wg.Add(1)
	return true
}

// answer runs the handler and writes its response.
func (h *Host) answer(s network.Stream, from peer.ID, method string, body []byte) {
	ctx, cancel := context.WithTimeout(h.ctx, DefaultRequestTimeout)
	resp, err := h.callHandler(ctx, from, method, body)
	cancel()
	if err == nil && len(resp) > MaxResponseSize {
		h.log.Warn("response over the limit", "method", method, "peer", from, "size", len(resp))
		err = &RemoteError{Code: CodeTooLarge, Message: fmt.Sprintf("response of %d bytes exceeds %d", len(resp), MaxResponseSize)}
	}
	s.SetWriteDeadline(time.Now().Add(responseWriteTimeout))
	if err != nil {
		err = writeError(s, toRemoteError(err))
	} else {
		err = writeFrame(s, []byte{statusOK}, resp)
	}
	if err != nil {
		h.log.Debug("response not sent", "method", method, "peer", from, "err", err)
		s.Reset()
		return
	}
	s.Close()
}

func (h *Host) callHandler(ctx context.Context, from peer.ID, method string, body []byte) (resp []byte, err error) {
	fn := h.handler.Load()
	if fn == nil {
		return nil, &RemoteError{Code: CodeUnrecognized, Message: "this node serves no requests"}
	}
	defer func() {
		if p := recover(); p != nil {
			h.log.Error("request handler panicked", "method", method, "peer", from,
				"panic", p, "stack", string(debug.Stack()))
			resp, err = nil, &RemoteError{Code: CodeUnknown, Message: "internal error"}
		}
	}()
	return (*fn)(ctx, from, method, body)
}

// toRemoteError turns a handler's error into what goes on the wire.
func toRemoteError(err error) *RemoteError {
	var re *RemoteError
	if !errors.As(err, &re) {
		re = &RemoteError{Code: CodeUnknown, Message: err.Error()}
	}
	out := *re
	if len(out.Code) > MaxMethodLen {
		out.Code = out.Code[:MaxMethodLen]
	}
	if len(out.Message) > maxErrorMessage {
		out.Message = strings.ToValidUTF8(out.Message[:maxErrorMessage], "")
	}
	return &out
}

func writeError(w io.Writer, re *RemoteError) error {
	raw, err := json.Marshal(re)
	if err != nil {
		return err
	}
	return writeFrame(w, []byte{statusErr}, raw)
}

// writeFrame writes prefix (already encoded bytes) followed by payload as a
// length-prefixed frame. Small frames go out in a single write.
func writeFrame(w io.Writer, prefix, payload []byte) error {
	buf := binary.AppendUvarint(prefix, uint64(len(payload)))
	if len(payload) <= smallFrame {
		_, err := w.Write(append(buf, payload...))
		return err
	}
	if _, err := w.Write(buf); err != nil {
		return err
	}
	_, err := w.Write(payload)
	return err
}

// readFrame reads one length-prefixed frame of at most limit bytes. Memory
// grows with the bytes actually received, not with the announced length, so
// a peer announcing 64 MiB and sending nothing costs nothing.
func readFrame(r *bufio.Reader, limit int) ([]byte, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, fmt.Errorf("frame length: %w", eofIsUnexpected(err))
	}
	if n > uint64(limit) {
		return nil, fmt.Errorf("frame of %d bytes exceeds %d: %w", n, limit, ErrTooLarge)
	}
	size := int(n)
	buf := make([]byte, 0, min(size, smallFrame))
	for len(buf) < size {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, min(cap(buf), size-len(buf)))
		}
		m, err := r.Read(buf[len(buf):min(cap(buf), size)])
		buf = buf[:len(buf)+m]
		if err != nil && len(buf) < size {
			return nil, fmt.Errorf("frame body: %w", eofIsUnexpected(err))
		}
	}
	return buf, nil
}

func eofIsUnexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
