package p2p

import (
	"context"
	"sync"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// Relayed connections are "limited" in libp2p: a stream may use one only if
// its opener says so, otherwise libp2p waits for hole punching to produce a
// direct connection, which never comes behind a NAT that defeats it. parley
// says so for its requests and its room messages, so that two nodes that
// only reach each other through a relay can still talk; the relay's limits
// (see relayLimitDuration) bound what that costs the relay. The DHT keeps
// libp2p's default and never queries over a relayed connection.

// relayedConnReason is the reason parley gives libp2p for using limited
// connections.
const relayedConnReason = "parley"

// allowLimited lets streams opened with ctx use a relayed connection.
func allowLimited(ctx context.Context) context.Context {
	return network.WithAllowLimitedConn(ctx, relayedConnReason)
}

// connectedOrRelayed reports whether there is any connection to p, direct or
// relayed.
func connectedOrRelayed(lh host.Host, p peer.ID) bool {
	c := lh.Network().Connectedness(p)
	return c == network.Connected || c == network.Limited
}

// pubsubHost is the view of the libp2p host that GossipSub gets. GossipSub
// (v0.19) talks only to peers whose Connectedness is Connected, which
// excludes peers reached only through a relay, and opens its streams without
// WithAllowLimitedConn. This view counts a relayed connection as a connection
// and lets GossipSub's streams use it. Where a direct connection exists,
// libp2p prefers it for new streams.
//
// It is also where paths.go watches and steers GossipSub's streams when a
// peer's connections change (see pubsubPaths): the streams GossipSub opens
// (NewStream) may be held back for a moment, the streams a peer opens to us
// (SetStreamHandler) are seen before GossipSub reads them, and GossipSub can
// be told to open a stream to a peer again (EventBus).
type pubsubHost struct {
	host.Host
	paths *pubsubPaths
}

func (h pubsubHost) Network() network.Network { return pubsubNetwork{h.Host.Network()} }

func (h pubsubHost) NewStream(ctx context.Context, p peer.ID, pids ...protocol.ID) (network.Stream, error) {
	if err := h.paths.opening(ctx, p); err != nil {
		return nil, err
	}
	s, err := h.Host.NewStream(allowLimited(ctx), p, pids...)
	if err != nil || h.paths == nil {
		return s, err
	}
	ws := &watchedStream{Stream: s, paths: h.paths, dead: make(chan struct{})}
	h.paths.openedStream(ws)
	return ws, nil
}

// watchedStream is a stream GossipSub opened. GossipSub reads it only to
// learn that it failed; paths.go wants to know that too (see inject).
type watchedStream struct {
	network.Stream
	paths *pubsubPaths
	once  sync.Once
	dead  chan struct{} // closed when it fails
}

func (s *watchedStream) Read(b []byte) (int, error) {
	n, err := s.Stream.Read(b)
	if err != nil {
		s.once.Do(func() { s.paths.failed(s) })
	}
	return n, err
}

func (h pubsubHost) SetStreamHandler(pid protocol.ID, handler network.StreamHandler) {
	h.Host.SetStreamHandler(pid, h.paths.inbound(h.Host, handler))
}

func (h pubsubHost) SetStreamHandlerMatch(pid protocol.ID, match func(protocol.ID) bool, handler network.StreamHandler) {
	h.Host.SetStreamHandlerMatch(pid, match, h.paths.inbound(h.Host, handler))
}

func (h pubsubHost) EventBus() event.Bus { return pubsubBus{h.Host.EventBus(), h.paths} }

type pubsubNetwork struct{ network.Network }

func (n pubsubNetwork) Connectedness(p peer.ID) network.Connectedness {
	if c := n.Network.Connectedness(p); c != network.Limited {
		return c
	}
	return network.Connected
}

func (n pubsubNetwork) NewStream(ctx context.Context, p peer.ID) (network.Stream, error) {
	return n.Network.NewStream(allowLimited(ctx), p)
}
