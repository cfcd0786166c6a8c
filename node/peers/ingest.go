package peers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/parley-p2p/parley/node/dag"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/p2p"
	"github.com/parley-p2p/parley/rooms"
)

// ingestRemote processes a verified event from a peer, fetching what it
// lacks: auth chains; missing prev events; and as a last resort the state
// after a prev event beyond every member's reach. nested calls (for events
// fetched while filling a gap) go straight to that last resort. It asks
// the room's other connected members first, each with a short timeout,
// and the peer the event came from last, and only if that peer's server
// has a place in the room: it never fetches on behalf of a stranger.
func (ps *Peers) ingestRemote(ctx context.Context, r *Room, ev *rooms.Event, from peer.ID, nested bool) (*dag.Outcome, error) {
	var sources []peer.ID
	filled := false
	for attempt := 0; attempt < 4; attempt++ {
		out, err := ps.dag.Admit(r.Room, ev, dag.Opts{})
		var miss *dag.Missing
		if !errors.As(err, &miss) {
			return out, err
		}
		if sources == nil {
			if sources = ps.fetchSources(r, from); len(sources) == 0 {
				return nil, fmt.Errorf("event %s: %w, and no member to ask", ev.ID(), miss)
			}
		}
		switch {
		case !nested && !filled && len(miss.Prev) > 0:
			// Ask for the missing prev events themselves first: a member
			// may not have ev yet, but it has what ev builds on, and
			// the gap usually holds the missing auth events too. Fetched
			// the other way round, an auth event (the sender's new
			// membership) became an outlier, which a gap fill treats as
			// held: what lay behind it (a key share) was never fetched.
			filled = true
			for _, p := range sources {
				actx, cancel := ps.askContext(ctx, p, from)
				err := ps.fillGap(actx, r, p, miss.Prev)
				cancel()
				if err != nil {
					ps.log.Debug("gap fill", "room", r.ID, "peer", shortPeer(p), "err", err)
				}
				if !ps.missingPrevs(r, ev) {
					break
				}
			}
		case len(miss.Auth) > 0:
			if err := ps.askInTurn(ctx, sources, from, func(ctx context.Context, p peer.ID) error { return ps.fetchAuthChain(ctx, r, p, miss.Auth) }); err != nil {
				return nil, err
			}
		default:
			for _, id := range miss.Prev {
				if err := ps.askInTurn(ctx, sources, from, func(ctx context.Context, p peer.ID) error { return ps.fetchStateAfter(ctx, r, p, id) }); err != nil {
					return nil, err
				}
			}
		}
	}
	return nil, fmt.Errorf("event %s: ancestors still missing", ev.ID())
}

// missingPrevs reports whether any prev event of ev is unknown.
func (ps *Peers) missingPrevs(r *Room, ev *rooms.Event) bool {
	for _, p := range ev.PrevEvents() {
		if !ps.dag.Known(p) {
			return true
		}
	}
	return false
}

// connectedMembers lists the connected nodes of the room's servers.
func (ps *Peers) connectedMembers(r *Room) []peer.ID {
	connected := ps.host.ConnectedPeers()
	var out []peer.ID
	for _, s := range ps.RoomServers(r) {
		if p, err := peerOf(s); err == nil && slices.Contains(connected, p) {
			out = append(out, p)
		}
	}
	return out
}

// maxGap bounds how many missing events one gap fill fetches; a larger
// gap is bridged with the state at its edge (and its history is left to
// backfill).
const maxGap = 50000

// fillGap fetches the events between this node's extremities and latest
// from a peer, in rounds of up to MaxMissingLimit walking back until they
// meet events this node has, and ingests them oldest first.
func (ps *Peers) fillGap(ctx context.Context, r *Room, from peer.ID, latest []string) error {
	earliest := slices.Clone(r.Head().Ext)
	if len(earliest) > MaxIDsPerReq {
		earliest = earliest[:MaxIDsPerReq]
	}
	fetched := map[string]*rooms.Event{}
	frontier := latest
	for len(frontier) > 0 && len(fetched) < maxGap {
		var resp PDUsResp
		if err := ps.request(ctx, from, MethodMissingEvents, MissingReq{RoomID: r.ID, Earliest: earliest, Latest: frontier, Limit: MaxMissingLimit}, &resp); err != nil {
			if len(fetched) == 0 {
				return err
			}
			break // ingest what arrived
		}
		evs, err := ps.parseVerified(r, resp.PDUs)
		if err != nil {
			return err
		}
		fresh := 0
		for _, ev := range evs {
			if _, dup := fetched[ev.ID()]; !dup {
				fetched[ev.ID()] = ev
				fresh++
			}
		}
		if fresh == 0 {
			break
		}
		// Walk on from the prev events of the gap that are neither here
		// nor fetched.
		_, frontier = ps.gapOf(latest, fetched)
		if len(frontier) > MaxIDsPerReq {
			frontier = frontier[:MaxIDsPerReq]
		}
	}
	evs, _ := ps.gapOf(latest, fetched)
	sort.Slice(evs, func(a, b int) bool {
		if evs[a].Depth() != evs[b].Depth() {
			return evs[a].Depth() < evs[b].Depth()
		}
		return evs[a].ID() < evs[b].ID()
	})
	for _, ev := range evs {
		if ps.dag.Known(ev.ID()) {
			continue
		}
		if _, err := ps.ingestRemote(ctx, r, ev, from, true); err != nil {
			return fmt.Errorf("gap event %s: %w", ev.ID(), err)
		}
	}
	return nil
}

// gapOf is the gap proper among the fetched events: those reached from
// latest along prev events without passing an event this node holds,
// and the prev events it still lacks (neither here nor fetched). A peer
// walks back until it meets the node's extremities; when latest is on a
// fork beside them (a key share sent beside a joiner's first events),
// the walk passes them and goes on into the history behind events the
// node holds. That history is backfill's to place before the node's
// timeline: ingested here, it would enter the live timeline, after the
// join, and backfill would place it a second time.
func (ps *Peers) gapOf(latest []string, fetched map[string]*rooms.Event) (gap []*rooms.Event, lacking []string) {
	seen := map[string]bool{}
	queue := slices.Clone(latest)
	for len(queue) > 0 {
		id := queue[0]
		queue = queue[1:]
		if seen[id] {
			continue
		}
		seen[id] = true
		if ps.dag.Known(id) {
			continue
		}
		ev, ok := fetched[id]
		if !ok {
			lacking = append(lacking, id)
			continue
		}
		gap = append(gap, ev)
		queue = append(queue, ev.PrevEvents()...)
	}
	return gap, lacking
}

// parseVerified parses PDUs of a room and checks their signatures and
// hashes, on every core. One bad PDU fails the whole answer: a peer that
// sends forgeries is not trusted for the rest of it either.
func (ps *Peers) parseVerified(r *Room, pdus []json.RawMessage) ([]*rooms.Event, error) {
	out := make([]*rooms.Event, len(pdus))
	errs := make([]error, len(pdus))
	workers := min(runtime.GOMAXPROCS(0), max(len(pdus)/16, 1))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := w; k < len(pdus); k += workers {
				out[k], errs[k] = ps.parseOne(r, pdus[k])
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (ps *Peers) parseOne(r *Room, raw json.RawMessage) (*rooms.Event, error) {
	ev, err := rooms.ParseEvent(raw, r.Version)
	if err != nil {
		return nil, fmt.Errorf("peer sent a malformed event: %w", err)
	}
	if ev.RoomID() != r.ID {
		return nil, fmt.Errorf("peer sent event %s of another room", ev.ID())
	}
	if !ps.dag.Known(ev.ID()) {
		if err := rooms.Verify(ev); err != nil {
			return nil, fmt.Errorf("peer sent event %s that fails verification: %w", ev.ID(), err)
		}
	}
	return ev, nil
}

// fetchAuthChain fetches events and their auth chains and stores them as
// outliers.
func (ps *Peers) fetchAuthChain(ctx context.Context, r *Room, from peer.ID, ids []string) error {
	var resp PDUsResp
	if err := ps.request(ctx, from, MethodAuthChain, IDsReq{RoomID: r.ID, EventIDs: ids}, &resp); err != nil {
		return err
	}
	if err := ps.storeOutliers(r, resp.PDUs); err != nil {
		return err
	}
	for _, id := range ids {
		if !ps.dag.Known(id) {
			return fmt.Errorf("peer did not send auth event %s", id)
		}
	}
	return nil
}

// fetchStateAfter gets an event this node cannot place in its DAG, with
// the state after it, and stores both so events built on it can be
// checked.
func (ps *Peers) fetchStateAfter(ctx context.Context, r *Room, from peer.ID, id string) error {
	var resp StateResp
	if err := ps.request(ctx, from, MethodStateAfter, IDsReq{RoomID: r.ID, EventIDs: []string{id}}, &resp); err != nil {
		return err
	}
	if len(resp.Events) != 1 {
		return fmt.Errorf("state_after %s: peer sent %d events", id, len(resp.Events))
	}
	state, err := ps.storeState(r, resp)
	if err != nil {
		return err
	}
	evs, err := ps.parseVerified(r, resp.Events)
	if err != nil {
		return err
	}
	if evs[0].ID() != id {
		return fmt.Errorf("state_after %s: peer sent %s", id, evs[0].ID())
	}
	out, err := ps.dag.StoreOutlier(r.Room, evs[0], state)
	if err != nil {
		return err
	}
	return <-out.Committed
}

// storeState stores the events of a state answer as outliers and returns
// the state map they form. Every event must be of the room, and no key
// may appear twice.
func (ps *Peers) storeState(r *Room, resp StateResp) (store.StateMap, error) {
	all := append(slices.Clone(resp.AuthChain), resp.State...)
	if err := ps.storeOutliers(r, all); err != nil {
		return nil, err
	}
	evs, err := ps.parseVerified(r, resp.State)
	if err != nil {
		return nil, err
	}
	state := make(store.StateMap, len(evs))
	for _, ev := range evs {
		if !ev.IsState() {
			return nil, fmt.Errorf("state answer holds non-state event %s", ev.ID())
		}
		if _, dup := state[ev.Key()]; dup {
			return nil, fmt.Errorf("state answer holds two events for %v", ev.Key())
		}
		i, err := ps.dag.Event(ev.ID())
		if err != nil {
			return nil, err
		}
		if !i.Usable() {
			ps.log.Warn("state answer holds a rejected event; leaving it out", "room", r.ID, "event", ev.ID(), "reason", i.Rec.Rejected)
			continue
		}
		state[ev.Key()] = ev.ID()
	}
	return state, nil
}

// storeOutliers verifies PDUs and stores them as outliers in auth order
// (each after its auth events). Events whose auth events are neither in
// the batch nor stored fail the batch.
func (ps *Peers) storeOutliers(r *Room, pdus []json.RawMessage) error {
	evs, err := ps.parseVerified(r, pdus)
	if err != nil {
		return err
	}
	byID := make(map[string]*rooms.Event, len(evs))
	for _, ev := range evs {
		byID[ev.ID()] = ev
	}
	done := map[string]bool{}
	var order []*rooms.Event
	var visit func(ev *rooms.Event, depth int) error
	visit = func(ev *rooms.Event, depth int) error {
		if done[ev.ID()] {
			return nil
		}
		if depth > 10000 {
			return fmt.Errorf("auth chain too deep")
		}
		done[ev.ID()] = true
		for _, a := range ev.AuthEvents() {
			if dep, ok := byID[a]; ok {
				if err := visit(dep, depth+1); err != nil {
					return err
				}
			}
		}
		order = append(order, ev)
		return nil
	}
	// Visit the create event first so v12's implied auth is in place.
	sort.SliceStable(evs, func(a, b int) bool { return evs[a].Type() == "m.room.create" && evs[b].Type() != "m.room.create" })
	for _, ev := range evs {
		if err := visit(ev, 0); err != nil {
			return err
		}
	}
	return ps.dag.StoreOutliers(r.Room, order)
}

// ValidateGossip is the room topic's validator: the cheap checks that stop
// a forgery from being relayed, and the gate that keeps servers with no
// place in the room out of it (gate.go). Forgeries and malformed events
// are rejected, which counts against the peer that relayed them; events
// of servers the gate turns away are ignored, since this node's view of
// the room may lag. An event that passes is handed, parsed and verified,
// to the receiver (pubsub carries it with the message), so each gossiped
// event is parsed and verified once; one the node holds already is
// relayed with nothing handed on.
func (ps *Peers) ValidateGossip(r *Room) p2p.Validator {
	gate := r.gate
	return func(ctx context.Context, from peer.ID, data []byte) (p2p.Verdict, any) {
		if len(data) > rooms.MaxEventSize {
			ps.gossipDropped.Add(1)
			ps.gossipLog.log(ps.log, slog.LevelInfo, "oversized gossip dropped", "room", r.ID, "from", shortPeer(from), "size", len(data))
			return p2p.Reject, nil
		}
		ev, err := rooms.ParseEvent(data, r.Version)
		if err != nil || ev.RoomID() != r.ID {
			ps.gossipDropped.Add(1)
			ps.gossipLog.log(ps.log, slog.LevelInfo, "malformed gossip dropped", "room", r.ID, "from", shortPeer(from), "err", err)
			return p2p.Reject, nil
		}
		if v, ok := ps.verified.Get(ev.ID()); ok {
			return p2p.Accept, v
		}
		if ps.dag.Known(ev.ID()) {
			return p2p.Accept, nil
		}
		if !gate.allows(ps, r, ev, time.Now()) {
			ps.gossipDropped.Add(1)
			ps.gossipLog.log(ps.log, slog.LevelInfo, "gossip from a server not in the room ignored", "room", r.ID, "from", shortPeer(from), "sender", ev.Sender())
			return p2p.Ignore, nil
		}
		if err := rooms.Verify(ev); err != nil {
			ps.gossipDropped.Add(1)
			ps.gossipLog.log(ps.log, slog.LevelInfo, "forged event dropped", "room", r.ID, "from", shortPeer(from), "event", ev.ID(), "err", err)
			return p2p.Reject, nil
		}
		gate.admitted(ev, time.Now())
		ps.verified.Put(ev.ID(), ev)
		return p2p.Accept, ev
	}
}

// receiveGossip queues the events the validator parsed and verified for
// the room's worker.
func (ps *Peers) receiveGossip(r *Room) p2p.Receiver {
	return func(from peer.ID, data []byte, validated any) {
		ev, ok := validated.(*rooms.Event)
		if !ok {
			return // held already
		}
		if !r.inbox.push(gossipMsg{from: from, ev: ev}) {
			ps.gossipLog.log(ps.log, slog.LevelWarn, "room inbox full; event dropped, catch-up will fetch it", "room", r.ID, "event", ev.ID(), "from", shortPeer(from))
		}
	}
}

// roomWorker ingests a room's gossip in arrival order. It never waits on
// the network: an event that cannot be placed yet is held a moment for
// what it builds on to arrive by gossip, then goes to a fetch beside the
// worker (fetch.go).
func (ps *Peers) roomWorker(ctx context.Context, r *Room) {
	f := newFetcher()
	// The release timer runs only while events are held, so an idle room
	// costs no wake-ups however many rooms the node holds.
	release := time.NewTimer(gossipGrace / 2)
	release.Stop()
	defer release.Stop()
	armed := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.done:
			return
		case <-r.inbox.ready:
			for _, m := range r.inbox.take() {
				if ps.dag.Known(m.ev.ID()) {
					continue
				}
				if ps.ingestOrFetch(r, f, m) {
					ps.placeHeld(r, f)
				}
			}
		case now := <-release.C:
			armed = false
			ps.releaseHeld(r, f, now)
		}
		if len(f.held) > 0 && !armed {
			release.Reset(gossipGrace / 2)
			armed = true
		}
		r.held.Store(int64(len(f.held)))
	}
}

// afterIngest reacts to an accepted remote event: new servers in the room
// get connected to.
func (ps *Peers) afterIngest(r *Room, out *dag.Outcome) {
	if out == nil || out.Rejected != nil || out.Info.Event.Type() != "m.room.member" {
		return
	}
	switch out.Info.Event.Membership() {
	case "join":
		ps.goBackground(func(ctx context.Context) { ps.connectRoomPeers(ctx, r) })
	case "leave", "ban":
		// A local user kicked or banned by another server.
		ps.CheckFollowing(r)
	}
}

// outboxSize bounds the local events waiting to be published; a sender
// beyond it waits (about 3 s of a busy room's sends).
const outboxSize = 1024

// outgoing is a local event waiting to be published.
type outgoing struct {
	r  *dag.Room
	ev *rooms.Event
}

// publishOut publishes queued local events until the node closes. Those
// still queued then are left: they are stored, and members fetch them
// at their next catch-up.
func (ps *Peers) publishOut(ctx context.Context) {
	defer ps.publishing.Store(false)
	for {
		select {
		case o := <-ps.outbox:
			ps.publish(o.r, o.ev)
		case <-ctx.Done():
			return
		}
	}
}

// publish sends an event to the room's other members.
func (ps *Peers) publish(r *dag.Room, ev *rooms.Event) {
	ctx, cancel := context.WithTimeout(ps.ctx, 10*time.Second)
	defer cancel()
	if err := ps.host.Publish(ctx, r.ID, ev.JSON()); err != nil {
		ps.log.Warn("publish", "room", r.ID, "event", ev.ID(), "err", err)
	}
}

// RoomServers lists the other servers with joined members.
func (ps *Peers) RoomServers(r *Room) []string {
	var out []string
	for s, id := range dag.MemberEvents(r.State()) {
		if s == ps.serverName || slices.Contains(out, s) {
			continue
		}
		if m, ok := ps.dag.MembershipOf(id); ok && m == "join" {
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

// connectRoomPeers dials every server in the room, so pubsub has a direct
// path to each and a partition heals as soon as a path exists.
func (ps *Peers) connectRoomPeers(ctx context.Context, r *Room) {
	for _, s := range ps.RoomServers(r) {
		p, err := peerOf(s)
		if err != nil {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		if err := ps.host.Connect(cctx, p); err != nil {
			ps.log.Debug("connect to room peer", "room", r.ID, "peer", shortPeer(p), "err", err)
		}
		cancel()
	}
}

// onPeerConnected catches up every room shared with the new peer.
func (ps *Peers) onPeerConnected(p peer.ID) {
	server, err := p2p.ServerNameFromPeerID(p)
	if err != nil {
		return
	}
	ps.KickOutbox() // what the outbox owes it may go now
	ps.mu.Lock()
	var shared []*Room
	for _, r := range ps.rooms {
		shared = append(shared, r)
	}
	ps.mu.Unlock()
	for _, r := range shared {
		if !r.Followed() {
			continue
		}
		in := ps.serverInRoom(r.State(), server)
		if in {
			ps.goBackground(func(ctx context.Context) { ps.CatchUp(ctx, r, p) })
		}
	}
}

// CatchUp asks a peer for its extremities of a room and fetches what this
// node lacks.
func (ps *Peers) CatchUp(ctx context.Context, r *Room, p peer.ID) {
	var resp ExtremitiesResp
	if err := ps.request(ctx, p, MethodExtremities, IDsReq{RoomID: r.ID}, &resp); err != nil {
		ps.log.Debug("catch-up", "room", r.ID, "peer", shortPeer(p), "err", err)
		return
	}
	if rs, ok := ps.currentSecret(r.ID); ok && resp.Epoch > rs.epoch {
		ps.pullSecret(ctx, r, p, rs.epoch)
	}
	var missing []string
	for _, id := range resp.EventIDs {
		if !ps.dag.Known(id) {
			missing = append(missing, id)
		}
	}
	if len(missing) == 0 {
		return
	}
	if len(missing) > MaxIDsPerReq {
		missing = missing[:MaxIDsPerReq]
	}
	if err := ps.fillGap(ctx, r, p, missing); err != nil {
		ps.log.Info("catch-up", "room", r.ID, "peer", shortPeer(p), "err", err)
	}
}

// WriteFailed is the engine's hook for a failed write (node/dag rolls the
// room back, forgetting the event): what was taken from a peer is fetched
// again from the room's connected members, once the roll-back is done,
// so a transient I/O error loses nothing that was acknowledged to no one.
// Local events are not fetched: their sender was told the send failed.
func (ps *Peers) WriteFailed(dr *dag.Room, ev *rooms.Event, err error) {
	if s, _ := rooms.ServerOf(ev.Sender()); s == ps.serverName {
		return
	}
	r := ps.Room(dr.ID)
	if r == nil || !r.Followed() || !r.refetching.CompareAndSwap(false, true) {
		return
	}
	ps.goBackground(func(ctx context.Context) {
		defer r.refetching.Store(false)
		if err := ps.dag.RollBack(dr); err != nil {
			ps.log.Warn("roll back after a failed write", "room", r.ID, "err", err)
			return
		}
		for _, p := range ps.connectedMembers(r) {
			ps.CatchUp(ctx, r, p)
		}
	})
}
