package e2ee

import (
	"crypto/ed25519"
	"crypto/sha512"
	"fmt"
	"strings"
)

// fingerprint gives 30 decimal digits for one node's server key:
// SHA-512 iterated 5,200 times (as Signal's safety numbers do, for more
// than 112 bits of work against a search for a colliding key), cut into
// six 5-byte chunks of 5 digits each.
func fingerprint(pub ed25519.PublicKey) string {
	h := append([]byte("parley-safety-v1\x00"), pub...)
	for range 5200 {
		s := sha512.Sum512(append(h, pub...))
		h = s[:]
	}
	var b strings.Builder
	for i := range 6 {
		c := h[5*i : 5*i+5]
		n := uint64(c[0])<<32 | uint64(c[1])<<24 | uint64(c[2])<<16 | uint64(c[3])<<8 | uint64(c[4])
		fmt.Fprintf(&b, "%05d", n%100000)
	}
	return b.String()
}

// SafetyNumber is the 60-digit number two nodes' users compare to know
// they talk to each other's keys: the two fingerprints in sorted order,
// so both sides see the same number. Group it in fives for display.
func SafetyNumber(a, b ed25519.PublicKey) string {
	fa, fb := fingerprint(a), fingerprint(b)
	if fb < fa {
		fa, fb = fb, fa
	}
	return fa + fb
}
