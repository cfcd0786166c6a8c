package dag

import (
	"fmt"

	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/rooms"
)

// PlaceHistory places backfilled events, newest first, in the timeline
// before the room's oldest event. Their auth events must be stored. It
// returns how many joined the timeline, once their writes have ended.
func (e *Engine) PlaceHistory(r *Room, evs []*rooms.Event) (int, error) {
	r.mu.Lock()
	added, pending := 0, []<-chan error{}
	for _, ev := range evs {
		out, placed, err := e.placeHistory(r, ev)
		if err != nil {
			r.mu.Unlock()
			return added, err
		}
		if placed {
			added++
			pending = append(pending, out)
		}
	}
	r.mu.Unlock()
	for _, c := range pending {
		if err := <-c; err != nil {
			return added, err
		}
	}
	return added, nil
}

// placeHistory checks a backfilled event against its auth events and gives
// it the next timeline order below the room's history. An event already in
// the timeline is left alone: placed before, or admitted live (not an
// outlier; its record in memory has no Pos, and its write may not have
// committed yet). The caller holds r.mu.
func (e *Engine) placeHistory(r *Room, ev *rooms.Event) (<-chan error, bool, error) {
	if err := e.rollBack(r); err != nil {
		return nil, false, err
	}
	rec := store.EventRecord{Version: r.Version, PDU: ev.JSON(), Outlier: true, Received: nowMS()}
	if i, err := e.Event(ev.ID()); err == nil {
		if !i.Rec.Outlier || i.Rec.TimelineOrder() != 0 || !i.Usable() || i.Rec.SoftFailed != "" {
			return nil, false, nil
		}
		rec = i.Rec
		rec.PDU = ev.JSON()
	} else {
		reason, err := e.authVerdict(r, ev)
		if err != nil {
			return nil, false, fmt.Errorf("backfilled %s: %w", ev.ID(), err)
		}
		rec.Rejected = reason
		if rec.Rejected != "" {
			e.log.Info("backfilled event rejected", "room", r.ID, "event", ev.ID(), "reason", rec.Rejected)
			out := e.commit(r, ev, rec, nil, nil, nil)
			return out.Committed, false, nil
		}
		rec.Plain = e.open(r, ev)
	}
	h := *r.Head()
	if h.MinOrder == 0 {
		h.MinOrder = store.LiveBase
	}
	h.MinOrder--
	r.setHead(h)
	rec.Order = h.MinOrder
	info := &Info{Event: ev, Rec: rec, durable: make(chan struct{})}
	info.Rec.PDU = nil
	e.events.Put(ev.ID(), info)
	roomRec := r.record()
	var onTimeline func(*store.Txn, uint64) error
	if e.cfg.OnTimeline != nil {
		onTimeline = e.cfg.OnTimeline(r, ev, rec.Plain, History)
	}
	done := e.queueWrite(r, ev, func(t *store.Txn) error {
		if err := t.PutEvent(r.ID, ev.ID(), &rec); err != nil {
			return err
		}
		if onTimeline != nil {
			if err := onTimeline(t, rec.Order); err != nil {
				return err
			}
		}
		r.stamp(roomRec)
		return t.PutRoom(roomRec)
	}, func(err error) {
		info.writeErr = err
		close(info.durable)
	})
	return done, true, nil
}
