// Package resolver implements Matrix state resolution: version 2 for room
// versions 10 and 11 and version 2.1 (MSC4297) for room version 12.
//
// Given the room states after several forward extremities (or after the
// prev_events of one event), [Resolve] computes the single state they merge
// into: it splits the states into unconflicted and conflicted entries, widens
// the conflict with the auth difference (and, for v2.1, the conflicted state
// subgraph), replays the power events in reverse topological power order and
// the rest in mainline order through the iterative auth checks, and finally
// lays the unconflicted state back on top.
//
// Resolution is a pure function of its inputs: events arrive through an
// [EventFunc] callback and the authorization rules come from package rooms.
// This package must not do I/O and must not import the network (libp2p,
// net/http), the store (badger) or any other parley package; the DAG store
// sits above it and calls in. deps_test.go enforces this.
package resolver
