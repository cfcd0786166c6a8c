// Package node wires a parley daemon together: the node's identity, the
// Badger store, the libp2p host, the rooms engine and the local HTTP API.
//
// It is the only package that imports all the others. It owns the rules
// that span them: how an event from a client or a peer becomes part of a
// room's DAG (verify once, auth against its auth events, against the state
// before it, soft-fail against current state), how missing events are
// fetched from peers, and how invites and joins travel between nodes over
// the request protocol. cmd/parley only parses flags and signals.
package node
