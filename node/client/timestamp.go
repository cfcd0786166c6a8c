package client

import (
	"context"

	"github.com/parley-p2p/parley/errs"
	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/webui"
)

// timestamp_to_event: the room's timeline on this node is in timeline
// order, and events' origin_server_ts mostly follow it, so a binary
// search by order finds where the time falls (at most 64 reads);
// the events within tsWindow around that place are then compared
// exactly, which covers clocks a little out of order, and if none of
// them the user may see lies in the direction asked, the search goes on
// that way, up to tsScan events. It asks no other node.
const (
	tsWindow = 100
	tsScan   = 2000
)

// TimestampToEvent implements webui.Timestamps.
func (api *API) TimestampToEvent(_ context.Context, s *webui.Session, roomID string, ts int64, dir string) (*webui.TimestampEvent, error) {
	r, upTo, worldOnly, err := api.peekableRoom(s, roomID)
	if err != nil {
		return nil, err
	}
	head := store.LiveBase + api.store.Pos()
	if upTo != 0 {
		head = min(head, store.LiveBase+upTo)
	}
	var best *webui.TimestampEvent
	var bestOrder uint64
	err = api.store.View(func(t *store.Txn) error {
		// tsOf is the time of the first of es; false if there is none.
		tsOf := func(es []store.TimelineEntry) (int64, bool) {
			if len(es) == 0 {
				return 0, false
			}
			ev, err := api.readShown(t, es[0].EventID)
			return ev.OriginServerTS, err == nil
		}
		// lo: the greatest order whose newest event up to it (if any) is
		// before ts, were the timeline in time order; head+1 stands for
		// an order past every event.
		lo, hi := uint64(0), head+1
		for hi-lo > 1 {
			mid := lo + (hi-lo)/2
			es, err := t.Timeline(r.ID, 0, mid, false, 1)
			if err != nil {
				return err
			}
			if at, ok := tsOf(es); !ok || at < ts {
				lo = mid
			} else {
				hi = mid
			}
		}
		v := api.newViewer(t, s.UserID, memberID(r, s.UserID))
		consider := func(es []store.TimelineEntry) {
			for _, e := range es {
				ev, err := api.readShown(t, e.EventID)
				if err != nil || ev.hidden || !api.tsVisible(v, ev, worldOnly) {
					continue
				}
				at := ev.OriginServerTS
				better := false
				switch {
				case dir == "f" && at >= ts:
					better = best == nil || at < best.OriginServerTS || (at == best.OriginServerTS && e.Order < bestOrder)
				case dir == "b" && at <= ts:
					better = best == nil || at > best.OriginServerTS || (at == best.OriginServerTS && e.Order > bestOrder)
				}
				if better {
					best, bestOrder = &webui.TimestampEvent{EventID: ev.ID, OriginServerTS: at}, e.Order
				}
			}
		}
		before, err := t.Timeline(r.ID, 0, lo, false, tsWindow)
		if err != nil {
			return err
		}
		after, err := t.Timeline(r.ID, lo, head, true, tsWindow)
		if err != nil {
			return err
		}
		consider(before)
		consider(after)
		if best != nil {
			return nil
		}
		// Nothing visible near: go on the way asked.
		var more []store.TimelineEntry
		if dir == "f" && len(after) == tsWindow {
			more, err = t.Timeline(r.ID, after[len(after)-1].Order, head, true, tsScan)
		} else if dir == "b" && len(before) == tsWindow {
			more, err = t.Timeline(r.ID, 0, before[len(before)-1].Order-1, false, tsScan)
		}
		if err != nil {
			return err
		}
		consider(more)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if best == nil {
		return nil, errs.NotFoundf("no event %s %d in room %s here", map[string]string{"f": "at or after", "b": "at or before"}[dir], ts, roomID)
	}
	return best, nil
}

// tsVisible reports whether the user may see a timeline event
// (history visibility; world-readable history only for worldOnly).
func (api *API) tsVisible(v *viewer, e shownEvent, worldOnly bool) bool {
	sv := v.at(e.rec)
	return v.sees(sv) && (!worldOnly || sv.visibility == "world_readable")
}
