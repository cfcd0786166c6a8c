// Package links is the format of parley's invite links: what a link
// encodes (Payload), how it is written and read (Encode, Parse), and the
// org.parley.link state event that records each link in its room
// (State). It does no I/O; the peer side (honouring a link) is in peers,
// the client side (making, listing, revoking, using) in client.
package links

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/parley-p2p/parley/rooms"
)

// An invite link is a capability to be invited to a room. Its secret's
// hash, expiry, use limit, use count and revocation live in the room's
// state as an org.parley.link event, so any member's node whose users may
// invite can honour it, whether or not the link's maker is online.

const (
	EventType = "org.parley.link"
	Scheme    = "parley:join/"
	// MaxVia is how many members' addresses a link carries.
	MaxVia = 3

	// MaxPerUser is how many live links one member may have in a
	// room, and MaxPerRoom how many a room may have: each is a state
	// entry every member's node stores and checks.
	MaxPerUser = 20
	MaxPerRoom = 200
)

// Payload is what a link encodes.
type Payload struct {
	V      int    `json:"v"`
	RoomID string `json:"room"`
	ID     string `json:"id"`
	Secret string `json:"s"`
	Expiry int64  `json:"exp,omitempty"` // ms since the epoch; 0: never
	Via    []Via  `json:"via"`
	// Maker is the user who made the link. Its server part is the
	// maker's key, so a link taken in person verifies that server.
	Maker string `json:"m,omitempty"`
	// Key is the room's secret (base64url, unpadded) and Epoch its epoch:
	// with them the holder can seal its request to the room's members
	// (link_invite), and read the room's metadata until the secret is
	// next rotated, the same trust as the link itself.
	Key   string `json:"k,omitempty"`
	Epoch uint32 `json:"e,omitempty"`
}

type Via struct {
	Peer  string   `json:"p"`
	Addrs []string `json:"a,omitempty"`
}

// State is the content of an org.parley.link state event. A link
// that ended (revoked, expired or used up) is replaced by a tombstone
// that says only why, so dead links do not weigh on the room's state.
type State struct {
	SecretHash string `json:"secret_hash"`
	ExpiresTS  int64  `json:"expires_ts,omitempty"`
	MaxUses    int    `json:"max_uses,omitempty"`
	Uses       int    `json:"uses"`
	Revoked    bool   `json:"revoked,omitempty"`
	CreatedBy  string `json:"created_by"`
	CreatedTS  int64  `json:"created_ts"`
	// Ended is a tombstone's reason; the other fields are then empty.
	Ended string `json:"ended,omitempty"`

	// Maker is the state event's sender (not part of the content).
	Maker string `json:"-"`
}

// Why a link ended.
const (
	Revoked = "revoked"
	Expired = "expired"
	UsedUp  = "used up"
)

// EndedAt says why a link can no longer be used, or "" while it is live.
func (st *State) EndedAt(now int64) string {
	switch {
	case st.Ended != "":
		return st.Ended
	case st.Revoked || st.SecretHash == "":
		return Revoked
	case st.ExpiresTS != 0 && st.ExpiresTS <= now:
		return Expired
	case st.MaxUses > 0 && st.Uses >= st.MaxUses:
		return UsedUp
	}
	return ""
}

// EndedMessage is what a joiner is told about an ended link.
func EndedMessage(why string) string {
	switch why {
	case Expired:
		return "this invite link has expired"
	case UsedUp:
		return "this invite link has been used up"
	}
	return "this invite link was revoked"
}

// Tombstone is the content that replaces an ended link.
func Tombstone(why string) json.RawMessage {
	c, _ := rooms.MarshalCanonical(map[string]string{"ended": why})
	return c
}

func HashSecret(s string) string {
	sum := sha256.Sum256([]byte(s))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// Encode renders a payload as a parley: link: base64url of the JSON
// plus a 4-byte checksum, so a link damaged in transit is caught before
// anything is sent.
func Encode(p Payload) string {
	b, _ := json.Marshal(p)
	sum := sha256.Sum256(b)
	return Scheme + base64.RawURLEncoding.EncodeToString(append(b, sum[:4]...))
}

// Parse accepts the parley: form, the http://.../#/join/ form, or the
// bare code, and checks its form and checksum.
func Parse(link string) (*Payload, error) {
	link = strings.TrimSpace(link)
	code := link
	switch {
	case strings.HasPrefix(link, Scheme):
		code = link[len(Scheme):]
	case strings.Contains(link, "#/join/"):
		code = link[strings.Index(link, "#/join/")+len("#/join/"):]
	}
	raw, err := base64.RawURLEncoding.DecodeString(code)
	if err != nil || len(raw) < 5 {
		return nil, fmt.Errorf("this is not a parley invite link (or it was cut short)")
	}
	body, check := raw[:len(raw)-4], raw[len(raw)-4:]
	sum := sha256.Sum256(body)
	if !bytes.Equal(sum[:4], check) {
		return nil, fmt.Errorf("this invite link is damaged: its checksum does not match (was it cut short or changed?)")
	}
	var p Payload
	if err := json.Unmarshal(body, &p); err != nil || p.V != 1 {
		return nil, fmt.Errorf("this invite link has an unknown format")
	}
	if !strings.HasPrefix(p.RoomID, "!") || p.ID == "" || p.Secret == "" || len(p.Via) == 0 || len(p.Via) > 10 {
		return nil, fmt.Errorf("this invite link is incomplete")
	}
	return &p, nil
}
