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

// Presence: each user's online/unavailable/offline and status message,
// held in memory. A local change goes to the nodes that share a room with
// the user, once per node, sealed under one room the two share; a node
// takes a user's presence only from the user's own server, and only for a
// user joined to the room it came under. With Config.HidePresence the
// node neither sends its users' presence nor shows others' (GET of
// another user's answers 403, as the spec allows for "not allowed to see
// their presence"); its users still see their own.

// MaxStatusMsg bounds a status message.
const MaxStatusMsg = 1024

// maxPresenceUsers bounds the users whose presence the node holds: every
// one shares a room with a local user, so a node reaches it only in rooms
// of many thousands of members; beyond it, further remote users are not
// taken.
const maxPresenceUsers = 20000

// DefaultPresenceIdle is how long after their last activity (a /sync,
// or setting their presence online) an online local user counts as
// currently active; then their presence turns "unavailable" by itself
// (idle), and back to "online" at their next /sync.
const DefaultPresenceIdle = 5 * time.Minute

// presenceIdle is Config.PresenceIdle or its default.
func (api *API) presenceIdle() time.Duration {
	if api.cfg.PresenceIdle > 0 {
		return api.cfg.PresenceIdle
	}
	return DefaultPresenceIdle
}

type presenceState struct {
	mu        sync.Mutex
	users     map[string]*presenceRec
	announced map[string]*announced // local users only
}

// announced is what nodes a local user's presence went to: a node that
// comes to share a room with the user (its user joined one, or the user
// joined one of its) is sent the user's presence at the user's next
// /sync (announcePresence), without waiting for a change.
type announced struct {
	mu     sync.Mutex
	seen   map[string]string // room -> its state's ID when last looked at
	sentTo map[string]bool   // servers sent the user's presence
}

type presenceRec struct {
	presence   string
	statusMsg  string
	lastActive time.Time
	changed    uint64 // ephemeral clock at the last change
	// idle: a local user's "unavailable" came from the idle timer, not
	// from the user, and their next /sync undoes it.
	idle      bool
	idleTimer *time.Timer // a local online user's, at lastActive + presenceIdle
}

// presenceContent is an m.presence ephemeral request's content.
type presenceContent struct {
	UserID          string `json:"user_id,omitempty"` // left out of the m.presence event's content
	Presence        string `json:"presence"`
	StatusMsg       string `json:"status_msg,omitempty"`
	LastActiveAgo   int64  `json:"last_active_ago,omitempty"`
	CurrentlyActive bool   `json:"currently_active,omitempty"`
}

func validPresence(p string) bool {
	return p == "online" || p == "unavailable" || p == "offline"
}

// SetPresence implements webui.Ephemeral: PUT /presence/{userId}/status.
func (api *API) SetPresence(_ context.Context, s *webui.Session, userID, presence string, statusMsg *string) error {
	if userID != s.UserID {
		return errs.Forbiddenf("cannot set the presence of another user")
	}
	if !validPresence(presence) {
		return errs.Invalidf("presence must be online, unavailable or offline, not %q", presence)
	}
	if statusMsg != nil && len(*statusMsg) > MaxStatusMsg {
		return errs.Invalidf("status_msg is longer than %d bytes", MaxStatusMsg)
	}
	api.updatePresence(userID, func(r *presenceRec) {
		r.presence, r.idle = presence, false
		if statusMsg != nil {
			r.statusMsg = *statusMsg
		}
		if presence == "online" {
			r.lastActive = time.Now()
		}
	})
	return nil
}

// syncSetPresence applies /sync's set_presence: "online" (the default)
// marks an offline user online, "unavailable" an online or offline one
// unavailable, "offline" changes nothing. A presence the user set
// otherwise stays. Every /sync but an "offline" one counts as activity.
func (api *API) syncSetPresence(user, set string) {
	if set == "offline" {
		return
	}
	if set == "" {
		set = "online"
	}
	api.updatePresence(user, func(r *presenceRec) {
		switch {
		case set == "online" && (r.presence == "offline" || r.idle):
			r.presence, r.idle = "online", false
		case set == "unavailable" && (r.presence != "unavailable" || r.idle):
			r.presence, r.idle = "unavailable", false
		}
		r.lastActive = time.Now()
	})
	api.announcePresence(user)
}

// updatePresence changes a local user's presence with edit; if its
// presence or status changed, it ticks the clock, wakes the /syncs of
// the local users sharing a room with the user, and sends it to the
// nodes that share one.
func (api *API) updatePresence(user string, edit func(r *presenceRec)) {
	ps := &api.presence
	ps.mu.Lock()
	if ps.users == nil {
		ps.users = map[string]*presenceRec{}
	}
	r, ok := ps.users[user]
	if !ok {
		r = &presenceRec{presence: "offline"}
		ps.users[user] = r
	}
	before := *r
	edit(r)
	changed := before.presence != r.presence || before.statusMsg != r.statusMsg
	if changed {
		r.changed = api.eph.tick()
	}
	api.armIdleLocked(user, r)
	content := presenceContentOf(user, r, time.Now(), api.presenceIdle())
	ps.mu.Unlock()
	if !changed {
		return
	}
	api.wakeNeighbours(user)
	if api.cfg.HidePresence {
		return
	}
	body, err := json.Marshal(content)
	if err != nil {
		return
	}
	// Once per node, under the first room (in room ID order) the two
	// share.
	a := api.announcedOf(user)
	a.mu.Lock()
	defer a.mu.Unlock()
	sent := map[string]bool{}
	rooms := api.joinedRoomIDs(user)
	slices.Sort(rooms)
	for _, roomID := range rooms {
		var servers []string
		for _, s := range api.peers.JoinedServers(roomID) {
			if !api.peers.ConnectedTo(s) {
				delete(a.seen, roomID) // announcePresence tries again
			}
			if !sent[s] {
				sent[s] = true
				servers = append(servers, s)
			}
		}
		if len(servers) > 0 {
			api.peers.SendEphemeral(roomID, "m.presence", presenceKey(user, servers), body, servers)
		}
	}
	for s := range sent {
		if api.peers.ConnectedTo(s) {
			a.sentTo[s] = true
		}
	}
}

// announcedOf returns a local user's announced record.
func (api *API) announcedOf(user string) *announced {
	api.presence.mu.Lock()
	defer api.presence.mu.Unlock()
	if api.presence.announced == nil {
		api.presence.announced = map[string]*announced{}
	}
	a, ok := api.presence.announced[user]
	if !ok {
		a = &announced{seen: map[string]string{}, sentTo: map[string]bool{}}
		api.presence.announced[user] = a
	}
	return a
}

// announcePresence sends a local user's presence to the connected nodes
// that share a room with the user and have not had it yet. It looks only
// at the rooms whose state changed since it last did, so a /sync costs
// one look at each room's state ID. A room with a node it could not
// reach is looked at again next time.
func (api *API) announcePresence(user string) {
	if api.cfg.HidePresence {
		return
	}
	a := api.announcedOf(user)
	if !a.mu.TryLock() {
		return // another /sync of the user is at it
	}
	defer a.mu.Unlock()
	var body []byte
	for _, r := range api.dag.Rooms() {
		sid := r.Head().StateID
		if a.seen[r.ID] == sid {
			continue
		}
		a.seen[r.ID] = sid
		if !api.peers.Joined(r.ID, user) {
			continue
		}
		var fresh []string
		for _, s := range api.peers.JoinedServers(r.ID) {
			if a.sentTo[s] {
				continue
			}
			if !api.peers.ConnectedTo(s) {
				delete(a.seen, r.ID) // look again at the next /sync
				continue
			}
			fresh = append(fresh, s)
		}
		if len(fresh) == 0 {
			continue
		}
		if body == nil {
			api.presence.mu.Lock()
			rec, ok := api.presence.users[user]
			var c presenceContent
			if ok {
				c = presenceContentOf(user, rec, time.Now(), api.presenceIdle())
			}
			api.presence.mu.Unlock()
			if !ok {
				return
			}
			var err error
			if body, err = json.Marshal(c); err != nil {
				return
			}
		}
		api.peers.SendEphemeral(r.ID, "m.presence", presenceKey(user, fresh), body, fresh)
		for _, s := range fresh {
			a.sentTo[s] = true
		}
	}
}

func presenceContentOf(user string, r *presenceRec, now time.Time, idle time.Duration) presenceContent {
	c := presenceContent{UserID: user, Presence: r.presence, StatusMsg: r.statusMsg}
	if !r.lastActive.IsZero() {
		c.LastActiveAgo = max(now.Sub(r.lastActive).Milliseconds(), 0)
		c.CurrentlyActive = r.presence == "online" && now.Sub(r.lastActive) < idle
	}
	return c
}

// armIdleLocked sets a local user's idle timer for presenceIdle after
// their last activity while they are online, and stops it otherwise.
// Caller holds presence.mu.
func (api *API) armIdleLocked(user string, r *presenceRec) {
	if r.presence != "online" || r.lastActive.IsZero() {
		if r.idleTimer != nil {
			r.idleTimer.Stop()
		}
		return
	}
	wait := time.Until(r.lastActive.Add(api.presenceIdle()))
	if r.idleTimer == nil {
		r.idleTimer = time.AfterFunc(wait, func() { api.goIdle(user) })
		return
	}
	r.idleTimer.Reset(wait)
}

// goIdle turns an online local user with no activity for presenceIdle
// "unavailable" (told to their neighbours as any change is).
func (api *API) goIdle(user string) {
	idle := api.presenceIdle()
	api.updatePresence(user, func(r *presenceRec) {
		if r.presence == "online" && time.Since(r.lastActive) >= idle {
			r.presence, r.idle = "unavailable", true
		}
	})
}

// wakeNeighbours wakes the /sync of the local users sharing a room with
// the user, and the user's own.
func (api *API) wakeNeighbours(user string) {
	users := []string{}
	if _, local := api.peers.LocalUser(user); local {
		users = append(users, user)
	}
	for _, roomID := range api.joinedRoomIDs(user) {
		users = append(users, api.localJoined(roomID)...)
	}
	api.notify.wake(users...)
}

// onRemotePresence takes a user's presence from the user's server, sent
// under a room the user is joined to.
func (api *API) onRemotePresence(server, roomID string, content json.RawMessage) error {
	var c presenceContent
	if err := json.Unmarshal(content, &c); err != nil {
		return fmt.Errorf("m.presence: %v", err)
	}
	if !peers.OfServer(c.UserID, server) {
		return fmt.Errorf("m.presence of %q, not a user of the sending server", c.UserID)
	}
	if !api.peers.Joined(roomID, c.UserID) {
		return fmt.Errorf("m.presence of %q, who is not joined", c.UserID)
	}
	if !validPresence(c.Presence) || len(c.StatusMsg) > MaxStatusMsg || c.LastActiveAgo < 0 {
		return fmt.Errorf("m.presence: bad presence, status or last_active_ago")
	}
	if api.cfg.HidePresence {
		return nil // taken, and dropped: this node shows no one's
	}
	now := time.Now()
	ps := &api.presence
	ps.mu.Lock()
	if ps.users == nil {
		ps.users = map[string]*presenceRec{}
	}
	r, ok := ps.users[c.UserID]
	if !ok {
		if len(ps.users) >= maxPresenceUsers {
			ps.mu.Unlock()
			return fmt.Errorf("m.presence: this node holds the presence of too many users")
		}
		r = &presenceRec{}
		ps.users[c.UserID] = r
	}
	changed := r.presence != c.Presence || r.statusMsg != c.StatusMsg
	r.presence, r.statusMsg = c.Presence, c.StatusMsg
	r.lastActive = time.Time{}
	if c.LastActiveAgo > 0 || c.CurrentlyActive {
		r.lastActive = now.Add(-time.Duration(min(c.LastActiveAgo, int64(365*24*time.Hour/time.Millisecond))) * time.Millisecond)
	}
	if changed {
		r.changed = api.eph.tick()
	}
	ps.mu.Unlock()
	if changed {
		api.wakeNeighbours(c.UserID)
	}
	return nil
}

// Presence implements webui.Ephemeral: GET /presence/{userId}/status. A
// user sees their own presence, and that of users they share a room
// with, unless the node shows none (403).
func (api *API) Presence(_ context.Context, s *webui.Session, userID string) (*webui.PresenceStatus, error) {
	if userID != s.UserID {
		if api.cfg.HidePresence {
			return nil, errs.Forbiddenf("this node does not show presence")
		}
		if !api.sharesRoom(s.UserID, userID) {
			return nil, errs.Forbiddenf("you share no room with %s", userID)
		}
	}
	api.presence.mu.Lock()
	defer api.presence.mu.Unlock()
	r, ok := api.presence.users[userID]
	if !ok {
		return &webui.PresenceStatus{Presence: "offline"}, nil
	}
	c := presenceContentOf(userID, r, time.Now(), api.presenceIdle())
	out := &webui.PresenceStatus{Presence: c.Presence, LastActiveAgo: c.LastActiveAgo, CurrentlyActive: c.CurrentlyActive}
	if r.statusMsg != "" {
		out.StatusMsg = &r.statusMsg
	}
	return out, nil
}

// sharesRoom reports whether both users are joined to one room.
func (api *API) sharesRoom(a, b string) bool {
	for _, roomID := range api.joinedRoomIDs(a) {
		if api.peers.Joined(roomID, b) {
			return true
		}
	}
	return false
}

// presenceSince returns the m.presence events of the users whose presence
// changed after since (for since 0: every user's held), of those the user
// shares a room with, and the user's own.
func (api *API) presenceSince(user string, since uint64) []json.RawMessage {
	now := time.Now()
	var contents []presenceContent
	api.presence.mu.Lock()
	for u, r := range api.presence.users {
		if since != 0 && r.changed <= since {
			continue
		}
		contents = append(contents, presenceContentOf(u, r, now, api.presenceIdle()))
	}
	api.presence.mu.Unlock()
	if len(contents) == 0 {
		return nil
	}
	joined := api.joinedRoomIDs(user)
	var out []json.RawMessage
	slices.SortFunc(contents, func(a, b presenceContent) int {
		switch {
		case a.UserID < b.UserID:
			return -1
		case a.UserID > b.UserID:
			return 1
		}
		return 0
	})
	// A few users (an incremental sync) are looked up room by room; all
	// of them (an initial sync), or many, in the set of the user's rooms'
	// members, read once.
	shares := func(other string) bool {
		return slices.ContainsFunc(joined, func(id string) bool { return api.peers.Joined(id, other) })
	}
	if since == 0 || len(contents) > 4 {
		members := api.joinedUsersOf(joined)
		shares = func(other string) bool { return members[other] }
	}
	for _, c := range contents {
		if c.UserID != user && (api.cfg.HidePresence || !shares(c.UserID)) {
			continue
		}
		sender := c.UserID
		c.UserID = ""
		ev, err := json.Marshal(map[string]any{"type": "m.presence", "sender": sender, "content": c})
		if err == nil {
			out = append(out, ev)
		}
	}
	return out
}

// joinedUsersOf is the set of users joined to any of the rooms.
func (api *API) joinedUsersOf(roomIDs []string) map[string]bool {
	out := map[string]bool{}
	for _, id := range roomIDs {
		r := api.dag.Room(id)
		if r == nil {
			continue
		}
		for k, ev := range r.State() {
			if k.Type != "m.room.member" || out[k.StateKey] {
				continue
			}
			if m, ok := api.dag.MembershipOf(ev); ok && m == "join" {
				out[k.StateKey] = true
			}
		}
	}
	return out
}

// presenceKey is what a presence send replaces while waiting: one of the
// same user to the same nodes.
func presenceKey(user string, servers []string) string {
	return user + "\x00" + strings.Join(servers, ",")
}
