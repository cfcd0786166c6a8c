package peers

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/p2p"
)

// Room peers' addresses are kept in the store (store.NotePeerAddrs): the
// ones this node dialled and reached them at, direct or through a relay,
// then the public and circuit addresses they announce. At start they go
// back into the peerstore, so a node restarted while the relay or DHT it
// found a member through is down still tries the addresses that worked.

// maxLoadedPeers bounds the peers whose addresses are loaded at start.
const maxLoadedPeers = 4096

// renoteAfter is how often an unchanged address list is written again,
// to keep it younger than store.PeerAddrTTL.
const renoteAfter = 24 * time.Hour

// flushAddrsEvery is how often noted addresses are written to the store,
// in one transaction: they are not urgent, and a write queued beside a
// room's events delays them (the store has one writer). Close writes
// what is left.
const flushAddrsEvery = 10 * time.Second

// noted remembers what was last noted per room peer, so that an
// unchanged list costs no write, and holds the lists not yet written.
type noted struct {
	mu        sync.Mutex
	m         map[peer.ID]notedAddrs
	pending   map[peer.ID][]string
	lastFlush time.Time
}

type notedAddrs struct {
	key string
	at  time.Time
}

// loadPeerAddrs gives the peerstore the room peers' stored addresses and
// deletes the expired records.
func (ps *Peers) loadPeerAddrs() error {
	now := time.Now()
	var all map[string][]store.PeerAddr
	if err := ps.store.View(func(t *store.Txn) (err error) {
		all, err = t.AllPeerAddrs(now, maxLoadedPeers)
		return err
	}); err != nil {
		return err
	}
	for id, as := range all {
		p, err := peer.Decode(id)
		if err != nil || p == ps.host.ID() {
			continue
		}
		addrs := make([]string, 0, len(as))
		for _, a := range as {
			addrs = append(addrs, a.Addr)
		}
		ps.host.AddAddrs(p, addrs)
	}
	ps.goBackground(func(context.Context) {
		if err := ps.store.Update(func(t *store.Txn) error {
			_, err := t.DeleteExpiredPeerAddrs(now, maxLoadedPeers)
			return err
		}); err != nil {
			ps.log.Debug("delete expired peer addresses", "err", err)
		}
	})
	return nil
}

// notePeerAddrs stores the addresses p is reached at now: those of the
// connections this node dialled (they worked), then those p announces
// that could work from elsewhere (p2p.LinkAddrs), at most
// store.MaxPeerAddrs.
func (ps *Peers) notePeerAddrs(p peer.ID) {
	lh := ps.host.LibP2P()
	if lh == nil {
		return
	}
	var addrs []string
	for _, c := range lh.Network().ConnsToPeer(p) {
		if c.Stat().Direction == network.DirOutbound {
			addrs = append(addrs, c.RemoteMultiaddr().String())
		}
	}
	var announced []string
	for _, a := range lh.Peerstore().Addrs(p) {
		announced = append(announced, a.String())
	}
	for _, a := range p2p.LinkAddrs(announced) {
		if len(addrs) >= store.MaxPeerAddrs {
			break
		}
		if !slices.Contains(addrs, a) {
			addrs = append(addrs, a)
		}
	}
	if len(addrs) == 0 {
		return
	}
	if len(addrs) > store.MaxPeerAddrs {
		addrs = addrs[:store.MaxPeerAddrs]
	}
	now := time.Now()
	key := strings.Join(addrs, " ")
	ps.noted.mu.Lock()
	if ps.noted.m == nil {
		ps.noted.m = make(map[peer.ID]notedAddrs)
	}
	last, ok := ps.noted.m[p]
	if ok && last.key == key && now.Sub(last.at) < renoteAfter {
		ps.noted.mu.Unlock()
		return
	}
	ps.noted.m[p] = notedAddrs{key, now}
	if ps.noted.pending == nil {
		ps.noted.pending = make(map[peer.ID][]string)
	}
	ps.noted.pending[p] = addrs
	ps.noted.mu.Unlock()
}

// flushPeerAddrs writes the noted addresses to the store if force or
// flushAddrsEvery has passed since the last write.
func (ps *Peers) flushPeerAddrs(force bool) {
	now := time.Now()
	ps.noted.mu.Lock()
	if len(ps.noted.pending) == 0 || !force && now.Sub(ps.noted.lastFlush) < flushAddrsEvery {
		ps.noted.mu.Unlock()
		return
	}
	pending := ps.noted.pending
	ps.noted.pending, ps.noted.lastFlush = nil, now
	ps.noted.mu.Unlock()
	if err := ps.store.Update(func(t *store.Txn) error {
		for p, addrs := range pending {
			if err := t.NotePeerAddrs(p.String(), addrs, now); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		ps.log.Debug("store peer addresses", "peers", len(pending), "err", err)
	}
}

// noteRoomPeerAddrs notes the addresses of every connected room peer
// (identify has taught us theirs since they connected), and forgets what
// was noted of peers no longer room peers.
func (ps *Peers) noteRoomPeerAddrs() {
	connected := ps.host.ConnectedPeers()
	for _, p := range ps.RoomPeers() {
		if slices.Contains(connected, p) {
			ps.notePeerAddrs(p)
		}
	}
	ps.noted.mu.Lock()
	for p := range ps.noted.m {
		if !ps.IsRoomPeer(p) {
			delete(ps.noted.m, p)
		}
	}
	ps.noted.mu.Unlock()
}
