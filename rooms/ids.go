package rooms

import (
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"strings"
)

// maxIDLength bounds user, room and event IDs, types and state keys (bytes).
const maxIDLength = 255

// hashIDLength is the length of an unpadded base64 SHA-256 digest: event IDs
// (room versions 4+) and v12 room IDs are a sigil followed by this many
// URL-safe base64 characters.
const hashIDLength = 43

// StateKey identifies an entry of room state: an event type and a state key.
type StateKey struct{ Type, StateKey string }

// NewStateKey returns a pointer to s, for ProtoEvent.StateKey.
func NewStateKey(s string) *string { return &s }

// ServerKey returns the ed25519 public key a server name stands for: parley
// server names are the 64-character lowercase hex of the node's public key.
func ServerKey(serverName string) (ed25519.PublicKey, error) {
	if len(serverName) != 2*ed25519.PublicKeySize || strings.ToLower(serverName) != serverName {
		return nil, fmt.Errorf("rooms: server name %q is not 64 lowercase hex characters", serverName)
	}
	b, err := hex.DecodeString(serverName)
	if err != nil {
		return nil, fmt.Errorf("rooms: server name %q is not hex: %w", serverName, err)
	}
	return ed25519.PublicKey(b), nil
}

// ServerName returns the server name of the node whose public key is pub.
func ServerName(pub ed25519.PublicKey) string { return hex.EncodeToString(pub) }

// ServerOf returns the server name part of a user ID ("@a:b" -> "b"), after
// checking that userID is a valid user ID.
func ServerOf(userID string) (string, error) {
	if !validUserID(userID) {
		return "", fmt.Errorf("rooms: invalid user ID %q", userID)
	}
	return userID[strings.IndexByte(userID, ':')+1:], nil
}

// validUserID checks the user ID grammar, accepting historical localparts
// (any printable ASCII but ':') as the spec asks servers to.
func validUserID(id string) bool {
	if len(id) > maxIDLength || len(id) < 4 || id[0] != '@' {
		return false
	}
	colon := strings.IndexByte(id, ':')
	if colon < 2 {
		return false
	}
	for i := 1; i < colon; i++ {
		if id[i] < 0x21 || id[i] > 0x7e {
			return false
		}
	}
	return validServerName(id[colon+1:])
}

// serverOf is ServerOf for IDs already validated; "" if there is no ':'.
func serverOf(userID string) string {
	if i := strings.IndexByte(userID, ':'); i >= 0 {
		return userID[i+1:]
	}
	return ""
}

// validServerName checks the server name grammar: a DNS name or IPv4 address
// ([A-Za-z0-9.-]) or a bracketed IPv6 literal, with an optional ":port".
func validServerName(s string) bool {
	if s == "" || len(s) > maxIDLength {
		return false
	}
	var host, port string
	hasPort := false
	if s[0] == '[' {
		end := strings.IndexByte(s, ']')
		if end < 2 {
			return false
		}
		for _, c := range s[1:end] {
			if !(isHex(c) || c == ':' || c == '.') {
				return false
			}
		}
		rest := s[end+1:]
		if rest != "" {
			if rest[0] != ':' {
				return false
			}
			port, hasPort = rest[1:], true
		}
	} else {
		host = s
		if i := strings.IndexByte(s, ':'); i >= 0 {
			host, port, hasPort = s[:i], s[i+1:], true
		}
		if host == "" {
			return false
		}
		for _, c := range host {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
				return false
			}
		}
	}
	if hasPort {
		if port == "" || len(port) > 5 {
			return false
		}
		for _, c := range port {
			if c < '0' || c > '9' {
				return false
			}
		}
	}
	return true
}

func isHex(c rune) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// validHashID reports whether id is sigil followed by 43 URL-safe unpadded
// base64 characters: the form of event IDs and of v12 room IDs.
func validHashID(id string, sigil byte) bool {
	if len(id) != 1+hashIDLength || id[0] != sigil {
		return false
	}
	for i := 1; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
