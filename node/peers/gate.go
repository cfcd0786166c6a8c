package peers

import (
	"encoding/json"
	"sync"
	"time"

	"github.com/parley-p2p/parley/node/dag"

	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/rooms"
)

// A stranger's node can sign events for any room whose ID it knows. Members
// must not relay, store or fetch for such events: a server with no user
// joined, invited or knocking in a room has nothing to say in it except a
// membership event the auth rules could allow (a join to a public or
// restricted room, a knock where knocking is allowed). roomGate answers
// "may this event's server speak in the room?" from the room's current
// state, cheaply enough for the pubsub validator.
const (
	// pendingTTL is how long a server whose membership event passed the
	// gate may speak before that event reaches the room's state: its join
	// and its first message arrive together, and the worker applies the
	// join a little later.
	pendingTTL = 2 * time.Minute
	maxPending = 256
)

type roomGate struct {
	mu       sync.Mutex
	stateID  string
	servers  map[string]bool // servers with a user joined, invited or knocking
	joinRule string
	pending  map[string]time.Time // server -> when its membership passed the gate
	// grew, if set, hears that the servers allowed may have grown (p2p's
	// members filter asks refused peers to announce themselves again). It
	// must not block: it runs under mu.
	grew func()
}

func newRoomGate() *roomGate {
	return &roomGate{pending: make(map[string]time.Time)}
}

// allowsServer reports whether a server may take part in the room's
// topics now: it has a user joined, invited or knocking, or its
// membership passed the gate a moment ago. p2p's members filter asks it
// on pubsub's event loop.
func (g *roomGate) allowsServer(ps *Peers, r *Room, server string, now time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.refresh(ps, r)
	return g.servers[server] || now.Sub(g.pending[server]) < pendingTTL
}

// refresh recomputes the servers from the room's state when it changed.
func (g *roomGate) refresh(ps *Peers, r *Room) {
	h := r.Head()
	state, id := h.State, h.StateID
	if id == g.stateID && g.servers != nil {
		return
	}
	g.stateID = id
	g.servers = ps.speakingServers(state)
	g.joinRule = ps.joinRule(state)
	if g.grew != nil {
		g.grew()
	}
}

// allows reports whether ev's server may speak in the room now. It
// changes nothing: what a membership event opens is noted by admitted,
// once its signature is verified.
func (g *roomGate) allows(ps *Peers, r *Room, ev *rooms.Event, now time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.refresh(ps, r)
	sender, err := rooms.ServerOf(ev.Sender())
	if err != nil {
		return false
	}
	ok := g.servers[sender] || now.Sub(g.pending[sender]) < pendingTTL
	if !ok && ev.Type() == "m.room.member" && ev.StateKey() != nil && *ev.StateKey() == ev.Sender() {
		switch ev.Membership() {
		case "join":
			ok = g.joinRule == "public" || g.joinRule == "restricted" || g.joinRule == "knock_restricted"
		case "knock":
			ok = g.joinRule == "knock" || g.joinRule == "knock_restricted"
		}
	}
	return ok
}

// admitted notes a verified event that passed allows: a membership event
// (a join or knock by its sender, or an invite by a member) makes its
// subject's server pending, so that its first messages are not refused
// before the worker applies the membership. Only a verified event may do
// so: a forged one, naming a member as sender, would open the gate to
// any server.
func (g *roomGate) admitted(ev *rooms.Event, now time.Time) {
	if ev.Type() != "m.room.member" || ev.StateKey() == nil {
		return
	}
	switch m := ev.Membership(); {
	case m == "invite":
	case (m == "join" || m == "knock") && *ev.StateKey() == ev.Sender():
	default:
		return
	}
	target, err := rooms.ServerOf(*ev.StateKey())
	if err != nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.servers[target] {
		g.addPending(target, now)
		if g.grew != nil {
			g.grew()
		}
	}
}

func (g *roomGate) addPending(server string, now time.Time) {
	if len(g.pending) >= maxPending {
		for s, t := range g.pending {
			if now.Sub(t) >= pendingTTL {
				delete(g.pending, s)
			}
		}
		if len(g.pending) >= maxPending {
			return
		}
	}
	g.pending[server] = now
}

// speakingServers lists the servers with a user joined, invited or
// knocking in a state.
func (ps *Peers) speakingServers(state store.StateMap) map[string]bool {
	out := make(map[string]bool)
	for s, id := range dag.MemberEvents(state) {
		if out[s] {
			continue
		}
		if m, ok := ps.dag.MembershipOf(id); ok && dag.Speaks(m) {
			out[s] = true
		}
	}
	return out
}

// joinRule reads m.room.join_rules from a state; without one a room is
// invite-only.
func (ps *Peers) joinRule(state store.StateMap) string {
	return ps.stateString(state, "m.room.join_rules", "join_rule", "invite")
}

// mayJoin reports whether the join rules of a state could let user join:
// the room is public; the user is invited (or already joined); or the
// room is restricted and the user is joined to one of the rooms it
// allows, as far as this node knows.
func (ps *Peers) mayJoin(state store.StateMap, user string) bool {
	if id, ok := state[rooms.StateKey{Type: "m.room.member", StateKey: user}]; ok {
		if i, err := ps.dag.Event(id); err == nil {
			switch i.Event.Membership() {
			case "invite", "join":
				return true
			case "ban":
				return false
			}
		}
	}
	switch ps.joinRule(state) {
	case "public":
		return true
	case "restricted", "knock_restricted":
		return ps.inAllowedRoom(state, user)
	}
	return false
}

// inAllowedRoom reports whether user is joined to a room that the join
// rules of a restricted room allow.
func (ps *Peers) inAllowedRoom(state store.StateMap, user string) bool {
	id, ok := state[rooms.StateKey{Type: "m.room.join_rules"}]
	if !ok {
		return false
	}
	i, err := ps.dag.Event(id)
	if err != nil {
		return false
	}
	var c struct {
		Allow []struct {
			Type   string `json:"type"`
			RoomID string `json:"room_id"`
		} `json:"allow"`
	}
	if json.Unmarshal(i.Event.Content(), &c) != nil {
		return false
	}
	for _, a := range c.Allow {
		if a.Type != "m.room_membership" {
			continue
		}
		if r := ps.Room(a.RoomID); r != nil && ps.Membership(r, user) == "join" {
			return true
		}
	}
	return false
}
