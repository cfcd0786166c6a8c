package client

import "github.com/parley-p2p/parley/node/store"

// referMedia returns the write that records the media an event names,
// or nil. Not built yet.
func (api *API) referMedia(te *timelineEvent) func(*store.Txn, uint64) error { return nil }
