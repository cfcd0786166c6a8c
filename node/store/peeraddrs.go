package store

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"time"
)

// The addresses other nodes were last reached at: per peer, the newest
// MaxPeerAddrs addresses that produced a connection (direct or through a
// relay), each with when it last did, forgotten after PeerAddrTTL. A node
// restarted while the relay or the DHT it found a member through is down
// still has these to try. The caller records only the peers of its rooms'
// servers; the record of a peer is bounded, the age bounds the rest.
func keyPeerAddrs(peer string) []byte { return []byte("paddr/" + peer) }

var prefixPeerAddrs = []byte("paddr/")

const (
	// MaxPeerAddrs bounds the addresses kept per peer.
	MaxPeerAddrs = 8
	// PeerAddrTTL is how long an address that worked is kept.
	PeerAddrTTL = 7 * 24 * time.Hour
	// maxAddrLen bounds one stored address (a circuit address through a
	// relay with a long DNS name is still well under it).
	maxAddrLen = 512
)

// PeerAddr is an address a peer was reached at, and when (Unix ms).
type PeerAddr struct {
	Addr string `json:"a"`
	Seen int64  `json:"t"`
}

// NotePeerAddrs records that addrs reached peer at now: they are kept with
// the peer's other addresses, newest first, at most MaxPeerAddrs of them,
// none older than PeerAddrTTL. Empty or overlong addresses are skipped.
func (t *Txn) NotePeerAddrs(peer string, addrs []string, now time.Time) error {
	var have []PeerAddr
	if err := t.getJSON(keyPeerAddrs(peer), &have); err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	ms := now.UnixMilli()
	for _, a := range addrs {
		if a == "" || len(a) > maxAddrLen {
			continue
		}
		have = slices.DeleteFunc(have, func(p PeerAddr) bool { return p.Addr == a })
		have = append(have, PeerAddr{Addr: a, Seen: ms})
	}
	return t.setJSON(keyPeerAddrs(peer), freshPeerAddrs(have, now))
}

// freshPeerAddrs sorts addresses newest first and drops the expired and
// those beyond MaxPeerAddrs.
func freshPeerAddrs(as []PeerAddr, now time.Time) []PeerAddr {
	oldest := now.Add(-PeerAddrTTL).UnixMilli()
	as = slices.DeleteFunc(as, func(p PeerAddr) bool { return p.Seen < oldest })
	slices.SortStableFunc(as, func(x, y PeerAddr) int {
		switch {
		case x.Seen > y.Seen:
			return -1
		case x.Seen < y.Seen:
			return 1
		}
		return 0
	})
	if len(as) > MaxPeerAddrs {
		as = as[:MaxPeerAddrs]
	}
	return as
}

// PeerAddrs returns the addresses recorded for a peer, newest first,
// leaving out the expired ones (nil if none).
func (t *Txn) PeerAddrs(peer string, now time.Time) ([]PeerAddr, error) {
	var have []PeerAddr
	if err := t.getJSON(keyPeerAddrs(peer), &have); err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, nil
		}
		return nil, err
	}
	return freshPeerAddrs(have, now), nil
}

// AllPeerAddrs returns the unexpired addresses of up to limit peers.
func (t *Txn) AllPeerAddrs(now time.Time, limit int) (map[string][]PeerAddr, error) {
	out := make(map[string][]PeerAddr)
	err := t.scan(prefixPeerAddrs, nil, false, func(k, v []byte) (bool, error) {
		var have []PeerAddr
		if err := json.Unmarshal(v, &have); err != nil {
			return true, nil // a damaged record is skipped, not fatal
		}
		if fresh := freshPeerAddrs(have, now); len(fresh) > 0 {
			out[strings.TrimPrefix(string(k), string(prefixPeerAddrs))] = fresh
		}
		return len(out) < limit, nil
	})
	return out, err
}

// DeleteExpiredPeerAddrs deletes the records of peers none of whose
// addresses is younger than PeerAddrTTL, up to limit of them.
func (t *Txn) DeleteExpiredPeerAddrs(now time.Time, limit int) (int, error) {
	var dead [][]byte
	err := t.scan(prefixPeerAddrs, nil, false, func(k, v []byte) (bool, error) {
		var have []PeerAddr
		if err := json.Unmarshal(v, &have); err != nil || len(freshPeerAddrs(have, now)) == 0 {
			dead = append(dead, slices.Clone(k))
		}
		return len(dead) < limit, nil
	})
	if err != nil {
		return 0, err
	}
	for _, k := range dead {
		if err := t.txn.Delete(k); err != nil {
			return 0, err
		}
	}
	return len(dead), nil
}
