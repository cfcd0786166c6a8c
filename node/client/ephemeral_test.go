package client

import (
	"strings"
	"testing"
)

// TestSyncTokensEphemeralPart: a token names a point of this run's
// ephemeral clock only if it carries this run's boot and a point already
// reached; anything else asks for the current sets (0).
func TestSyncTokensEphemeralPart(t *testing.T) {
	c := newEphClock()
	for range 5 {
		c.tick()
	}
	other := newEphClock()
	cases := []struct {
		name string
		tok  string
		want uint64
	}{
		{"a token of this run names its point", c.syncToken(7, 3), 3},
		{"a token of the latest point names it", c.syncToken(7, 5), 5},
		{"a token from before ephemeral data asks for the current sets", token(7), 0},
		{"a token of another run asks for the current sets", other.syncToken(7, 3), 0},
		{"a token from the future asks for the current sets", c.syncToken(7, 6), 0},
		{"a token with a bad point asks for the current sets", token(7) + "_" + c.boot + ".x", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := c.since(tc.tok); got != tc.want {
				t.Fatalf("since(%q) = %d, want %d", tc.tok, got, tc.want)
			}
		})
	}
}

// TestSyncTokensParse: the store position is read from tokens with and
// without the ephemeral part; a malformed part makes the token invalid.
func TestSyncTokensParse(t *testing.T) {
	c := newEphClock()
	for _, tok := range []string{token(42), c.syncToken(42, 0), c.syncToken(42, 9)} {
		if p, ok := parseToken(tok); !ok || p != 42 {
			t.Errorf("parseToken(%q) = %d, %v; want 42", tok, p, ok)
		}
	}
	for _, tok := range []string{"s42_", "s42_x", "s42_.1", "s42_ab.", "s42_" + strings.Repeat("a", 17) + ".1", "t42_ab.1"} {
		if _, ok := parseToken(tok); ok {
			t.Errorf("parseToken(%q) took a malformed token", tok)
		}
	}
}
