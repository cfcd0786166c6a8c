// Package client is what the Matrix client-server API means on a parley
// node. It owns accounts, sessions and the claim (accounts.go, claim.go,
// cli.go), rooms and their events (api.go, build.go), membership
// (membership.go), /sync (sync.go), invite links (links.go) and blocked
// servers (invites.go), and each user's own data: account data and
// pushers (userdata.go), push rules and their evaluator (pushrules.go),
// receipts (receipts.go), and their part of /sync with notification
// counts (usersync.go). It implements the interfaces webui defines per
// role; webui turns them into HTTP. Clients see each event's plain view
// (plain.go): decrypted content, or the wire form marked waiting or
// forged; the codec's own events never.
//
// It builds and admits local events through the engine (node/dag) and
// reaches other nodes only through node/peers. It never imports p2p.
package client
