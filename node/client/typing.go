package client

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/parley-p2p/parley/errs"
	"github.com/parley-p2p/parley/node/peers"
	"github.com/parley-p2p/parley/webui"
)

// Typing: each room's set of typing users, local and remote, each with
// its expiry. A local change goes to the room's member nodes as this
// server's whole set for the room, each user with the time left
// (typingContent); a member replaces what it held of this server with
// it, and expires the users itself. A peer can make a node hold at most
// one entry per user of its server joined to a room the node is in.

// MaxTypingTimeout caps how long a typing notice lasts.
const MaxTypingTimeout = 30 * time.Second

// maxTypingPerServer bounds the users one typing request may name.
const maxTypingPerServer = 100

// typingContent is an m.typing ephemeral request's content.
type typingContent struct {
	Typing []typingUser `json:"typing"`
}

type typingUser struct {
	UserID  string `json:"user_id"`
	Timeout int64  `json:"timeout"` // ms left
}

type typingState struct {
	mu    sync.Mutex
	rooms map[string]*roomTyping
}

// roomTyping is one room's typing set. It is kept when the set empties,
// so that a /sync learns of that from changed: one per room the node is
// in, so bounded.
type roomTyping struct {
	users   map[string]time.Time // user -> expiry
	changed uint64               // ephemeral clock at the last change
	timer   *time.Timer          // fires at the earliest expiry
	sent    time.Time            // when this node's set was last sent
}

// SetTyping implements webui.Ephemeral: PUT /rooms/{roomId}/typing/{userId}.
func (api *API) SetTyping(_ context.Context, s *webui.Session, roomID, userID string, typing bool, timeout time.Duration) error {
	if userID != s.UserID {
		return errs.Forbiddenf("cannot set the typing state of another user")
	}
	if !api.peers.Joined(roomID, userID) {
		return errs.Forbiddenf("you are not joined to room %s", roomID)
	}
	if timeout < 0 {
		return errs.Invalidf("timeout must not be negative")
	}
	if timeout == 0 || timeout > MaxTypingTimeout {
		timeout = MaxTypingTimeout
	}
	var until time.Time
	if typing {
		until = time.Now().Add(timeout)
	}
	changed := api.setTyping(roomID, func(rt *roomTyping) {
		if typing {
			rt.users[userID] = until
		} else {
			delete(rt.users, userID)
		}
	})
	if api.typingSendDue(roomID, changed) {
		api.sendTyping(roomID)
	}
	return nil
}

// typingRefresh is how often a typing set that did not change is sent
// again (clients repeat "typing" every few seconds while the user types,
// to push its expiry on): members then expire a user at most this much
// before this node does.
const typingRefresh = 5 * time.Second

// typingSendDue reports whether the room's typing set should go to its
// members now: when it changed, or was last sent typingRefresh ago.
func (api *API) typingSendDue(roomID string, changed bool) bool {
	api.typing.mu.Lock()
	defer api.typing.mu.Unlock()
	rt, ok := api.typing.rooms[roomID]
	if !ok || (!changed && time.Since(rt.sent) < typingRefresh) {
		return false
	}
	rt.sent = time.Now()
	return true
}

// setTyping changes a room's typing set with edit and, if the set of
// users changed, ticks the clock and wakes the room's local members. It
// reports whether the set changed.
func (api *API) setTyping(roomID string, edit func(rt *roomTyping)) bool {
	ts := &api.typing
	ts.mu.Lock()
	if ts.rooms == nil {
		ts.rooms = map[string]*roomTyping{}
	}
	rt, ok := ts.rooms[roomID]
	if !ok {
		rt = &roomTyping{users: map[string]time.Time{}}
		ts.rooms[roomID] = rt
	}
	before := sortedKeys(rt.users)
	edit(rt)
	changed := !slices.Equal(before, sortedKeys(rt.users))
	if changed {
		rt.changed = api.eph.tick()
	}
	api.armTypingLocked(roomID, rt)
	ts.mu.Unlock()
	if changed {
		api.wakeRoom(roomID)
	}
	return changed
}

// armTypingLocked sets the room's timer for its earliest expiry (none
// when nobody types). Caller holds typing.mu.
func (api *API) armTypingLocked(roomID string, rt *roomTyping) {
	if rt.timer != nil {
		rt.timer.Stop()
		rt.timer = nil
	}
	if len(rt.users) == 0 {
		return
	}
	var first time.Time
	for _, t := range rt.users {
		if first.IsZero() || t.Before(first) {
			first = t
		}
	}
	rt.timer = time.AfterFunc(max(time.Until(first), 0)+time.Millisecond, func() { api.expireTyping(roomID) })
}

// expireTyping drops the room's typing users whose time is up.
func (api *API) expireTyping(roomID string) {
	now := time.Now()
	api.setTyping(roomID, func(rt *roomTyping) {
		for u, t := range rt.users {
			if !t.After(now) {
				delete(rt.users, u)
			}
		}
	})
}

// sendTyping sends this server's typing users of the room to its member
// nodes.
func (api *API) sendTyping(roomID string) {
	now := time.Now()
	var c typingContent
	api.typing.mu.Lock()
	if rt, ok := api.typing.rooms[roomID]; ok {
		for u, t := range rt.users {
			if _, local := api.peers.LocalUser(u); local && t.After(now) {
				c.Typing = append(c.Typing, typingUser{UserID: u, Timeout: max(t.Sub(now).Milliseconds(), 1)})
			}
		}
	}
	api.typing.mu.Unlock()
	if c.Typing == nil {
		c.Typing = []typingUser{}
	}
	slices.SortFunc(c.Typing, func(a, b typingUser) int { return strings.Compare(a.UserID, b.UserID) })
	body, err := json.Marshal(c)
	if err != nil {
		return
	}
	api.peers.SendEphemeral(roomID, "m.typing", "", body, nil)
}

// onRemoteTyping takes a member node's typing users of a room: every one
// must be of that server and joined, or nothing is taken.
func (api *API) onRemoteTyping(server, roomID string, content json.RawMessage) error {
	var c typingContent
	if err := json.Unmarshal(content, &c); err != nil {
		return fmt.Errorf("m.typing: %v", err)
	}
	if len(c.Typing) > maxTypingPerServer {
		return fmt.Errorf("m.typing names %d users, more than %d", len(c.Typing), maxTypingPerServer)
	}
	now := time.Now()
	until := map[string]time.Time{}
	for _, tu := range c.Typing {
		if !peers.OfServer(tu.UserID, server) {
			return fmt.Errorf("m.typing names %q, not a user of the sending server", tu.UserID)
		}
		if !api.peers.Joined(roomID, tu.UserID) {
			return fmt.Errorf("m.typing names %q, who is not joined", tu.UserID)
		}
		if tu.Timeout <= 0 || tu.Timeout > MaxTypingTimeout.Milliseconds() {
			return fmt.Errorf("m.typing timeout %d out of range", tu.Timeout)
		}
		until[tu.UserID] = now.Add(time.Duration(tu.Timeout) * time.Millisecond)
	}
	api.setTyping(roomID, func(rt *roomTyping) {
		for u := range rt.users {
			if peers.OfServer(u, server) {
				delete(rt.users, u)
			}
		}
		for u, t := range until {
			rt.users[u] = t
		}
	})
	return nil
}

// typingSince returns the m.typing events of the rooms the user is joined
// to whose typing set changed after since (for since 0: those with
// someone typing), by room.
func (api *API) typingSince(user string, since uint64) map[string]json.RawMessage {
	now := time.Now()
	type snap struct {
		id    string
		users []string
	}
	var snaps []snap
	api.typing.mu.Lock()
	for id, rt := range api.typing.rooms {
		if since != 0 && rt.changed <= since {
			continue
		}
		var users []string
		for u, t := range rt.users {
			if t.After(now) {
				users = append(users, u)
			}
		}
		if since == 0 && len(users) == 0 {
			continue
		}
		snaps = append(snaps, snap{id, users})
	}
	api.typing.mu.Unlock()
	out := map[string]json.RawMessage{}
	for _, sn := range snaps {
		if !api.peers.Joined(sn.id, user) {
			continue
		}
		users := slices.DeleteFunc(sn.users, func(u string) bool { return !api.peers.Joined(sn.id, u) })
		slices.Sort(users)
		if users == nil {
			users = []string{}
		}
		ev, err := json.Marshal(map[string]any{"type": "m.typing", "content": map[string]any{"user_ids": users}})
		if err == nil {
			out[sn.id] = ev
		}
	}
	return out
}

func sortedKeys(m map[string]time.Time) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
