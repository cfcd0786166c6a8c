package node

import (
	"strings"
	"testing"
)

// TestCachesAreBoundedByBytes: 3,000 entries of 60 KB, which an entry
// count of 4,096 would all keep (180 MB), hold no more than the byte
// budget.
func TestCachesAreBoundedByBytes(t *testing.T) {
	const budget = 8 << 20
	c := newSizedCache[int](4096, budget, func(s string) int { return len(s) })
	for i := range 3000 {
		c.put(i, strings.Repeat("x", 60000)+string(rune('a'+i%26)))
	}
	if got := c.bytes(); got > budget {
		t.Errorf("cache holds %d bytes, budget %d", got, budget)
	}
	if _, ok := c.get(2999); !ok {
		t.Errorf("the newest entry is not cached")
	}
	if _, ok := c.get(0); ok {
		t.Errorf("the oldest entry is still cached")
	}
}
