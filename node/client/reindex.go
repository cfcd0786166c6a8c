package client

import (
	"context"
	"sync"
	"time"

	"github.com/parley-p2p/parley/node/dag"
	"github.com/parley-p2p/parley/node/store"
)

// The reindex job fills the records kept per shown event (the search
// index, relations, media references: every OnTimeline hook but the
// notices, which count only what is new) for the events a room held
// before this version of them. Each room's progress is kept in the
// store (store.IndexProgress): the job walks the room's timeline from
// the newest event it finds at its first start down to the oldest, in
// batches, one write per batch, resting between them, and marks the
// room done; events placed
// after that start are indexed live. The hooks are idempotent, so a
// batch walked twice (a crash between a write and its mark) does no
// harm. Bump indexVersion to walk every room again.

const (
	// indexVersion is the version of the records the hooks keep.
	indexVersion = 1
	// reindexBatch is the most events one write of the job indexes; a
	// write too big for one transaction is split. Smaller than the
	// store's group commit, so that a send queued behind a batch waits
	// for little.
	reindexBatch = 250
	// reindexPause is the job's least rest between batches; it rests as
	// long as the batch took, so that it takes at most half of the
	// writer and of a CPU.
	reindexPause = 20 * time.Millisecond
)

// StartReindex starts the reindex job; stop cancels it and returns once
// it has ended. It ends by itself when every room is done.
func (api *API) StartReindex() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := api.reindex(ctx); err != nil && ctx.Err() == nil {
			api.log.Warn("reindex", "err", err)
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			wg.Wait()
		})
	}
}

// reindex walks every room not done at this version.
func (api *API) reindex(ctx context.Context) error {
	for _, r := range api.dag.Rooms() {
		if err := api.reindexRoom(ctx, r); err != nil {
			return err
		}
	}
	return nil
}

// ReindexDone reports whether the job has walked a room at this version
// (tests).
func (api *API) ReindexDone(roomID string) bool {
	var p *store.IndexProgress
	api.store.View(func(t *store.Txn) error {
		var err error
		p, err = t.IndexProgress(roomID)
		return err
	})
	return p != nil && p.Version == indexVersion && p.Done
}

// reindexRoom walks one room's timeline down from where it stopped.
func (api *API) reindexRoom(ctx context.Context, r *dag.Room) error {
	var p *store.IndexProgress
	if err := api.store.View(func(t *store.Txn) error {
		var err error
		p, err = t.IndexProgress(r.ID)
		return err
	}); err != nil {
		return err
	}
	if p != nil && p.Version == indexVersion && p.Done {
		return nil
	}
	if api.forgottenByAll(r.ID) {
		return nil // nobody here may read it: nothing to keep (search.go)
	}
	if p == nil || p.Version != indexVersion {
		upto := store.LiveBase + api.store.Pos()
		p = &store.IndexProgress{Version: indexVersion, Upto: upto, Below: upto + 1}
	}
	batch := reindexBatch
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		began := time.Now()
		var entries []store.TimelineEntry
		if err := api.store.View(func(t *store.Txn) error {
			var err error
			entries, err = t.Timeline(r.ID, 0, p.Below-1, false, batch)
			return err
		}); err != nil {
			return err
		}
		next := *p
		if len(entries) == 0 {
			next.Done = true
		} else {
			next.Below = entries[len(entries)-1].Order
		}
		type write struct {
			order uint64
			w     func(*store.Txn, uint64) error
		}
		var ws []write
		for _, e := range entries {
			i, err := api.dag.Event(e.EventID)
			if err != nil {
				continue // not readable here: nothing to index
			}
			how := dag.LatePlain // the event is stored: its records are written again
			if e.Order < store.LiveBase {
				how = dag.LateHistoryPlain
			}
			te := &timelineEvent{Room: r, Event: i.Event, Plain: i.Rec.Plain, How: how}
			if w := allWrites(api.indexText(te), api.relate(te), api.referMedia(te)); w != nil {
				ws = append(ws, write{e.Order, w})
			}
		}
		err := api.store.Update(func(t *store.Txn) error {
			for _, w := range ws {
				if err := w.w(t, w.order); err != nil {
					return err
				}
			}
			return t.PutIndexProgress(r.ID, &next)
		})
		if store.IsTooBig(err) && batch > 1 {
			batch /= 2 // the same events again, fewer at a time
			continue
		}
		if err != nil {
			return err
		}
		if next.Done {
			return nil
		}
		*p = next
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(max(reindexPause, time.Since(began))):
		}
	}
}
