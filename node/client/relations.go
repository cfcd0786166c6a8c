package client

import "github.com/parley-p2p/parley/node/store"

// relate returns the write that keeps an event's relation (m.relates_to)
// indexed, or nil. Not built yet.
func (api *API) relate(te *timelineEvent) func(*store.Txn, uint64) error { return nil }
