package dag

import (
	"bytes"
	"fmt"

	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/rooms"
)

// Event loads an event and its record, from cache or store. An event the
// node does not hold is store.ErrNotFound.
func (e *Engine) Event(id string) (*Info, error) {
	if i, ok := e.events.Get(id); ok {
		return i, nil
	}
	if !e.store.MayHaveEvent(id) {
		return nil, store.ErrNotFound // no transaction for an event that cannot be stored
	}
	var rec *store.EventRecord
	err := e.store.View(func(t *store.Txn) error {
		var err error
		rec, err = t.Event(id)
		return err
	})
	if err != nil {
		return nil, err
	}
	ev, err := parseStored(id, rec)
	if err != nil {
		return nil, err
	}
	i := &Info{Event: ev, Rec: *rec}
	i.Rec.PDU = nil
	i.Rec.Plain = bytes.Clone(rec.Plain) // not the whole record's bytes
	i.pos.Store(rec.Pos)
	e.events.Put(id, i)
	return i, nil
}

// Cached returns the event if the engine's cache holds it: events it
// admitted or read lately. Events just admitted are there before their
// writes commit. A reader that renders an event once and keeps nothing
// (an initial /sync reads tens of thousands) reads the others from its
// own transaction (store.Txn.Event, rooms.SkimStored) rather than
// through Event, which would parse each and push the hot set (the auth
// events admission reads again and again) out of the cache.
func (e *Engine) Cached(id string) (*Info, bool) { return e.events.Get(id) }

// parseStored reads back an event this node checked before storing it:
// its ID is the key it was stored under, so it is not hashed again.
func parseStored(id string, rec *store.EventRecord) (*rooms.Event, error) {
	ev, err := rooms.ParseTrusted(rec.PDU, rec.Version, id)
	if err != nil {
		return nil, fmt.Errorf("stored event %s: %w", id, err)
	}
	return ev, nil
}

// Known reports whether the event is stored (in any status).
func (e *Engine) Known(id string) bool {
	_, err := e.Event(id)
	return err == nil
}

// Snapshot loads a state by its ID.
func (e *Engine) Snapshot(id string) (store.StateMap, error) {
	if m, ok := e.snapshots.get(id); ok {
		return m, nil
	}
	var m store.StateMap
	err := e.store.View(func(t *store.Txn) error {
		var err error
		m, err = t.Snapshot(id, e.snapshots.get)
		return err
	})
	if err != nil {
		return nil, err
	}
	e.snapshots.put(id, m)
	return m, nil
}

// fetchEvent is the resolver's lookup.
func (e *Engine) fetchEvent(id string) (*rooms.Event, error) {
	i, err := e.Event(id)
	if err != nil {
		return nil, fmt.Errorf("event %s: %w", id, err)
	}
	return i.Event, nil
}

// StateFunc views a state map as the auth rules' lookup.
func (e *Engine) StateFunc(m store.StateMap) rooms.StateFunc {
	return func(k rooms.StateKey) *rooms.Event {
		id, ok := m[k]
		if !ok {
			return nil
		}
		i, err := e.Event(id)
		if err != nil {
			return nil
		}
		return i.Event
	}
}
