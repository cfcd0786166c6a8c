package client

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/parley-p2p/parley/webui"
)

// Ephemeral data (typing, presence; receipts next) is held in memory, not
// in the store, so a /sync token carries a second position besides the
// store's: the ephemeral clock's, which counts changes to that data since
// the node started. A token is "s<pos>_<boot>.<seq>": boot names the run
// of the node that made the token, so a token from before a restart (or
// from another node) is not mistaken for a point of this run's clock; its
// holder is sent the current sets, as at an initial sync. A token without
// the second part (from before ephemeral data existed) is taken the same
// way.

// ephClock numbers the changes to ephemeral data in this run of the node.
type ephClock struct {
	boot string
	seq  atomic.Uint64
}

func newEphClock() *ephClock {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail
	}
	return &ephClock{boot: hex.EncodeToString(b[:])}
}

// tick records a change and returns its number.
func (c *ephClock) tick() uint64 { return c.seq.Add(1) }

// now is the number of the latest change.
func (c *ephClock) now() uint64 { return c.seq.Load() }

// syncToken is a /sync token for a store position and a point of the
// ephemeral clock.
func (c *ephClock) syncToken(pos, eph uint64) string {
	return token(pos) + "_" + c.boot + "." + strconv.FormatUint(eph, 10)
}

// since reads the ephemeral part of a /sync token: the point of this
// run's clock it names, or 0 (send the current sets) when it names none
// of this run's points (no part, another run's, or one still to come).
func (c *ephClock) since(tok string) uint64 {
	_, rest, ok := strings.Cut(tok, "_")
	if !ok {
		return 0
	}
	boot, seq, ok := strings.Cut(rest, ".")
	if !ok || boot != c.boot {
		return 0
	}
	n, err := strconv.ParseUint(seq, 10, 64)
	if err != nil || n > c.now() {
		return 0
	}
	return n
}

// validEphPart reports whether the part of a /sync token after "_" is
// well formed (whatever run it names).
func validEphPart(rest string) bool {
	boot, seq, ok := strings.Cut(rest, ".")
	if !ok || len(boot) == 0 || len(boot) > 16 {
		return false
	}
	_, err := strconv.ParseUint(seq, 10, 64)
	return err == nil
}

// syncEphemeral adds to a /sync answer the ephemeral data that changed
// after the clock's point since (all of it when since is 0): each joined
// room's m.typing, and the m.presence of users sharing a room with the
// user. It reports whether there was anything new. (Local receipts go in
// the same rooms' ephemeral sections, from their own function.)
func (api *API) syncEphemeral(s *webui.Session, resp *webui.SyncResponse, since uint64, f *webui.Filter) bool {
	news := false
	for roomID, ev := range api.typingSince(s.UserID, since) {
		if f.Room.Rooms != nil && !slices.Contains(f.Room.Rooms, roomID) {
			continue
		}
		if !f.Room.Ephemeral.Allows("m.typing", "") {
			continue
		}
		jr := joinedEntry(resp, roomID)
		jr.Ephemeral.Events = append(jr.Ephemeral.Events, ev)
		news = true
	}
	for _, ev := range api.presenceSince(s.UserID, since) {
		if f.Presence.Allows("m.presence", "") {
			resp.Presence.Events = append(resp.Presence.Events, ev)
			news = true
		}
	}
	return news
}

// joinedEntry returns the joined room's section of a /sync answer, adding
// an empty one (nothing in its timeline) for a room with ephemeral news
// only.
func joinedEntry(resp *webui.SyncResponse, roomID string) *webui.JoinedRoom {
	if jr, ok := resp.Rooms.Join[roomID]; ok {
		return jr
	}
	jr := emptyJoined()
	resp.Rooms.Join[roomID] = jr
	return jr
}

// emptyJoined is a joined room's /sync section with nothing in it, for a
// room whose only news is not in its timeline (ephemeral or user data).
func emptyJoined() *webui.JoinedRoom {
	return &webui.JoinedRoom{
		Timeline:            webui.Timeline{Events: []webui.ClientEvent{}},
		State:               webui.StateList{Events: []webui.ClientEvent{}},
		Ephemeral:           webui.EventList{Events: []json.RawMessage{}},
		AccountData:         webui.EventList{Events: []json.RawMessage{}},
		Summary:             map[string]any{},
		UnreadNotifications: map[string]int{"highlight_count": 0, "notification_count": 0},
	}
}

// localJoined lists the room's local users who are joined.
func (api *API) localJoined(roomID string) []string {
	r := api.dag.Room(roomID)
	if r == nil {
		return nil
	}
	var out []string
	for k, id := range r.State() {
		if k.Type != "m.room.member" {
			continue
		}
		if _, local := api.peers.LocalUser(k.StateKey); !local {
			continue
		}
		if m, ok := api.dag.MembershipOf(id); ok && m == "join" {
			out = append(out, k.StateKey)
		}
	}
	return out
}

// joinedRoomIDs lists the rooms the user is joined to, as this node sees
// them.
func (api *API) joinedRoomIDs(user string) []string {
	var out []string
	for _, r := range api.dag.Rooms() {
		if api.peers.Joined(r.ID, user) {
			out = append(out, r.ID)
		}
	}
	return out
}
