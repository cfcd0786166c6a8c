// Package p2p moves bytes between parley nodes. It owns the libp2p host
// (TCP and QUIC, Noise and TLS, yamux, relay client and hole punching), the
// Kademlia DHT under the /parley protocol prefix (server mode, so that small
// networks work), mDNS on the LAN, one GossipSub topic per room
// ("/parley/room/<room ID>") and a request/response protocol over streams
// ("/parley/req/1", framing documented at RequestProtocol).
//
// A node's identity is one ed25519 key. Its Matrix server name is the lowercase
// hex of the public key and its peer ID is the libp2p ed25519 peer ID of the
// same key; PeerIDFromServerName and ServerNameFromPeerID convert between the
// two without any lookup.
//
// The package knows rooms only as ID strings and nodes only as peer IDs and
// server names: it must not import other parley packages (rooms, node) nor
// net/http, and it never parses what it carries. Validation of room messages
// and the meaning of request methods belong to the caller, through the
// Validator, Receiver and Handler callbacks.
//
// Room messages carry a small header (see order.go) so that each Receiver
// gets every author's messages in publishing order, although GossipSub
// delivers whichever copy arrives first, straight or relayed. Members can also
// find each other by room ID through DHT provider records (AdvertiseRoom,
// FindRoomPeers).
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
