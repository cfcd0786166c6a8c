package client

import (
	"encoding/json"
	"fmt"

	"github.com/parley-p2p/parley/node/peers"
	"github.com/parley-p2p/parley/node/store"
)

// Public read receipts (receipts.go) travel to a room's member nodes on
// the ephemeral channel (node/peers/ephemeral.go) as "m.receipt": one
// user's latest m.read receipt per thread, sent when it moves. Of the
// sends of one user and thread still waiting, only the latest goes. A
// receipt for an event the receiving node does not hold yet is refused
// there (best-effort, as typing).

// receiptContent is an m.receipt ephemeral request's content.
type receiptContent struct {
	UserID   string `json:"user_id"`
	EventID  string `json:"event_id"`
	ThreadID string `json:"thread_id,omitempty"`
	TS       int64  `json:"ts"`
}

// sendReceipt carries a local user's public receipt to the room's member
// nodes (the OnLocalReceipt hook).
func (api *API) sendReceipt(r store.Receipt) {
	if r.Type != "m.read" {
		return // m.read.private never leaves the node
	}
	body, err := json.Marshal(receiptContent{UserID: r.User, EventID: r.EventID, ThreadID: r.Thread, TS: r.TS})
	if err != nil {
		return
	}
	api.peers.SendEphemeral(r.Room, "m.receipt", r.User+"\x00"+r.Thread, body, nil)
}

// onRemoteReceipt takes a member node's receipt for one of its users.
func (api *API) onRemoteReceipt(server, roomID string, content json.RawMessage) error {
	var c receiptContent
	if err := json.Unmarshal(content, &c); err != nil {
		return fmt.Errorf("m.receipt: %v", err)
	}
	if !peers.OfServer(c.UserID, server) {
		return fmt.Errorf("m.receipt of %q, not a user of the sending server", c.UserID)
	}
	return api.RemoteReceipt(roomID, c.UserID, c.EventID, c.ThreadID, c.TS)
}
