package p2p

import (
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// SetRoomMembers sets who may take part in a room's topics: a peer that
// allowed refuses gets none of the room's messages from us (its
// subscription is dropped, see subFilter), is left out of the room's mesh
// and gossip, and what it relays to us is ignored unread. allowed runs on
// pubsub's event loop: it must be quick and must not call the Host. A
// room without a filter (nil) allows everyone. It may be set before the
// room is joined.
//
// Call RoomMembersChanged when the set allowed grows, so that a peer whose
// subscription was dropped is asked to announce it again.
func (h *Host) SetRoomMembers(roomID string, allowed func(peer.ID) bool) {
	h.subs.setMembers(roomID, allowed)
}

// RoomMembersChanged tells the Host that a room's members filter may now
// allow peers it refused before. It does not block.
func (h *Host) RoomMembersChanged(string) { h.subs.changed() }

// rehelloEvery is how often refused subscriptions are looked at again
// without being told of a change.
const rehelloEvery = time.Minute

// rehelloLoop asks peers whose subscription to a room was refused, and
// which are now allowed, to announce their subscriptions again. Pubsub
// does not ask again by itself: a dropped subscription comes back only
// with a fresh hello, which the peer sends on a new stream, once the
// stream it writes to us fails. Failing that stream alone would make the
// peer forget our subscriptions in turn (its pubsub declares us dead), so
// both sides re-announce, in an order that neither loses (resync).
func (h *Host) rehelloLoop() {
	tick := time.NewTicker(rehelloEvery)
	defer tick.Stop()
	for {
		select {
		case <-h.ctx.Done():
			return
		case <-tick.C:
		case <-h.subs.wake:
		}
		lh, _, err := h.running()
		if err != nil {
			return
		}
		for _, p := range h.subs.nowAllowed() {
			if connectedOrRelayed(lh, p) {
				h.spawn(func() { h.resync(lh, p, "rehello") })
			}
		}
	}
}
