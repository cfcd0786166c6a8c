package peers

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// TestHoldersSpreadChunksAndDropBannedProviders: chunks start at
// different holders, the providers not asked come last, and a banned
// provider is never listed again.
func TestHoldersSpreadChunksAndDropBannedProviders(t *testing.T) {
	a, b, c := provider{p: peer.ID("a"), room: "!r"}, provider{p: peer.ID("b"), room: "!r"}, provider{p: peer.ID("c"), room: "!r"}
	h := &holders{later: []provider{c}}
	h.add(a, nil)
	h.add(b, nil)
	same := func(got []provider, want ...provider) bool {
		if len(got) != len(want) {
			return false
		}
		for i := range got {
			if got[i] != want[i] {
				return false
			}
		}
		return true
	}
	if got := h.list(0); !same(got, a, b, c) {
		t.Errorf("chunk 0: %v", got)
	}
	if got := h.list(1); !same(got, b, a, c) {
		t.Errorf("chunk 1: %v", got)
	}
	h.ban(b.p)
	if got := h.list(1); !same(got, a, c) {
		t.Errorf("chunk 1 with b banned: %v", got)
	}
}

// TestHoldersBoundChunksPerProvider: no more than a provider serves one
// peer are asked of it at once; the next free provider is taken instead,
// and with none free the first is waited for.
func TestHoldersBoundChunksPerProvider(t *testing.T) {
	a, b := provider{p: peer.ID("a")}, provider{p: peer.ID("b")}
	h := &holders{}
	ctx := context.Background()
	var releases []func()
	for range maxServedChunksPerPeer {
		pr, rel, err := h.take(ctx, []provider{a, b})
		if err != nil || pr != a {
			t.Fatalf("took %v, %v; want a while it has slots", pr, err)
		}
		releases = append(releases, rel)
	}
	pr, relB, err := h.take(ctx, []provider{a, b})
	if err != nil || pr != b {
		t.Fatalf("took %v, %v; want b once a is full", pr, err)
	}
	defer relB()
	tctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, _, err := h.take(tctx, []provider{a}); err == nil {
		t.Fatal("took a slot of a full provider")
	}
	releases[0]()
	if pr, rel, err := h.take(ctx, []provider{a}); err != nil || pr != a {
		t.Fatalf("after a release: %v, %v", pr, err)
	} else {
		rel()
	}
}

// TestHoldersAskThoseWithTheChunkFirst: a provider whose download is
// under way is asked for a chunk it has like any holder, and after the
// others for one it lacks; a bitmap of the wrong length reads as "all".
func TestHoldersAskThoseWithTheChunkFirst(t *testing.T) {
	a, b := provider{p: peer.ID("a")}, provider{p: peer.ID("b")}
	h := &holders{}
	h.add(a, haveBits("AQ", 3)) // chunk 0 only
	h.add(b, haveBits("all", 3))
	if got := h.list(0); len(got) != 2 || got[0] != a {
		t.Errorf("chunk 0: %v, want a first", got)
	}
	if got := h.list(2); len(got) != 2 || got[0] != b || got[1] != a {
		t.Errorf("chunk 2: %v, want b, then a", got)
	}
	if haveBits("AQAA", 3) != nil || haveBits("!!", 3) != nil {
		t.Error("a malformed bitmap is not read as all")
	}
}
