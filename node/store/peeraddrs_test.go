package store

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestPeerAddrs: a peer's addresses are kept newest first, at most
// MaxPeerAddrs, an address noted again moves to the front, and addresses
// older than PeerAddrTTL are forgotten (their peer's record deleted).
func TestPeerAddrs(t *testing.T) {
	s := openTestStore(t, Options{})
	now := time.Unix(1_000_000, 0)
	note := func(peer string, at time.Time, addrs ...string) {
		t.Helper()
		if err := s.Update(func(tx *Txn) error { return tx.NotePeerAddrs(peer, addrs, at) }); err != nil {
			t.Fatal(err)
		}
	}
	addrsOf := func(peer string, at time.Time) []string {
		t.Helper()
		var out []string
		if err := s.View(func(tx *Txn) error {
			as, err := tx.PeerAddrs(peer, at)
			for _, a := range as {
				out = append(out, a.Addr)
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	for i := range MaxPeerAddrs + 3 {
		note("p1", now.Add(time.Duration(i)*time.Second), fmt.Sprintf("/ip4/1.2.3.%d/tcp/4001", i))
	}
	got := addrsOf("p1", now.Add(time.Minute))
	if len(got) != MaxPeerAddrs || got[0] != fmt.Sprintf("/ip4/1.2.3.%d/tcp/4001", MaxPeerAddrs+2) {
		t.Fatalf("after %d addresses: %v; want the newest %d, newest first", MaxPeerAddrs+3, got, MaxPeerAddrs)
	}
	note("p1", now.Add(time.Hour), "/ip4/1.2.3.5/tcp/4001", "", strings.Repeat("x", maxAddrLen+1))
	got = addrsOf("p1", now.Add(time.Hour))
	if len(got) != MaxPeerAddrs || got[0] != "/ip4/1.2.3.5/tcp/4001" {
		t.Fatalf("an address noted again: %v; want it first, empty and overlong ones skipped", got)
	}
	note("p2", now, "/ip4/5.6.7.8/udp/4001/quic-v1")
	later := now.Add(PeerAddrTTL + time.Minute)
	if got := addrsOf("p2", later); got != nil {
		t.Errorf("p2's address a week later: %v, want none", got)
	}
	var all map[string][]PeerAddr
	if err := s.View(func(tx *Txn) (err error) { all, err = tx.AllPeerAddrs(later, 100); return }); err != nil {
		t.Fatal(err)
	}
	if len(all) != 1 || len(all["p1"]) != 1 {
		t.Errorf("all peers' fresh addresses a week on: %v, want only p1's one renewed address", all)
	}
	var deleted int
	if err := s.Update(func(tx *Txn) (err error) { deleted, err = tx.DeleteExpiredPeerAddrs(later, 100); return }); err != nil {
		t.Fatal(err)
	}
	if deleted != 1 {
		t.Errorf("deleted %d expired records, want 1 (p2's)", deleted)
	}
}
