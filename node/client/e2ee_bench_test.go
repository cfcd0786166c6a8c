package client

import (
	"crypto/ed25519"
	"testing"

	"github.com/parley-p2p/parley/node/e2ee"
)

// The cost of a member's safety number in the encryption panel: computed
// (e2ee.SafetyNumber, both fingerprints) the first time a server is
// shown, then read from the cache.
func BenchmarkSafetyNumber(b *testing.B) {
	own, _, _ := ed25519.GenerateKey(nil)
	other, _, _ := ed25519.GenerateKey(nil)
	b.Run("computed", func(b *testing.B) {
		for b.Loop() {
			e2ee.SafetyNumber(own, other)
		}
	})
	b.Run("cached", func(b *testing.B) {
		safetyNumber(own, other)
		for b.Loop() {
			safetyNumber(own, other)
		}
	})
}
