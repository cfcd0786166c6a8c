package p2p

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// testHandler serves a few methods that exercise the protocol.
func testHandler(ctx context.Context, from peer.ID, method string, body []byte) ([]byte, error) {
	switch method {
	case "echo":
		return body, nil
	case "whoami":
		return []byte(from), nil
	case "big":
		return bytes.Repeat([]byte{'b'}, 5<<20), nil
	case "not found":
		return nil, &RemoteError{Code: "M_NOT_FOUND", Message: "no such event"}
	case "wrapped":
		return nil, fmt.Errorf("looking up: %w", &RemoteError{Code: "M_FORBIDDEN", Message: "not a member"})
	case "plain error":
		return nil, errors.New("disk on fire")
	case "panic":
		panic("handler bug")
	case "hang":
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return nil, &RemoteError{Code: CodeUnrecognized, Message: "unknown method " + method}
}

// serverAndClient returns a host serving testHandler and a host that knows
// its addresses.
func serverAndClient(t testing.TB) (srv, cli *Host) {
	t.Helper()
	srv = newTestHost(t)
	srv.Handle(testHandler)
	cli = newTestHost(t)
	cli.AddAddrs(srv.ID(), srv.Addrs())
	return srv, cli
}

func TestRequestReturnsTheHandlersResponse(t *testing.T) {
	srv, cli := serverAndClient(t)
	max := make([]byte, MaxRequestSize)
	rand.Read(max)
	tests := []struct {
		name   string
		method string
		body   []byte
		want   []byte
	}{
		{"empty body", "echo", nil, []byte{}},
		{"small body", "echo", []byte("ping"), []byte("ping")},
		{"body at the limit", "echo", max, max},
		{"handler sees the caller's peer ID", "whoami", nil, []byte(cli.ID())},
		{"large response", "big", nil, bytes.Repeat([]byte{'b'}, 5<<20)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := cli.Request(context.Background(), srv.ID(), tt.method, tt.body)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tt.want) {
				t.Fatalf("response of %d bytes, want %d", len(got), len(tt.want))
			}
		})
	}
}

func TestRequestPropagatesRemoteErrors(t *testing.T) {
	srv, cli := serverAndClient(t)
	tests := []struct {
		method string
		want   RemoteError
	}{
		{"not found", RemoteError{"M_NOT_FOUND", "no such event"}},
		{"wrapped", RemoteError{"M_FORBIDDEN", "not a member"}},
		{"plain error", RemoteError{CodeUnknown, "disk on fire"}},
		{"panic", RemoteError{CodeUnknown, "internal error"}},
		{"nonsense", RemoteError{CodeUnrecognized, "unknown method nonsense"}},
	}
	for _, tt := range tests {
		t.Run(tt.method, func(t *testing.T) {
			_, err := cli.Request(context.Background(), srv.ID(), tt.method, nil)
			var re *RemoteError
			if !errors.As(err, &re) || *re != tt.want {
				t.Fatalf("Request = %v, want remote error %+v", err, tt.want)
			}
		})
	}
}

func TestRequestToANodeWithoutHandler(t *testing.T) {
	srv := newTestHost(t)
	cli := newTestHost(t)
	cli.AddAddrs(srv.ID(), srv.Addrs())
	_, err := cli.Request(context.Background(), srv.ID(), "echo", nil)
	var re *RemoteError
	if !errors.As(err, &re) || re.Code != CodeUnrecognized {
		t.Fatalf("Request = %v, want %s", err, CodeUnrecognized)
	}
}

// rawStream opens a request stream from cli to srv without the protocol code.
func rawStream(t *testing.T, cli, srv *Host) network.Stream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := cli.Connect(ctx, srv.ID()); err != nil {
		t.Fatal(err)
	}
	s, err := cli.LibP2P().NewStream(ctx, srv.ID(), RequestProtocol)
	if err != nil {
		t.Fatal(err)
	}
	s.SetDeadline(time.Now().Add(5 * time.Second))
	return s
}

func uvarint(n uint64) []byte { return binary.AppendUvarint(nil, n) }

func TestRequestSizeLimits(t *testing.T) {
	srv, cli := serverAndClient(t)
	ctx := context.Background()

	t.Run("client refuses to send an oversized body", func(t *testing.T) {
		_, err := cli.Request(ctx, srv.ID(), "echo", make([]byte, MaxRequestSize+1))
		if !errors.Is(err, ErrTooLarge) {
			t.Fatalf("Request = %v, want ErrTooLarge", err)
		}
	})
	t.Run("client refuses an overlong method name", func(t *testing.T) {
		if _, err := cli.Request(ctx, srv.ID(), strings.Repeat("m", MaxMethodLen+1), nil); err == nil {
			t.Fatal("Request succeeded")
		}
	})
	t.Run("server refuses an oversized body before reading it", func(t *testing.T) {
		s := rawStream(t, cli, srv)
		defer s.Reset()
		req := append(uvarint(4), "echo"...)
		req = append(req, uvarint(MaxRequestSize+1)...)
		if _, err := s.Write(req); err != nil {
			t.Fatal(err)
		}
		resp, err := exchangeResult(s)
		var re *RemoteError
		if !errors.As(err, &re) || re.Code != CodeTooLarge {
			t.Fatalf("response %q, %v; want %s", resp, err, CodeTooLarge)
		}
	})
	t.Run("client refuses an oversized response before reading it", func(t *testing.T) {
		liar := newTestHost(t)
		liar.LibP2P().SetStreamHandler(RequestProtocol, func(s network.Stream) {
			defer s.Close()
			io.Copy(io.Discard, s)
			s.Write(append([]byte{statusOK}, uvarint(MaxResponseSize+1)...))
		})
		cli.AddAddrs(liar.ID(), liar.Addrs())
		_, err := cli.Request(ctx, liar.ID(), "echo", nil)
		if !errors.Is(err, ErrTooLarge) {
			t.Fatalf("Request = %v, want ErrTooLarge", err)
		}
	})
}

// exchangeResult reads a response from a raw stream.
func exchangeResult(s network.Stream) ([]byte, error) {
	br := bufio.NewReader(s)
	status, err := br.ReadByte()
	if err != nil {
		return nil, err
	}
	body, err := readFrame(br, maxErrorFrame)
	if err != nil {
		return nil, err
	}
	if status == statusErr {
		re := new(RemoteError)
		if err := json.Unmarshal(body, re); err != nil {
			return body, err
		}
		return nil, re
	}
	return body, nil
}

func TestRequestDeadlines(t *testing.T) {
	srv, cli := serverAndClient(t)

	silent := newTestHost(t)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) }) // runs before silent closes
	silent.LibP2P().SetStreamHandler(RequestProtocol, func(s network.Stream) {
		<-release
		s.Reset()
	})
	cli.AddAddrs(silent.ID(), silent.Addrs())

	tests := []struct {
		name string
		to   peer.ID
	}{
		{"handler that never answers", srv.ID()},
		{"peer that never reads nor answers", silent.ID()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			start := time.Now()
			_, err := cli.Request(ctx, tt.to, "hang", []byte("anyone?"))
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Request = %v, want a deadline error", err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Fatalf("Request took %v with a 300ms deadline", d)
			}
		})
	}
	// The server is still fine.
	if _, err := cli.Request(context.Background(), srv.ID(), "echo", nil); err != nil {
		t.Fatalf("echo after a hung request: %v", err)
	}
}

func TestGarbageStreamsDoNotHurtTheServer(t *testing.T) {
	srv, cli := serverAndClient(t)
	random := make([]byte, 4096)
	rand.Read(random)
	tests := []struct {
		name  string
		bytes []byte
		reset bool
	}{
		{"random bytes", random, false},
		{"varint overflowing 64 bits", bytes.Repeat([]byte{0xff}, 11), false},
		{"overlong method name", append(uvarint(MaxMethodLen+1), strings.Repeat("m", MaxMethodLen+1)...), false},
		{"truncated body", append(append(append(uvarint(4), "echo"...), uvarint(100)...), "short"...), false},
		{"truncated length", []byte{0x80}, false},
		{"method only", append(uvarint(4), "echo"...), false},
		{"nothing", nil, false},
		{"reset midway", append(uvarint(4), "ec"...), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := rawStream(t, cli, srv)
			defer s.Reset()
			s.Write(tt.bytes)
			if tt.reset {
				s.Reset()
				return
			}
			s.CloseWrite()
			io.Copy(io.Discard, s) // whatever the server says, it must end
		})
	}
	got, err := cli.Request(context.Background(), srv.ID(), "echo", []byte("still here"))
	if err != nil || string(got) != "still here" {
		t.Fatalf("echo after garbage = %q, %v", got, err)
	}
}
