package client

import (
	"encoding/json"

	"github.com/parley-p2p/parley/node/dag"
	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/rooms"
)

// The spec's history visibility (client-server API, "History
// visibility"), for one user and one read: who may see an event depends
// on the room's m.room.history_visibility and the user's membership,
// both at the event.

// viewer is one user reading a room's events: what it knows of them, and
// the state snapshots it has read, by ID, so that the many events that
// share a state read it once.
type viewer struct {
	api  *API
	t    *store.Txn // nil: through the engine
	user string
	// joinedSince: the user is in the room now, or left it after having
	// been joined: a "shared" event is theirs to see (the readable range
	// up to a leave is the caller's to bound).
	joinedSince bool
	snaps       map[string]snapView
}

// snapView is what a viewer reads of one state snapshot.
type snapView struct {
	visibility, membership string
}

// newViewer starts a read for user of room r, whose own member event is
// memberID ("" if they have none).
func (api *API) newViewer(t *store.Txn, user, memberID string) *viewer {
	v := &viewer{api: api, t: t, user: user, snaps: map[string]snapView{}}
	if memberID == "" {
		return v
	}
	i, err := api.dag.Event(memberID)
	if err != nil {
		return v
	}
	switch i.Event.Membership() {
	case "join":
		v.joinedSince = true
	case "leave", "ban":
		// Left after having been joined: the state before the leave.
		if i.Rec.StateBefore != "" {
			if m, err := api.dag.Snapshot(i.Rec.StateBefore); err == nil {
				if id, ok := m[rooms.StateKey{Type: "m.room.member", StateKey: user}]; ok {
					v.joinedSince = api.membership(t, id) == "join"
				}
			}
		}
	}
	return v
}

// at reads the history visibility and the user's membership in the state
// after an event, by its record. History fetched from other nodes
// (backfill) has no state here: it was served because this node's users
// may see it, as "shared" history, from before any local user joined.
func (v *viewer) at(rec *store.EventRecord) snapView {
	id := rec.StateAfter
	if id == "" {
		return snapView{visibility: "shared", membership: "leave"}
	}
	if sv, ok := v.snaps[id]; ok {
		return sv
	}
	sv := snapView{visibility: "shared", membership: "leave"}
	if m, err := v.api.dag.Snapshot(id); err == nil {
		if hid, ok := m[rooms.StateKey{Type: "m.room.history_visibility"}]; ok {
			sv.visibility = historyVisibility(v.api, hid)
		}
		if mid, ok := m[rooms.StateKey{Type: "m.room.member", StateKey: v.user}]; ok {
			if ms := v.api.membership(v.t, mid); ms != "" {
				sv.membership = ms
			}
		}
	}
	if len(v.snaps) < 4096 { // a bound for a read over a long history
		v.snaps[id] = sv
	}
	return sv
}

// sees applies the spec's rules to an event at sv.
func (v *viewer) sees(sv snapView) bool {
	switch {
	case sv.visibility == "world_readable", sv.membership == "join":
		return true
	case sv.visibility == "shared":
		return v.joinedSince
	case sv.visibility == "invited":
		return sv.membership == "invite"
	}
	return false
}

// historyVisibility reads an m.room.history_visibility event's value;
// "shared", the spec's default, if it has none it knows.
func historyVisibility(api *API, id string) string {
	i, err := api.dag.Event(id)
	if err != nil {
		return "shared"
	}
	var c struct {
		V string `json:"history_visibility"`
	}
	json.Unmarshal(i.Event.Content(), &c)
	switch c.V {
	case "world_readable", "shared", "invited", "joined":
		return c.V
	}
	return "shared"
}

// worldReadable reports whether a room's current state makes it readable
// by anyone.
func (api *API) worldReadable(r *dag.Room) bool {
	id, ok := r.State()[rooms.StateKey{Type: "m.room.history_visibility"}]
	return ok && historyVisibility(api, id) == "world_readable"
}
