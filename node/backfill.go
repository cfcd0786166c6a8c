package node

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/rooms"
)

const (
	mBackfill       = "backfill"
	maxBackfill     = 500
	backfillDefault = 100
	// backfillPeerTimeout bounds one member's turn at answering a backfill.
	backfillPeerTimeout = 3 * time.Second
)

type backfillReq struct {
	RoomID   string   `json:"room_id"`
	EventIDs []string `json:"event_ids"`
	Limit    int      `json:"limit"`
}

// onBackfill serves history older than the given events: it walks back
// along prev_events (not including the given events) and returns up to
// limit events the requester may see, newest first.
func (n *Node) onBackfill(server string, body []byte) (any, error) {
	var req backfillReq
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	if len(req.EventIDs) > maxIDsPerReq {
		return nil, remoteErr("M_LIMIT_EXCEEDED", "at most %d events per request", maxIDsPerReq)
	}
	limit := min(max(req.Limit, 1), maxBackfill)
	r, err := n.roomFor(server, req.RoomID)
	if err != nil {
		return nil, err
	}
	joined := n.serverJoined(r, server)
	seen := map[string]bool{}
	var queue []string
	for _, id := range req.EventIDs {
		seen[id] = true
		if i, err := n.eventInfo(id); err == nil && i.ev.RoomID() == r.id {
			queue = append(queue, i.ev.PrevEvents()...)
		}
	}
	var found []*rooms.Event
	// Bound the walk too, not only what it finds: history the requester
	// may not see must not cost an unbounded scan.
	for visited := 0; len(queue) > 0 && len(found) < limit && visited < 10*maxBackfill; visited++ {
		id := queue[0]
		queue = queue[1:]
		if seen[id] {
			continue
		}
		seen[id] = true
		i, err := n.eventInfo(id)
		if err != nil || i.ev.RoomID() != r.id || !i.usable() || i.rec.TimelineOrder() == 0 && i.rec.Outlier {
			continue
		}
		queue = append(queue, i.ev.PrevEvents()...)
		if n.visibleTo(i, server, joined) {
			found = append(found, i.ev)
		}
	}
	sort.SliceStable(found, func(a, b int) bool { return found[a].Depth() > found[b].Depth() })
	resp := pdusResp{}
	for _, ev := range found {
		resp.PDUs = append(resp.PDUs, ev.JSON())
	}
	return resp, nil
}

// backfill fetches history older than the room's oldest timeline event
// from a member and places it in the timeline before that event. It
// returns how many events joined the timeline.
func (n *Node) backfill(ctx context.Context, r *room, want int) (int, error) {
	var oldest []store.TimelineEntry
	if err := n.store.View(func(t *store.Txn) error {
		var err error
		oldest, err = t.Timeline(r.id, 0, 0, true, 1)
		return err
	}); err != nil || len(oldest) == 0 {
		return 0, err
	}
	first, err := n.eventInfo(oldest[0].EventID)
	if err != nil {
		return 0, err
	}
	if first.ev.Type() == "m.room.create" || len(first.ev.PrevEvents()) == 0 {
		return 0, nil // the whole history is here
	}
	limit := min(max(want, backfillDefault), maxBackfill)
	var lastErr error
	// Connected members first; a member that does not answer (frozen,
	// asleep) costs a few seconds, not the whole request timeout, since a
	// client is waiting on this page.
	connected := n.connectedMembers(r)
	peers := slices.Clone(connected)
	for _, s := range n.roomServers(r) {
		if p, err := peerOf(s); err == nil && !slices.Contains(peers, p) {
			peers = append(peers, p)
		}
	}
	for _, p := range peers {
		pctx, cancel := context.WithTimeout(ctx, backfillPeerTimeout)
		got, err := n.backfillFrom(pctx, r, p, first.ev.ID(), limit)
		cancel()
		if err == nil && got > 0 {
			return got, nil
		}
		if err != nil {
			lastErr = err
		}
	}
	return 0, lastErr
}

func (n *Node) backfillFrom(ctx context.Context, r *room, p peer.ID, before string, limit int) (int, error) {
	var resp pdusResp
	if err := n.request(ctx, p, mBackfill, backfillReq{RoomID: r.id, EventIDs: []string{before}, Limit: limit}, &resp); err != nil {
		return 0, err
	}
	if len(resp.PDUs) > limit {
		return 0, fmt.Errorf("backfill: peer sent %d events, more than the %d asked for", len(resp.PDUs), limit)
	}
	evs, err := n.parseVerified(r, resp.PDUs)
	if err != nil {
		return 0, err
	}
	sort.SliceStable(evs, func(a, b int) bool { return evs[a].Depth() > evs[b].Depth() })
	// Their auth chains first, so each can be checked.
	var missing []string
	for _, ev := range evs {
		for _, a := range ev.AuthEvents() {
			if !n.known(a) && !slices.Contains(missing, a) {
				missing = append(missing, a)
			}
		}
	}
	for len(missing) > 0 {
		batch := missing[:min(len(missing), maxIDsPerReq)]
		missing = missing[len(batch):]
		if err := n.fetchAuthChain(ctx, r, p, batch); err != nil {
			return 0, err
		}
	}
	r.mu.Lock()
	added, pending := 0, []<-chan error{}
	for _, ev := range evs {
		out, placed, err := n.placeHistory(r, ev)
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
// the timeline is left alone. The caller holds r.mu.
func (n *Node) placeHistory(r *room, ev *rooms.Event) (<-chan error, bool, error) {
	if err := n.rollBack(r); err != nil {
		return nil, false, err
	}
	rec := store.EventRecord{Version: r.version, PDU: ev.JSON(), Outlier: true, Received: nowMS()}
	if i, err := n.eventInfo(ev.ID()); err == nil {
		if i.rec.TimelineOrder() != 0 || !i.usable() {
			return nil, false, nil
		}
		rec = i.rec
		rec.PDU = ev.JSON()
	} else {
		reason, err := n.authVerdict(r, ev)
		if err != nil {
			return nil, false, fmt.Errorf("backfilled %s: %w", ev.ID(), err)
		}
		rec.Rejected = reason
		if rec.Rejected != "" {
			n.log.Info("backfilled event rejected", "room", r.id, "event", ev.ID(), "reason", rec.Rejected)
			out := n.commit(r, ev, rec, nil, nil, nil)
			return out.committed, false, nil
		}
	}
	if r.minOrder == 0 {
		r.minOrder = store.LiveBase
	}
	r.minOrder--
	rec.Order = r.minOrder
	info := &evInfo{ev: ev, rec: rec, durable: make(chan struct{})}
	info.rec.PDU = nil
	n.events.put(ev.ID(), info)
	roomRec := n.roomRecord(r)
	done := n.queueWrite(r, ev, func(t *store.Txn) error {
		if err := t.PutEvent(r.id, ev.ID(), &rec); err != nil {
			return err
		}
		return t.PutRoom(roomRec)
	}, func(err error) {
		info.writeErr = err
		close(info.durable)
	})
	return done, true, nil
}

// roomRecord is the room's head as stored. The caller holds r.mu.
func (n *Node) roomRecord(r *room) *store.RoomRecord {
	return &store.RoomRecord{ID: r.id, Version: r.version, Extremities: r.ext, State: r.stateID, Depth: r.depth, MinOrder: r.minOrder}
}
