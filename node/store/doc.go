// Package store keeps everything a parley node persists in one Badger
// database: the room DAGs (events with their stream positions, and room
// states as deltas between checkpoints: see states.go), room heads, local
// accounts, access tokens (hashed), devices and their refresh tokens
// (hashed, devices.go), filters, transaction IDs, profiles and pending
// invites.
//
// Every write goes through a single read-write transaction committed with
// Badger's SyncWrites, so a call that returns nil is on disk. Badger batches
// concurrent commits into one write and one fsync, which is what lets many
// senders share the cost of durability. Updates run one at a time on the
// store's one writer goroutine (Store.Update): a function passed to it must
// never wait for a lock that its caller's goroutine may hold while it
// waits for the store, or the node deadlocks. Take such locks before
// queueing the update, or copy what the update needs first.
//
// Three indexes live in memory in front of Badger (indexes.go, bloom.go),
// invisible to callers: a Bloom filter of stored event IDs, so a lookup of
// an event the node cannot hold costs no read; a bounded cache of sessions
// by token; and every redaction by its target. They change only once the
// transaction that wrote them has committed (the filter may learn an ID
// early, which costs a read, never a wrong answer).
//
// The package knows the shape of the data, not the rules: it never decides
// whether an event is allowed or what a room's state is. Those belong to
// rooms, resolver and node.
package store
