package peers

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
	backfillDefault = 100
	// backfillPeerTimeout bounds one member's turn at answering a backfill.
	backfillPeerTimeout = 3 * time.Second
)

// onBackfill serves history older than the given events: it walks back
// along prev_events (not including the given events) and returns up to
// limit events the requester may see, newest first.
func (ps *Peers) onBackfill(server string, body []byte) (any, error) {
	var req BackfillReq
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	if len(req.EventIDs) > MaxIDsPerReq {
		return nil, remoteErr("M_LIMIT_EXCEEDED", "at most %d events per request", MaxIDsPerReq)
	}
	limit := min(max(req.Limit, 1), MaxBackfill)
	r, err := ps.roomFor(server, req.RoomID)
	if err != nil {
		return nil, err
	}
	joined := ps.serverJoined(r, server)
	seen := map[string]bool{}
	var queue []string
	for _, id := range req.EventIDs {
		seen[id] = true
		if i, err := ps.dag.Event(id); err == nil && i.Event.RoomID() == r.ID {
			queue = append(queue, i.Event.PrevEvents()...)
		}
	}
	var found []*rooms.Event
	// Bound the walk too, not only what it finds: history the requester
	// may not see must not cost an unbounded scan.
	for visited := 0; len(queue) > 0 && len(found) < limit && visited < 10*MaxBackfill; visited++ {
		id := queue[0]
		queue = queue[1:]
		if seen[id] {
			continue
		}
		seen[id] = true
		i, err := ps.dag.Event(id)
		if err != nil || i.Event.RoomID() != r.ID || !i.Usable() || i.Rec.TimelineOrder() == 0 && i.Rec.Outlier {
			continue
		}
		queue = append(queue, i.Event.PrevEvents()...)
		if ps.visibleTo(i, server, joined) {
			found = append(found, i.Event)
		}
	}
	sort.SliceStable(found, func(a, b int) bool { return found[a].Depth() > found[b].Depth() })
	resp := PDUsResp{}
	for _, ev := range found {
		resp.PDUs = append(resp.PDUs, ev.JSON())
	}
	return resp, nil
}

// Backfill fetches history older than the room's oldest timeline event
// from a member and places it in the timeline before that event. It
// returns how many events joined the timeline.
func (ps *Peers) Backfill(ctx context.Context, r *Room, want int) (int, error) {
	var oldest []store.TimelineEntry
	if err := ps.store.View(func(t *store.Txn) error {
		var err error
		oldest, err = t.Timeline(r.ID, 0, 0, true, 1)
		return err
	}); err != nil || len(oldest) == 0 {
		return 0, err
	}
	first, err := ps.dag.Event(oldest[0].EventID)
	if err != nil {
		return 0, err
	}
	if first.Event.Type() == "m.room.create" || len(first.Event.PrevEvents()) == 0 {
		return 0, nil // the whole history is here
	}
	limit := min(max(want, backfillDefault), MaxBackfill)
	var lastErr error
	// Connected members first; a member that does not answer (frozen,
	// asleep) costs a few seconds, not the whole request timeout, since a
	// client is waiting on this page.
	connected := ps.connectedMembers(r)
	peers := slices.Clone(connected)
	for _, s := range ps.RoomServers(r) {
		if p, err := peerOf(s); err == nil && !slices.Contains(peers, p) {
			peers = append(peers, p)
		}
	}
	for _, p := range peers {
		pctx, cancel := context.WithTimeout(ctx, backfillPeerTimeout)
		got, err := ps.backfillFrom(pctx, r, p, first.Event.ID(), limit)
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

func (ps *Peers) backfillFrom(ctx context.Context, r *Room, p peer.ID, before string, limit int) (int, error) {
	var resp PDUsResp
	if err := ps.request(ctx, p, MethodBackfill, BackfillReq{RoomID: r.ID, EventIDs: []string{before}, Limit: limit}, &resp); err != nil {
		return 0, err
	}
	if len(resp.PDUs) > limit {
		return 0, fmt.Errorf("backfill: peer sent %d events, more than the %d asked for", len(resp.PDUs), limit)
	}
	evs, err := ps.parseVerified(r, resp.PDUs)
	if err != nil {
		return 0, err
	}
	sort.SliceStable(evs, func(a, b int) bool { return evs[a].Depth() > evs[b].Depth() })
	// Their auth chains first, so each can be checked.
	var missing []string
	for _, ev := range evs {
		for _, a := range ev.AuthEvents() {
			if !ps.dag.Known(a) && !slices.Contains(missing, a) {
				missing = append(missing, a)
			}
		}
	}
	for len(missing) > 0 {
		batch := missing[:min(len(missing), MaxIDsPerReq)]
		missing = missing[len(batch):]
		if err := ps.fetchAuthChain(ctx, r, p, batch); err != nil {
			return 0, err
		}
	}
	return ps.dag.PlaceHistory(r.Room, evs)
}
