package peers

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/parley-p2p/parley/node/dag"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-p2p/parley/p2p"
	"github.com/parley-p2p/parley/rooms"
)

// Fetching what a gossiped event builds on waits on the network, for as
// long as a peer takes not to answer. A room has one worker, so that wait
// must not happen on it: an author whose events name unknown auth and
// prev events and who then never answers stalled every member's messages
// for 20 s an event. The worker processes what it can place at once and
// hands the rest to fetches running beside it (at most one per author, a
// few per room); an author's further events that cannot be placed wait for
// its fetch and go back to the worker when it ends.
const (
	// memberAskTimeout bounds each request to a member other than the
	// event's author: asked first, they should answer at once or not at
	// all.
	memberAskTimeout = 5 * time.Second
	// maxFetchesPerRoom bounds the fetches running for one room.
	maxFetchesPerRoom = 4
	// maxParkedPerAuthor and maxParkedPerRoom bound the events waiting
	// for a fetch (at most 512 x 64 KiB a room); beyond them events are
	// dropped (catch-up brings them).
	maxParkedPerAuthor = 64
	maxParkedPerRoom   = 512
	// maxFetchTries: an event whose dependencies two fetches could not
	// bring is dropped.
	maxFetchTries = 2
	// gossipGrace is how long the worker holds an event whose prev or
	// auth events it lacks before fetching them. With several members
	// sending at once an event often overtakes what it builds on by a
	// moment; fetching at once cost every member requests for events
	// already on their way (a third of three pipelined senders'
	// throughput). maxHeld bounds the events held (beyond it they go to
	// a fetch at once).
	gossipGrace = 200 * time.Millisecond
	maxHeld     = 256
)

// fetcher is the fetch state of one room's worker.
type fetcher struct {
	mu      sync.Mutex
	running map[peer.ID]bool        // authors with a fetch under way
	parked  map[peer.ID][]gossipMsg // waiting for their author's fetch
	nParked int
	tries   map[string]int // event ID -> fetches started for it

	// held: events waiting a moment for their ancestors by gossip, with
	// when they came; only the worker touches it.
	held map[string]heldMsg
}

type heldMsg struct {
	m     gossipMsg
	since time.Time
}

func newFetcher() *fetcher {
	return &fetcher{running: make(map[peer.ID]bool), parked: make(map[peer.ID][]gossipMsg), tries: make(map[string]int), held: make(map[string]heldMsg)}
}

// ingestOrFetch processes a gossiped event on the room's worker if it can
// be placed now, and otherwise holds it a moment for its ancestors or
// starts, or waits for, a fetch of what it builds on. It reports whether
// the event was placed.
func (ps *Peers) ingestOrFetch(r *Room, f *fetcher, m gossipMsg) bool {
	return ps.ingestOrHold(r, f, m, true)
}

func (ps *Peers) ingestOrHold(r *Room, f *fetcher, m gossipMsg, mayHold bool) bool {
	out, err := ps.dag.Admit(r.Room, m.ev, dag.Opts{})
	var miss *dag.Missing
	switch {
	case err == nil:
		ps.afterIngest(r, out)
		return true
	case !errors.As(err, &miss):
		ps.gossipLog.log(ps.log, slog.LevelInfo, "gossip event not ingested", "room", r.ID, "event", m.ev.ID(), "err", err)
		return false
	}
	if !ps.mayFetchFor(r, m) {
		ps.gossipLog.log(ps.log, slog.LevelInfo, "not fetching for a server not in the room", "room", r.ID, "event", m.ev.ID(), "sender", m.ev.Sender())
		return false
	}
	if _, ok := f.held[m.ev.ID()]; ok {
		return false
	}
	f.mu.Lock()
	fetched := f.tries[m.ev.ID()] > 0
	f.mu.Unlock()
	if mayHold && !fetched && len(f.held) < maxHeld {
		f.held[m.ev.ID()] = heldMsg{m: m, since: time.Now()}
		return false
	}
	ps.fetchFor(r, f, m)
	return false
}

// placeHeld places the held events whose ancestors have come, until no
// more can be placed.
func (ps *Peers) placeHeld(r *Room, f *fetcher) {
	for progress := true; progress && len(f.held) > 0; {
		progress = false
		for id, h := range f.held {
			if !ps.ancestorsKnown(h.m.ev) {
				continue
			}
			delete(f.held, id)
			if ps.ingestOrHold(r, f, h.m, false) {
				progress = true
			}
		}
	}
}

// releaseHeld sends the events held for longer than gossipGrace to fetches.
func (ps *Peers) releaseHeld(r *Room, f *fetcher, now time.Time) {
	placed := false
	for id, h := range f.held {
		if now.Sub(h.since) >= gossipGrace {
			delete(f.held, id)
			if !ps.dag.Known(id) && ps.ingestOrHold(r, f, h.m, false) {
				placed = true
			}
		}
	}
	if placed {
		ps.placeHeld(r, f)
	}
}

// ancestorsKnown reports whether every prev and auth event of ev is known.
func (ps *Peers) ancestorsKnown(ev *rooms.Event) bool {
	for _, ids := range [][]string{ev.PrevEvents(), ev.AuthEvents()} {
		for _, id := range ids {
			if !ps.dag.Known(id) {
				return false
			}
		}
	}
	return true
}

// fetchFor starts, or waits for, a fetch of what m builds on.
func (ps *Peers) fetchFor(r *Room, f *fetcher, m gossipMsg) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.tries[m.ev.ID()] >= maxFetchTries {
		ps.gossipLog.log(ps.log, slog.LevelInfo, "gossip event dropped: its ancestors could not be fetched", "room", r.ID, "event", m.ev.ID())
		return
	}
	if f.running[m.from] || len(f.running) >= maxFetchesPerRoom {
		if len(f.parked[m.from]) >= maxParkedPerAuthor || f.nParked >= maxParkedPerRoom {
			ps.gossipLog.log(ps.log, slog.LevelInfo, "gossip event dropped: too many waiting for fetches", "room", r.ID, "event", m.ev.ID())
			return
		}
		f.parked[m.from] = append(f.parked[m.from], m)
		f.nParked++
		return
	}
	if len(f.tries) >= maxParkedPerRoom {
		clear(f.tries)
	}
	f.tries[m.ev.ID()]++
	f.running[m.from] = true
	ps.goBackground(func(ctx context.Context) { ps.fetchAndIngest(ctx, r, f, m) })
}

// fetchAndIngest fetches what m builds on and ingests it, then hands the
// events that waited back to the worker: the author's own, and others
// waiting for a free fetch slot.
func (ps *Peers) fetchAndIngest(ctx context.Context, r *Room, f *fetcher, m gossipMsg) {
	out, err := ps.ingestRemote(ctx, r, m.ev, m.from, false)
	if err != nil {
		ps.gossipLog.log(ps.log, slog.LevelInfo, "gossip event not ingested", "room", r.ID, "event", m.ev.ID(), "err", err)
	} else {
		ps.afterIngest(r, out)
	}
	f.mu.Lock()
	delete(f.running, m.from)
	// The author's own first, then every other parked author's, since one
	// of them may have waited for the slot rather than for its author.
	var requeue []gossipMsg
	authors := []peer.ID{m.from}
	for p := range f.parked {
		if p != m.from && !f.running[p] {
			authors = append(authors, p)
		}
	}
	for _, p := range authors {
		requeue = append(requeue, f.parked[p]...)
		f.nParked -= len(f.parked[p])
		delete(f.parked, p)
	}
	f.mu.Unlock()
	for _, w := range requeue {
		if !r.inbox.push(w) {
			ps.gossipLog.log(ps.log, slog.LevelWarn, "room inbox full; event dropped, catch-up will fetch it", "room", r.ID, "event", w.ev.ID())
		}
	}
}

// mayFetchFor reports whether the event's sender, or the peer that
// published it, is of a server with a user joined, invited or knocking in
// the room: fetching costs the node and the members it asks, and is spent
// only on behalf of the room's members.
func (ps *Peers) mayFetchFor(r *Room, m gossipMsg) bool {
	state := r.State()
	speaking := ps.speakingServers(state)
	if s, err := rooms.ServerOf(m.ev.Sender()); err == nil && speaking[s] {
		return true
	}
	s, err := p2p.ServerNameFromPeerID(m.from)
	return err == nil && speaking[s]
}

// fetchSources lists whom to ask for what an event from the peer from
// builds on: the room's other connected members, then from itself if its
// server has a place in the room.
func (ps *Peers) fetchSources(r *Room, from peer.ID) []peer.ID {
	members := ps.connectedMembers(r)
	out := make([]peer.ID, 0, len(members)+1)
	for _, p := range members {
		if p != from {
			out = append(out, p)
		}
	}
	if slices.Contains(members, from) {
		out = append(out, from)
	} else if s, err := p2p.ServerNameFromPeerID(from); err == nil {
		state := r.State()
		if ps.serverInRoom(state, s) {
			out = append(out, from)
		}
	}
	return out
}

// askContext bounds a request to p: members other than the event's author
// get memberAskTimeout.
func (ps *Peers) askContext(ctx context.Context, p, from peer.ID) (context.Context, context.CancelFunc) {
	if p == from {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, min(memberAskTimeout, ps.cfg.RequestTimeout))
}

// askInTurn tries f with each source in turn until one succeeds.
func (ps *Peers) askInTurn(ctx context.Context, sources []peer.ID, from peer.ID, f func(context.Context, peer.ID) error) error {
	var first error
	for _, p := range sources {
		actx, cancel := ps.askContext(ctx, p, from)
		err := f(actx, p)
		cancel()
		if err == nil {
			return nil
		}
		if first == nil {
			first = err
		}
	}
	return first
}
