package node

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/parley-p2p/parley/node/e2ee"
	"github.com/parley-p2p/parley/node/peers"
	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/p2p"
	"github.com/parley-p2p/parley/rooms"
	"maunium.net/go/mautrix/id"
)

// Accessors the in-package integration tests use to look inside a node.

func (n *Node) getRoom(id string) *peers.Room { return n.peers.Room(id) }

func (n *Node) membership(r *peers.Room, user string) string { return n.peers.Membership(r, user) }

func remoteErr(code, format string, args ...any) *p2p.RemoteError {
	return &p2p.RemoteError{Code: code, Message: fmt.Sprintf(format, args...)}
}

func nowMS() int64 { return time.Now().UnixMilli() }

// roomKeys are the room's current gossip topics and keys as n holds them
// (what a member, or anyone the secret leaked to, can use).
func (n *Node) roomKeys(t testing.TB, roomID string) p2p.RoomKeys {
	t.Helper()
	k, ok := n.peers.RoomKeys(roomID)
	if !ok {
		t.Fatalf("node does not hold the secret of %s", roomID)
	}
	return k
}

// kemKey is the node's KEM public key, as an inviter fetches it.
func (n *Node) kemKey(t testing.TB) e2ee.PublicKey {
	t.Helper()
	raw, err := json.Marshal(n.peers.KEMDoc())
	if err != nil {
		t.Fatal(err)
	}
	pub, err := e2ee.ParseKEMDoc(raw)
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

// roomEpoch is the epoch of the room secret n holds (-1: none).
func (n *Node) roomEpoch(roomID string) int64 {
	e, ok := n.peers.RoomEpoch(roomID)
	if !ok {
		return -1
	}
	return int64(e)
}

// decryptAt reports whether n's node can decrypt ev (taken from any
// node's store) as a message of room.
func decryptAt(t testing.TB, n *testNode, room id.RoomID, ev *rooms.Event) bool {
	t.Helper()
	return n.e2ee.Readable(room.String(), ev)
}

// waitingEvents counts the events of n that still wait for a key.
func waitingEvents(t testing.TB, n *testNode, room id.RoomID) int {
	t.Helper()
	count := 0
	err := n.store.View(func(tx *store.Txn) error {
		return tx.E2Scan("w/", func(key string, val []byte) bool {
			if string(val) == room.String() {
				count++
			}
			return true
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return count
}

// searchPostings counts the postings of a term in a room's search index.
func (n *Node) searchPostings(t testing.TB, roomID, term string) int {
	t.Helper()
	c := 0
	if err := n.store.View(func(tx *store.Txn) error {
		return tx.Postings(term, false, func(h store.PostingHit) bool {
			if h.Room == store.SearchRoomKey(roomID) {
				c++
			}
			return true
		})
	}); err != nil {
		t.Fatal(err)
	}
	return c
}
