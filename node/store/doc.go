// Package store keeps everything a parley node persists in one Badger
// database: the room DAGs (events with their stream positions, and room
// states as deltas between checkpoints: see states.go), room heads, local
// accounts, access tokens (hashed), filters, transaction IDs, profiles and
// pending invites.
//
// Every write goes through a single read-write transaction committed with
// Badger's SyncWrites, so a call that returns nil is on disk. Badger batches
// concurrent commits into one write and one fsync, which is what lets many
// senders share the cost of durability.
//
// The package knows the shape of the data, not the rules: it never decides
// whether an event is allowed or what a room's state is. Those belong to
// rooms, resolver and node.
package store
