// Package peers is the node-to-node side of a parley node: what it sends
// other nodes and what it takes from them. It follows each room a
// local user is in over GossipSub (follow.go), validates and ingests the
// room's gossip (ingest.go: the validator's membership gate in gate.go,
// one worker per room, held events and fetches in fetch.go), fills gaps
// and catches up with members that come back (ingest.go), answers and
// asks the request methods of wire.go (federation.go, backfill.go),
// carries invites, joins, knocks and link uses between nodes
// (membership.go, knock.go, invites.go, links.go), keeps connections to
// rooms' servers (maintain.go: redial, rendezvous in the DHT; the
// addresses that reached them, peeraddrs.go; the set of them the relay
// serves, relayset.go), and
// carries data that is not in a room's DAG (typing, presence) to member
// nodes, each kind to the handler the client API registers
// (ephemeral.go). It fetches media from the members of the rooms that
// reference it and serves them what it holds, sealed under the room's
// secret, and prefetches small media (media.go, mediafetch.go,
// mediawork.go).
//
// Nothing it puts on the wire names a room to a non-member: each room has
// a secret (secret.go) from which its gossip topics and keys, its DHT
// rendezvous keys and its request key derive; room requests travel sealed
// (envelope.go); the secret reaches new members sealed to their node's KEM
// key, in invites and send_join answers (keys.go), or in invite links.
//
// Every event it takes from a peer goes through the engine (node/dag)
// for admission; peers decides only what to fetch, from whom, and what a
// peer may see. It never imports webui or the client API.
package peers
