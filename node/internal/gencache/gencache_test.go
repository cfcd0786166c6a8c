package gencache

import (
	"strings"
	"testing"
)

// TestCachesAreBoundedByBytes: 3,000 entries of 60 KB, which an entry
// count of 4,096 would all keep (180 MB), hold no more than the byte
// budget.
func TestCachesAreBoundedByBytes(t *testing.T) {
	const budget = 8 << 20
	c := NewSized[int](4096, budget, func(s string) int { return len(s) })
	for i := range 3000 {
		c.Put(i, strings.Repeat("x", 60000)+string(rune('a'+i%26)))
	}
	if got := c.Bytes(); got > budget {
		t.Errorf("cache holds %d bytes, budget %d", got, budget)
	}
	if _, ok := c.Get(2999); !ok {
		t.Errorf("the newest entry is not cached")
	}
	if _, ok := c.Get(0); ok {
		t.Errorf("the oldest entry is still cached")
	}
}
