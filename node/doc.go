// Package node wires a parley daemon together and owns its lifecycle: the
// node's identity and data dir, the Badger store, the engine (node/dag),
// the libp2p host and the peer protocol over it (node/peers), the client
// API (node/client) and its HTTP server (webui), started in an order that
// fails early and closed in the reverse one.
//
// It is the only package that imports all the others, and it holds no
// rules of its own: admission is node/dag's, what goes between nodes is
// node/peers', and what a client sees is node/client's. cmd/parley only
// parses flags and signals.
package node
