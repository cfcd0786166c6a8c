package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/rooms"
)

// The room's write path: each admitted event's write is queued (or
// batched), a failed write marks the room broken, and the room's head in
// memory is rolled back to what the store holds.

// batchedWrite is a write gathered for one transaction, and what hears
// its result.
type batchedWrite struct {
	write  func(*store.Txn) error
	finish func(error)
}

// errRoomRolledBack fails the writes queued behind a failed write of the
// same room: they may build on the event that is not stored.
var errRoomRolledBack = errors.New("an earlier write of the room failed")

// queueWrite queues one of the room's writes (or adds it to the room's
// batch). A failure marks the room broken, so that every write queued
// after it fails as well and the room's next change first rolls memory
// back. then, if set, also hears the result. The caller holds r.mu.
func (n *Node) queueWrite(r *room, ev *rooms.Event, write func(*store.Txn) error, then func(error)) <-chan error {
	guarded := func(t *store.Txn) error {
		if r.broken.Load() {
			return errRoomRolledBack
		}
		if n.cfg.failWrite != nil {
			if err := n.cfg.failWrite(ev); err != nil {
				return err
			}
		}
		return write(t)
	}
	result := func(err error) {
		if err != nil {
			r.failMu.Lock()
			r.failed = append(r.failed, ev.ID())
			r.failErr = err
			r.failMu.Unlock()
			r.broken.Store(true)
			n.scheduleRollBack(r)
		}
		if then != nil {
			then(err)
		}
	}
	if r.batch != nil {
		done := make(chan error, 1)
		*r.batch = append(*r.batch, batchedWrite{write: guarded, finish: func(err error) {
			result(err)
			done <- err
		}})
		return done
	}
	return n.store.UpdateThen(guarded, result)
}

// scheduleRollBack rolls a broken room back soon, rather than at its next
// change, so that nothing reads the events that were not stored (a peer
// asking for the room's extremities, say) in the meantime.
func (n *Node) scheduleRollBack(r *room) {
	if r.batch != nil || n.ctx.Err() != nil || !r.rollingBack.CompareAndSwap(false, true) {
		return
	}
	n.goBackground(func(context.Context) {
		defer r.rollingBack.Store(false)
		r.mu.Lock()
		defer r.mu.Unlock()
		if err := n.rollBack(r); err != nil {
			n.log.Warn("roll back", "room", r.id, "err", err)
		}
	})
}

// rollBack makes the room's memory what the disk holds after a failed
// write: it waits for the writes in flight, forgets the events that were
// not stored and reloads the room's head. The caller holds r.mu.
func (n *Node) rollBack(r *room) error {
	if !r.broken.Load() {
		return nil
	}
	n.store.Barrier()
	r.failMu.Lock()
	failed, failErr := r.failed, r.failErr
	r.failed, r.failErr = nil, nil
	r.failMu.Unlock()
	for _, id := range failed {
		n.events.del(id)
	}
	var rec *store.RoomRecord
	err := n.store.View(func(t *store.Txn) error {
		var err error
		rec, err = t.Room(r.id)
		return err
	})
	switch {
	case errors.Is(err, store.ErrNotFound):
		r.ext, r.state, r.stateID, r.depth = nil, store.StateMap{}, "", 0
	case err != nil:
		return fmt.Errorf("roll back room %s: %w", r.id, err)
	default:
		state, err := n.snapshot(rec.State)
		if err != nil {
			return fmt.Errorf("roll back room %s: %w", r.id, err)
		}
		r.ext, r.state, r.stateID, r.depth, r.minOrder = rec.Extremities, state, rec.State, rec.Depth, rec.MinOrder
	}
	r.broken.Store(false)
	level := slog.LevelWarn
	var full *store.DiskFullError
	if errors.As(failErr, &full) {
		level = slog.LevelDebug // the store says once that the disk is full
	}
	n.log.Log(n.ctx, level, "a write failed; the room's head in memory is rolled back to the stored one", "room", r.id, "events_dropped", len(failed), "err", failErr)
	return nil
}

func txnKey(user, device, txn string) string { return user + "\x00" + device + "\x00" + txn }

func closedNil() <-chan error {
	c := make(chan error, 1)
	c <- nil
	return c
}
