package client

import "github.com/parley-p2p/parley/node/store"

// indexText returns the write that keeps an event's text in the search
// index, or nil. Not built yet.
func (api *API) indexText(te *timelineEvent) func(*store.Txn, uint64) error { return nil }
