package client

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/parley-p2p/parley/errs"
	"github.com/parley-p2p/parley/node/dag"

	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/rooms"
	"github.com/parley-p2p/parley/webui"
)

// defaultTimelineLimit is the timeline size when the filter sets none.
const defaultTimelineLimit = 20

// Sync implements webui.Backend. It answers at once when anything is new
// after since; otherwise it waits for the next commit (woken by the
// store, not by polling) until the timeout.
func (api *API) Sync(ctx context.Context, s *webui.Session, req webui.SyncRequest) (*webui.SyncResponse, error) {
	var since uint64
	if req.Since != "" {
		p, ok := parseToken(req.Since)
		if !ok {
			return nil, errs.Invalidf("invalid since token %q", req.Since)
		}
		since = p
	}
	sinceEph := api.eph.since(req.Since)
	api.syncSetPresence(s.UserID, req.SetPresence)
	var f webui.Filter
	if req.Filter != nil {
		f = *req.Filter
	}
	deadline := time.Now().Add(time.Duration(req.Timeout) * time.Millisecond)
	var timer *time.Timer
	for {
		wake := api.notify.wait(s.UserID)
		pos := api.store.Pos()
		if since > pos {
			// A token from the future (another node's, or a wiped store):
			// treat it as a fresh start rather than waiting forever.
			since, sinceEph = 0, 0
		}
		ephNow := api.eph.now()
		resp, news, err := api.buildSync(s, since, pos, req)
		if err != nil {
			return nil, err
		}
		// Typing and presence (ephemeral.go): not in the store, so they
		// have their own point in the token.
		if api.syncEphemeral(s, resp, sinceEph, &f) {
			news = true
		}
		resp.NextBatch = api.eph.syncToken(pos, ephNow)
		remaining := time.Until(deadline)
		if news || since == 0 || req.FullState || remaining <= 0 {
			return resp, nil
		}
		if timer == nil {
			timer = time.NewTimer(remaining)
			defer timer.Stop()
		}
		select {
		case <-wake:
		case <-timer.C:
			deadline = time.Now()
		case <-ctx.Done():
			return resp, nil
		}
	}
}

// buildSync assembles what changed for the user in (since, pos].
func (api *API) buildSync(s *webui.Session, since, pos uint64, req webui.SyncRequest) (*webui.SyncResponse, bool, error) {
	api.syncBuilds.Add(1)
	resp := &webui.SyncResponse{
		NextBatch: token(pos),
		Rooms: webui.SyncRooms{
			Join: map[string]*webui.JoinedRoom{}, Invite: map[string]*webui.InvitedRoom{},
			Leave: map[string]*webui.LeftRoom{}, Knock: map[string]any{},
		},
		AccountData: webui.EventList{Events: []json.RawMessage{}},
		Presence:    webui.EventList{Events: []json.RawMessage{}},
		ToDevice:    webui.EventList{Events: []json.RawMessage{}},
		DeviceLists: map[string]any{"changed": []string{}, "left": []string{}},
		OTKCount:    map[string]int{},
	}
	var f webui.Filter
	if req.Filter != nil {
		f = *req.Filter
	}
	api.lazy.begin(s, since) // lazyload.go
	limit := f.Room.Timeline.Limit
	if !f.Room.Timeline.HasLimit {
		limit = defaultTimelineLimit
	}
	news := false
	var recs []*store.RoomRecord
	err := api.store.View(func(t *store.Txn) error {
		var err error
		recs, err = api.changedRooms(t, since)
		return err
	})
	if err != nil {
		return nil, false, err
	}
	if f.Room.Rooms != nil {
		recs = slices.DeleteFunc(recs, func(rec *store.RoomRecord) bool { return !slices.Contains(f.Room.Rooms, rec.ID) })
	}
	results := make([]roomSync, len(recs))
	err = api.eachRoom(len(recs), func(t *store.Txn, k int) error {
		var err error
		results[k], err = api.syncRoom(t, s, recs[k], since, pos, limit, &f, req.FullState)
		return err
	})
	if err != nil {
		return nil, false, err
	}
	// covered: rooms whose stored state already shows the user as joined
	// or invited; an invite record for any other room (one this node
	// never held, or one every local user left) is shown from the record.
	covered := map[string]bool{}
	for k, res := range results {
		id := recs[k].ID
		covered[id] = res.covered
		news = news || res.news
		switch {
		case res.join != nil:
			resp.Rooms.Join[id] = res.join
		case res.invite != nil:
			resp.Rooms.Invite[id] = res.invite
		case res.knock != nil:
			resp.Rooms.Knock[id] = res.knock
		case res.leave != nil:
			resp.Rooms.Leave[id] = res.leave
		}
	}
	err = api.store.View(func(t *store.Txn) error {
		var err error
		// An incremental sync reads only the invites that changed since
		// its token; an initial one reads them all (a bounded number).
		var invites []*store.Invite
		if since == 0 {
			invites, err = t.Invites(s.UserID)
		} else {
			invites, err = t.InvitesSince(s.UserID, since)
		}
		if err != nil {
			return err
		}
		for _, inv := range invites {
			if f.Room.Rooms != nil && !slices.Contains(f.Room.Rooms, inv.RoomID) {
				continue
			}
			if inv.Left {
				if _, shown := resp.Rooms.Leave[inv.RoomID]; since != 0 && !api.covers(covered, inv.RoomID, s.UserID) && !shown {
					// Declined: show it as left so clients drop it.
					resp.Rooms.Leave[inv.RoomID] = &webui.LeftRoom{
						Timeline:    webui.Timeline{Events: []webui.ClientEvent{}},
						State:       webui.StateList{Events: []webui.ClientEvent{}},
						AccountData: webui.EventList{Events: []json.RawMessage{}},
					}
					news = true
				}
				continue
			}
			if api.covers(covered, inv.RoomID, s.UserID) {
				continue
			}
			ir := &webui.InvitedRoom{}
			for _, raw := range inv.State {
				var se webui.StrippedEvent
				if json.Unmarshal(raw, &se) == nil {
					ir.InviteState.Events = append(ir.InviteState.Events, se)
				}
			}
			if ev, err := rooms.ParseEvent(inv.Event, inv.Version); err == nil {
				ir.InviteState.Events = append(ir.InviteState.Events, stripped(ev))
			}
			resp.Rooms.Invite[inv.RoomID] = ir
			news = true
		}
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	// Knocks on rooms this node does not follow (knock.go).
	knocked, err := api.syncKnocks(s, since, resp, &f, covered)
	if err != nil {
		return nil, false, err
	}
	news = news || knocked
	more, err := api.syncUserData(s, since, pos, resp, &f)
	if err != nil {
		return nil, false, err
	}
	news = news || more
	// To-device messages, device lists and key counts (todevice.go).
	devNews, err := api.syncDevices(s, since, pos, resp)
	return resp, news || devNews, err
}

// covers reports whether a room's state shows the user joined or invited:
// from this sync's rooms, or, for a room with nothing new since the
// token, from the room's current state.
func (api *API) covers(covered map[string]bool, roomID, user string) bool {
	if c, ok := covered[roomID]; ok {
		return c
	}
	r := api.dag.Room(roomID)
	if r == nil {
		return false
	}
	id, ok := r.State()[rooms.StateKey{Type: "m.room.member", StateKey: user}]
	if !ok {
		return false
	}
	m, ok := api.dag.MembershipOf(id)
	return ok && (m == "join" || m == "invite")
}

// roomSync is one room's part of a /sync answer.
type roomSync struct {
	join    *webui.JoinedRoom
	invite  *webui.InvitedRoom
	knock   *webui.KnockedRoom
	leave   *webui.LeftRoom
	covered bool // the room's state shows the user joined or invited
	news    bool
}

// syncRoom builds one room's part of a /sync answer for (since, pos].
func (api *API) syncRoom(t *store.Txn, s *webui.Session, rec *store.RoomRecord, since, pos uint64, limit int, f *webui.Filter, fullState bool) (roomSync, error) {
	var res roomSync
	state, err := api.dag.Snapshot(rec.State)
	if err != nil {
		return res, err
	}
	memID, ok := state[rooms.StateKey{Type: "m.room.member", StateKey: s.UserID}]
	if !ok {
		return res, nil
	}
	m, err := api.dag.MemberEvent(t, memID)
	if err != nil {
		return res, err
	}
	memPos := m.Pos
	if m.Membership == "join" || m.Membership == "invite" {
		res.covered = true
	}
	switch m.Membership {
	case "join":
		jr, changed, err := api.syncJoined(t, s, rec, state, since, pos, memPos > since && since != 0, limit, f, fullState)
		if err != nil {
			return res, err
		}
		if changed || since == 0 || fullState {
			res.join, res.news = jr, changed
		}
	case "invite":
		if memPos > since || since == 0 {
			mem, err := api.dag.Event(memID)
			if err != nil {
				return res, err
			}
			ir := &webui.InvitedRoom{}
			for _, k := range []rooms.StateKey{{Type: "m.room.create"}, {Type: "m.room.join_rules"}, {Type: "m.room.name"}, {Type: "m.room.topic"}} {
				if id, ok := withCreateID(rec, state)[k]; ok {
					if i, err := api.dag.Event(id); err == nil {
						if e := api.shownInfo(i); !e.hidden {
							ir.InviteState.Events = append(ir.InviteState.Events, strippedShown(e))
						}
					}
				}
			}
			ir.InviteState.Events = append(ir.InviteState.Events, strippedShown(api.shownInfo(mem)))
			res.invite, res.news = ir, true
		}
	case "knock":
		if memPos > since || since == 0 {
			mem, err := api.dag.Event(memID)
			if err != nil {
				return res, err
			}
			res.knock, res.news = api.knockedHere(rec, state, mem), true
		}
	case "leave", "ban":
		if (memPos > since && since != 0) || (f.Room.IncludeLeave && since == 0) {
			if at, err := t.Forgotten(s.UserID, rec.ID); err != nil {
				return res, err
			} else if at == memID {
				return res, nil // forgotten: gone from /sync
			}
			lr := &webui.LeftRoom{AccountData: webui.EventList{Events: []json.RawMessage{}}}
			entries, err := t.Timeline(rec.ID, store.LiveBase+since, store.LiveBase+memPos, false, limit+1)
			if err != nil {
				return res, err
			}
			lr.Timeline, _, err = api.timeline(t, s, api.newViewer(t, s.UserID, memID), entries, nil, limit, &f.Room.Timeline)
			if err != nil {
				return res, err
			}
			lr.State.Events = []webui.ClientEvent{}
			res.leave, res.news = lr, true
		}
	}
	return res, nil
}

// eachRoom runs build for rooms 0..n-1, each in a read transaction, on
// every core when there are many (an initial sync of a node with a
// thousand rooms).
func (api *API) eachRoom(n int, build func(t *store.Txn, k int) error) error {
	workers := min(runtime.GOMAXPROCS(0), n/16+1)
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[w] = api.store.View(func(t *store.Txn) error {
				for k := w; k < n; k += workers {
					if err := build(t, k); err != nil {
						return err
					}
				}
				return nil
			})
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// changedRooms reads the records of the rooms with news after since: all
// of them for an initial sync; for an incremental one, only those whose
// latest timeline event came after since (the engine knows which without
// reading the store), so that its cost follows what changed, not what the
// node holds.
func (api *API) changedRooms(t *store.Txn, since uint64) ([]*store.RoomRecord, error) {
	if since == 0 {
		return t.Rooms()
	}
	var recs []*store.RoomRecord
	for _, r := range api.dag.Rooms() {
		if r.Pos() <= since {
			continue
		}
		rec, err := t.Room(r.ID)
		switch {
		case errors.Is(err, store.ErrNotFound):
			continue // its first write has not committed yet
		case err != nil:
			return nil, err
		}
		recs = append(recs, rec)
	}
	return recs, nil
}

// withCreateID adds a v12 room's implied create event to its state map.
func withCreateID(rec *store.RoomRecord, m store.StateMap) store.StateMap {
	return dag.WithCreateOf(rec.ID, rec.Version, m)
}

// syncJoined builds one joined room's section.
func (api *API) syncJoined(t *store.Txn, s *webui.Session, rec *store.RoomRecord, state store.StateMap, since, pos uint64, newlyJoined bool, limit int, f *webui.Filter, fullState bool) (*webui.JoinedRoom, bool, error) {
	jr := &webui.JoinedRoom{
		Ephemeral:           webui.EventList{Events: []json.RawMessage{}},
		AccountData:         webui.EventList{Events: []json.RawMessage{}},
		UnreadNotifications: map[string]int{"highlight_count": 0, "notification_count": 0},
	}
	// An initial sync, or the first since the user joined, covers the
	// room's live timeline from its start; history backfilled below it
	// (store.LiveBase), whose events have no state here to start the
	// timeline from, is reached through /messages from prev_batch.
	whole := since == 0 || newlyJoined
	after := store.LiveBase + since
	if whole {
		after = store.LiveBase
	}
	entries, err := t.Timeline(rec.ID, after, store.LiveBase+pos, false, limit+1)
	if err != nil {
		return nil, false, err
	}
	var redelivered map[uint64]bool
	var lateState store.StateMap
	if since != 0 && !newlyJoined && rec.Redelivered > since {
		// Read only when the room has redeliveries since the token.
		floor := joinedAt(t, state[rooms.StateKey{Type: "m.room.member", StateKey: s.UserID}])
		if entries, redelivered, lateState, err = api.withRedeliveries(t, rec.ID, entries, since, pos, limit, floor, state); err != nil {
			return nil, false, err
		}
	}
	changed := len(entries) > 0 || len(lateState) > 0
	var oldest *store.EventRecord
	v := api.newViewer(t, s.UserID, state[rooms.StateKey{Type: "m.room.member", StateKey: s.UserID}])
	jr.Timeline, oldest, err = api.timeline(t, s, v, entries, redelivered, limit, &f.Room.Timeline)
	if err != nil {
		return nil, false, err
	}
	if whole && limit > 0 && len(entries) > 0 && entries[min(len(entries), limit)-1].EventID != withCreateID(rec, state)[rooms.StateKey{Type: "m.room.create"}] {
		// The timeline does not reach the room's start (history this node
		// has not fetched yet): say so, so that the client pages back
		// from prev_batch (Messages backfills) instead of concluding that
		// there is nothing before.
		jr.Timeline.Limited = true
	}
	jr.State.Events = []webui.ClientEvent{}
	jr.Summary = api.summary(t, s, state)
	withState := since == 0 || newlyJoined || fullState || jr.Timeline.Limited
	lazy := f.Room.State.LazyLoadMembers // lazyload.go
	if withState || (lazy && len(jr.Timeline.Events) > 0) {
		// The state at the start of the timeline.
		start := state
		if oldest != nil {
			id := oldest.StateBefore
			if id == "" {
				id = oldest.StateAfter
			}
			if start, err = api.dag.Snapshot(id); err != nil {
				return nil, false, err
			}
		}
		inTimeline := map[string]bool{}
		for _, ev := range jr.Timeline.Events {
			inTimeline[ev.EventID] = true
		}
		m := withCreateID(rec, start)
		if lazy {
			var heroes []string
			if api.unnamed(t, state) {
				heroes, _ = jr.Summary["m.heroes"].([]string)
			}
			m = api.lazyState(s, m, jr.Timeline.Events, lazyWants{
				own: since == 0 || newlyJoined || fullState, heroes: heroes, members: !withState,
				redundant: fullState || f.Room.State.IncludeRedundantMembers,
			})
		}
		for _, ce := range api.stateEvents(t, m, inTimeline, s, false) {
			if f.Room.State.Allows(ce.Type, ce.Sender) {
				jr.State.Events = append(jr.State.Events, ce)
			}
		}
	}
	if len(lateState) > 0 && !withState {
		// Current state from before the join, readable only now: the
		// client's state takes it, its timeline does not.
		for _, ce := range api.stateEvents(t, lateState, nil, s, false) {
			if f.Room.State.Allows(ce.Type, ce.Sender) {
				jr.State.Events = append(jr.State.Events, ce)
			}
		}
	}
	if lazy {
		api.lazy.note(s, pos, sentMembers(jr.State.Events, jr.Timeline.Events))
	}
	return jr, changed, nil
}

// joinedAt is the timeline order of the user's member event (0 if it
// has none here: then every redelivery counts).
func joinedAt(t *store.Txn, member string) uint64 {
	if member == "" {
		return 0
	}
	rec, err := t.Event(member)
	if err != nil {
		return 0
	}
	return rec.TimelineOrder()
}

// withRedeliveries merges into a room's newest-first timeline entries
// its redeliveries in (since, pos]: events shown before since whose
// plain view came later (dag.Engine.SetPlain). An event whose own entry
// is among the entries is shown there, and once. Events from before
// floor, the user's joining, are not shown again in the timeline: /sync
// gave the user none of them but the first sync's window, and a client
// keeps the copy it has, so one shown again would land at the end of
// the timeline, history among the news (the keys of a room's history
// usually come just after a join). Those of them that are still the
// room's current state (a name, a topic, a member) are returned apart,
// for the answer's state. It returns the merged entries, at most
// limit+1, the orders of the redeliveries kept, and that late state.
func (api *API) withRedeliveries(t *store.Txn, roomID string, entries []store.TimelineEntry, since, pos uint64, limit int, floor uint64, current store.StateMap) ([]store.TimelineEntry, map[uint64]bool, store.StateMap, error) {
	rd, err := t.Redeliveries(roomID, since, pos, limit+1)
	if err != nil || len(rd) == 0 {
		return entries, nil, nil, err
	}
	var late store.StateMap
	shown := make(map[string]bool, len(entries)+len(rd))
	for _, e := range entries {
		shown[e.EventID] = true
	}
	orders := map[uint64]bool{}
	merged := slices.Clone(entries)
	for _, e := range rd { // newest first: a later redelivery wins
		if floor > 0 && !shown[e.EventID] {
			// The stored record, not the engine's: it holds the stream
			// position that the timeline order derives from.
			if r, err := t.Event(e.EventID); err == nil && r.TimelineOrder() < floor {
				shown[e.EventID] = true
				if i, err := api.dag.Event(e.EventID); err == nil && i.Event.StateKey() != nil && current[i.Event.Key()] == e.EventID {
					if late == nil {
						late = store.StateMap{}
					}
					late[i.Event.Key()] = e.EventID
				}
				continue
			}
		}
		if !shown[e.EventID] {
			shown[e.EventID] = true
			orders[e.Order] = true
			merged = append(merged, e)
		}
	}
	slices.SortFunc(merged, func(a, b store.TimelineEntry) int { return cmp.Compare(b.Order, a.Order) })
	if len(merged) > limit+1 {
		merged = merged[:limit+1]
	}
	return merged, orders, late, nil
}

// timeline turns newest-first entries into a timeline, oldest first,
// reading their events in t; it returns the record of the oldest (nil
// if there are none), whose state is the timeline's start. Entries at
// the orders in redelivered are events shown again (withRedeliveries),
// whose records say nothing of the timeline's start. Events v may not
// see (history visibility) are left out; those shown carry the user's
// membership at them (unsigned.membership).
func (api *API) timeline(t *store.Txn, s *webui.Session, v *viewer, entries []store.TimelineEntry, redelivered map[uint64]bool, limit int, f *webui.RoomEventFilter) (webui.Timeline, *store.EventRecord, error) {
	tl := webui.Timeline{Events: []webui.ClientEvent{}}
	if len(entries) > limit {
		tl.Limited = true
		if limit == 0 {
			// Nothing shown: paging back starts after the newest.
			tl.PrevBatch = orderToken(entries[0].Order)
		}
		entries = entries[:limit]
	}
	if len(entries) > 0 {
		tl.PrevBatch = orderToken(entries[len(entries)-1].Order - 1)
	}
	var oldest *store.EventRecord
	for k := len(entries) - 1; k >= 0; k-- {
		e, err := api.readShown(t, entries[k].EventID)
		if err != nil {
			return tl, nil, err
		}
		if oldest == nil && !redelivered[entries[k].Order] {
			oldest = e.rec
		}
		if e.hidden || !f.Allows(e.Type, e.Sender) {
			continue
		}
		if sv := v.at(e.rec); v.sees(sv) {
			ce := api.render(e, s, false)
			ce.Unsigned["membership"] = sv.membership
			tl.Events = append(tl.Events, ce)
		}
	}
	return tl, oldest, nil
}

// summary is the room summary clients use to name rooms (lazy-loading
// clients have no other member list): the joined and invited counts,
// the user among them, and as heroes the first 5 other joined or
// invited members by the order of their member events, or, if there are
// none, of those who left or were banned.
func (api *API) summary(t *store.Txn, s *webui.Session, state store.StateMap) map[string]any {
	joined, invited := 0, 0
	var in, gone []hero
	for k, id := range state {
		if k.Type != "m.room.member" {
			continue
		}
		m, order := api.memberOrder(t, id)
		switch m {
		case "join":
			joined++
		case "invite":
			invited++
		}
		if k.StateKey == s.UserID {
			continue
		}
		switch m {
		case "join", "invite":
			in = append(in, hero{k.StateKey, order})
		case "leave", "ban":
			gone = append(gone, hero{k.StateKey, order})
		}
	}
	if len(in) == 0 {
		in = gone
	}
	return map[string]any{"m.heroes": firstHeroes(in, 5), "m.joined_member_count": joined, "m.invited_member_count": invited}
}
