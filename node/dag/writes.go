package dag

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
func (e *Engine) queueWrite(r *Room, ev *rooms.Event, write func(*store.Txn) error, then func(error)) <-chan error {
	guarded := func(t *store.Txn) error {
		if r.broken.Load() {
			return errRoomRolledBack
		}
		if e.cfg.FailWrite != nil {
			var plain []byte
			if i, ok := e.events.Get(ev.ID()); ok {
				plain = i.Rec.Plain
			}
			if err := e.cfg.FailWrite(ev, plain); err != nil {
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
			e.scheduleRollBack(r)
		}
		if then != nil {
			then(err)
		}
		if err != nil && e.cfg.OnWriteFailed != nil && r.batch == nil {
			e.cfg.OnWriteFailed(r, ev, err)
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
	return e.store.UpdateThen(guarded, result)
}

// scheduleRollBack rolls a broken room back soon, rather than at its next
// change, so that nothing reads the events that were not stored (a peer
// asking for the room's extremities, say) in the meantime.
func (e *Engine) scheduleRollBack(r *Room) {
	if r.batch != nil || e.ctx.Err() != nil || !r.rollingBack.CompareAndSwap(false, true) {
		return
	}
	e.goBackground(func(context.Context) {
		defer r.rollingBack.Store(false)
		r.mu.Lock()
		defer r.mu.Unlock()
		if err := e.rollBack(r); err != nil {
			e.log.Warn("roll back", "room", r.ID, "err", err)
		}
	})
}

// rollBack makes the room's memory what the disk holds after a failed
// write: it waits for the writes in flight, forgets the events that were
// not stored and reloads the room's head. The caller holds r.mu.
func (e *Engine) rollBack(r *Room) error {
	if !r.broken.Load() {
		return nil
	}
	e.store.Barrier()
	r.failMu.Lock()
	failed, failErr := r.failed, r.failErr
	r.failed, r.failErr = nil, nil
	r.failMu.Unlock()
	for _, id := range failed {
		e.events.Del(id)
	}
	var rec *store.RoomRecord
	err := e.store.View(func(t *store.Txn) error {
		var err error
		rec, err = t.Room(r.ID)
		return err
	})
	switch {
	case errors.Is(err, store.ErrNotFound):
		r.setHead(Head{State: store.StateMap{}})
	case err != nil:
		return fmt.Errorf("roll back room %s: %w", r.ID, err)
	default:
		state, err := e.Snapshot(rec.State)
		if err != nil {
			return fmt.Errorf("roll back room %s: %w", r.ID, err)
		}
		r.setHead(Head{Ext: rec.Extremities, State: state, StateID: rec.State, Depth: rec.Depth, MinOrder: rec.MinOrder})
	}
	r.broken.Store(false)
	level := slog.LevelWarn
	var full *store.DiskFullError
	if errors.As(failErr, &full) {
		level = slog.LevelDebug // the store says once that the disk is full
	}
	e.log.Log(e.ctx, level, "a write failed; the room's head in memory is rolled back to the stored one", "room", r.ID, "events_dropped", len(failed), "err", failErr)
	return nil
}

func txnKey(user, device, txn string) string { return user + "\x00" + device + "\x00" + txn }

// scopedTxn is a client transaction ID in its scope: a device's ID is
// its own on each endpoint, in each room (the spec's transaction
// identifiers), so the same ID sent to another room, or as a redaction
// and a message, makes a new event. A redaction keeps its type when
// sealed, so the type says the endpoint before and after.
func scopedTxn(roomID, evType, txn string) string {
	endpoint := "send"
	if evType == "m.room.redaction" {
		endpoint = "redact"
	}
	return roomID + "\x00" + endpoint + "\x00" + txn
}

func closedNil() <-chan error {
	c := make(chan error, 1)
	c <- nil
	return c
}

// RollBack makes the room's memory what the disk holds if a write of the
// room failed; otherwise it does nothing.
func (e *Engine) RollBack(r *Room) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return e.rollBack(r)
}
