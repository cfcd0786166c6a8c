// Package p2p moves bytes between parley nodes. It owns the libp2p host
// (TCP and QUIC, Noise and TLS, yamux, relay client and hole punching), the
// Kademlia DHT under the /parley protocol prefix (server mode, so that small
// networks work), mDNS on the LAN, GossipSub topics for rooms and a
// request/response protocol over streams ("/parley/req/1", framing
// documented at RequestProtocol).
//
// A node's identity is one ed25519 key. Its Matrix server name is the lowercase
// hex of the public key and its peer ID is the libp2p ed25519 peer ID of the
// same key; PeerIDFromServerName and ServerNameFromPeerID convert between the
// two without any lookup.
//
// The package knows rooms only as handles (the caller's room IDs, which
// never go on the wire) and nodes only as peer IDs and server names: it must
// not import other parley packages (rooms, node) nor net/http, and it never
// parses what it carries. Validation of room messages and the meaning of
// request methods belong to the caller, through the Validator, Receiver and
// Handler callbacks.
//
// Nothing a room puts on the wire names it. The caller gives each room opaque
// topic names and keys (RoomKeys, derived from what only members know), and
// every message on a room topic is sealed under its topic's key and padded
// (envelope.go), with a small header inside (order.go) so that each Receiver
// gets every author's messages in publishing order, although GossipSub
// delivers whichever copy arrives first, straight or relayed. Who may take
// part in a room's topics is the caller's members filter (SetRoomMembers):
// other peers' subscriptions are dropped, so they get none of its messages.
// Members find each other through DHT provider records under opaque
// rendezvous keys (AdvertiseRendezvous, FindRendezvous).
//
// Beyond the LAN (relay.go, limited.go): AutoNAT tells a node whether it is
// publicly reachable (Reachability). A node that is not holds reservations
// with circuit relays (Config.Relays, or bootstrap peers offering the relay
// service) and advertises circuit addresses through them (RelayAddrs, Addrs);
// DCUtR hole punching then tries to replace relayed connections with direct
// ones. Requests and room messages also work over relayed connections, so two
// nodes behind NATs that defeat hole punching still talk, through the relay.
// A reachable node can be a relay for others (Config.RelayService), with
// limits sized for conversations rather than for hole punching alone.
//
// Lifecycle: New checks the Config and starts nothing; Start binds every
// listen address (a clash is an error) and starts the services; Close is
// idempotent and waits for every goroutine the Host started.
package p2p
