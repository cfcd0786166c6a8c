package client

import (
	"context"

	"github.com/parley-p2p/parley/errs"
	"github.com/parley-p2p/parley/node/dag"
	"github.com/parley-p2p/parley/node/peers"
	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/webui"
)

// Context implements webui.Backend: an event the user may see, with up
// to half the limit of the visible events before it and the rest after
// it, in timeline order, and the room's state at the event. Its tokens
// page on with /messages: backwards from start, forwards from end.
func (api *API) Context(ctx context.Context, s *webui.Session, req webui.ContextRequest) (*webui.ContextResponse, error) {
	r, upTo, worldOnly, err := api.peekableRoom(s, req.RoomID)
	if err != nil {
		// The spec's one answer for an event the user may not read.
		return nil, errs.NotFoundf("event %s not found", req.EventID)
	}
	i, sv, err := api.visibleEvent(s, r, upTo, worldOnly, req.EventID)
	if err != nil {
		return nil, err
	}
	order := timelineOrder(i)
	if order == 0 {
		return nil, errs.NotFoundf("event %s is not in the room's timeline here", req.EventID)
	}
	e := api.shownInfo(i)
	if e.hidden {
		return nil, errs.NotFoundf("event %s not found", req.EventID)
	}
	ce := api.render(e, s, true)
	ce.Unsigned["membership"] = sv.membership
	resp := &webui.ContextResponse{Event: &ce, Start: orderToken(order - 1), End: orderToken(order)}

	head := store.LiveBase + api.store.Pos()
	if upTo != 0 {
		head = min(head, store.LiveBase+upTo)
	}
	before := req.Limit / 2
	after := req.Limit - before
	v := api.newViewer(nil, s.UserID, memberID(r, s.UserID))
	show := func(entries []store.TimelineEntry) []webui.ClientEvent {
		var out []webui.ClientEvent
		for _, te := range entries {
			i, err := api.dag.Event(te.EventID)
			if err != nil {
				continue
			}
			if ce, ok := api.pageEvent(s, v, i, worldOnly, req.Filter); ok {
				out = append(out, ce)
			}
		}
		return out
	}
	var older, newer []store.TimelineEntry
	err = api.store.View(func(t *store.Txn) error {
		var err error
		if before > 0 {
			if older, err = t.Timeline(r.ID, 0, order-1, false, before); err != nil {
				return err
			}
		}
		if after > 0 && order < head {
			newer, err = t.Timeline(r.ID, order, head, true, after)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if len(older) > 0 {
		resp.Start = orderToken(older[len(older)-1].Order - 1)
	}
	if len(newer) > 0 {
		resp.End = orderToken(newer[len(newer)-1].Order)
	}
	resp.EventsBefore = show(older) // newest first, as the spec has it
	resp.EventsAfter = show(newer)
	state, err := api.stateAt(r, i.Rec.StateAfter)
	if err != nil {
		return nil, err
	}
	shown := api.stateEvents(nil, state, nil, s, true)
	if req.Filter != nil && req.Filter.LazyLoadMembers {
		// Lazy-loading (lazyload.go): of the members, the senders'.
		shown = append(api.stateEvents(nil, withoutMembers(state), nil, s, true),
			api.pageMembers(s, r, state, resp.EventsBefore, []webui.ClientEvent{ce}, resp.EventsAfter)...)
	}
	for _, ce := range shown {
		if req.Filter.Allows(ce.Type, ce.Sender) {
			resp.State = append(resp.State, ce)
		}
	}
	return resp, nil
}

// stateAt is the state snapshot id of a room, with the create event a
// v12 room implies; the room's current state if id is "" (history
// fetched from other nodes, which has no state here).
func (api *API) stateAt(r *peers.Room, id string) (store.StateMap, error) {
	if id == "" {
		return dag.WithCreate(r.Room, r.State()), nil
	}
	m, err := api.dag.Snapshot(id)
	if err != nil {
		return nil, err
	}
	return dag.WithCreate(r.Room, m), nil
}

// membersAt is the state of a room at a /sync or /messages token (for
// /members?at=): after the newest event in the timeline at or before
// it, within what the user may read.
func (api *API) membersAt(s *webui.Session, roomID, at string) (store.StateMap, error) {
	order, ok := parseOrder(at)
	if !ok {
		return nil, errs.Invalidf("invalid at token %q", at)
	}
	r, upTo, err := api.readableRoom(s, roomID)
	if err != nil {
		return nil, err
	}
	if upTo != 0 {
		order = min(order, store.LiveBase+upTo)
	}
	if order == 0 {
		return store.StateMap{}, nil // before the room's first event
	}
	// The newest event with state of its own: history fetched from other
	// nodes has none, and a bounded look back past it is enough.
	var entries []store.TimelineEntry
	if err := api.store.View(func(t *store.Txn) error {
		var err error
		entries, err = t.Timeline(r.ID, 0, order, false, 64)
		return err
	}); err != nil {
		return nil, err
	}
	for _, e := range entries {
		if i, err := api.dag.Event(e.EventID); err == nil && i.Rec.StateAfter != "" {
			return api.stateAt(r, i.Rec.StateAfter)
		}
	}
	return api.roomState(s, roomID)
}

// pageEvent renders an event of a page of history (/messages, /context)
// as the user may see it: false if history visibility hides it from
// them (worldOnly: they see only world_readable history), or it is the
// codec's own, or the filter leaves it out. It carries the user's
// membership at the event (unsigned.membership).
func (api *API) pageEvent(s *webui.Session, v *viewer, i *dag.Info, worldOnly bool, f *webui.RoomEventFilter) (webui.ClientEvent, bool) {
	sv := v.at(&i.Rec)
	if !v.sees(sv) || (worldOnly && sv.visibility != "world_readable") {
		return webui.ClientEvent{}, false
	}
	e := api.shownInfo(i)
	if e.hidden || (f != nil && !f.Allows(e.Type, e.Sender)) {
		return webui.ClientEvent{}, false
	}
	ce := api.render(e, s, true)
	ce.Unsigned["membership"] = sv.membership
	return ce, true
}
