package client

import (
	"encoding/json"
	"errors"
	"strings"

	"github.com/parley-p2p/parley/errs"
	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/rooms"
	"github.com/parley-p2p/parley/webui"
)

// Read receipts and the fully-read marker. Receipts are stored per room,
// user, type and thread; m.read.private never leaves the node nor reaches
// another user's /sync. Carrying m.read to other nodes is the wire's job:
// it calls LocalReceipts to know what to send and RemoteReceipt with what
// it receives.

// maxThreadReceipts bounds the threaded receipts a user keeps in a room
// (per room, both types together); beyond it, the oldest is dropped.
const maxThreadReceipts = 64

func memberKey(user string) rooms.StateKey {
	return rooms.StateKey{Type: "m.room.member", StateKey: user}
}

// membershipIn is the user's current membership in a room the node
// holds; "" if none.
func (api *API) membershipIn(roomID, user string) string {
	r := api.dag.Room(roomID)
	if r == nil {
		return ""
	}
	id, ok := r.State()[memberKey(user)]
	if !ok {
		return ""
	}
	return api.membership(nil, id)
}

// Receipt implements webui.UserData.
func (api *API) Receipt(s *webui.Session, roomID, receiptType, eventID, threadID string) error {
	if api.membershipIn(roomID, s.UserID) != "join" {
		return errs.Forbiddenf("you are not joined to room %s", roomID)
	}
	i, err := api.dag.Event(eventID)
	if err != nil || i.Event.RoomID() != roomID {
		return errs.NotFoundf("no event %s in room %s", eventID, roomID)
	}
	if err := api.checkThread(eventID, threadID); err != nil {
		return err
	}
	if receiptType == "m.fully_read" {
		if api.fullyReadAhead(s.UserID, roomID, eventID) {
			return nil // the marker only moves forward
		}
		content, _ := json.Marshal(map[string]string{"event_id": eventID})
		if err := api.putAccountData(s.UserID, roomID, "m.fully_read", content); err != nil {
			return err
		}
		api.notify.wake(s.UserID)
		return nil
	}
	rec := &store.Receipt{Room: roomID, User: s.UserID, Type: receiptType, Thread: threadID, EventID: eventID, TS: nowMS()}
	moved, err := api.putReceipt(rec)
	if err != nil || !moved {
		return err
	}
	if receiptType == "m.read.private" {
		api.notify.wake(s.UserID)
		return nil
	}
	api.wakeRoom(roomID)
	if f := api.onReceipt.Load(); f != nil {
		(*f)(*rec)
	}
	return nil
}

// OnLocalReceipt sets a function that hears each public (m.read) receipt
// a local user sends, after it is stored, for the wire to carry to the
// room's other nodes; nil stops it. It must not block: it runs in the
// client's request.
func (api *API) OnLocalReceipt(f func(store.Receipt)) {
	if f == nil {
		api.onReceipt.Store(nil)
		return
	}
	api.onReceipt.Store(&f)
}

// fullyReadAhead reports whether the user's fully-read marker in the room
// already points at or after the event.
func (api *API) fullyReadAhead(user, roomID, eventID string) bool {
	ahead := false
	_ = api.store.View(func(t *store.Txn) error {
		ad, err := t.AccountDataEntry(user, roomID, "m.fully_read")
		if err != nil {
			return nil
		}
		var c struct {
			EventID string `json:"event_id"`
		}
		if json.Unmarshal(ad.Content, &c) == nil && c.EventID != "" {
			ahead = c.EventID == eventID || storedOrder(t, c.EventID) > storedOrder(t, eventID)
		}
		return nil
	})
	return ahead
}

// checkThread refuses a threaded receipt for an event that is neither
// the thread's root nor in the thread, as the spec asks.
func (api *API) checkThread(eventID, threadID string) error {
	if threadID == "" || threadID == "main" || threadID == eventID {
		return nil
	}
	e, err := api.readShown(nil, eventID)
	if err != nil {
		return err
	}
	var c struct {
		Rel struct {
			Type    string `json:"rel_type"`
			EventID string `json:"event_id"`
		} `json:"m.relates_to"`
	}
	if json.Unmarshal(e.Content, &c) != nil || c.Rel.Type != "m.thread" || c.Rel.EventID != threadID {
		return errs.Invalidf("event %s is not in thread %s", eventID, threadID)
	}
	return nil
}

// putReceipt stores a receipt unless the user's receipt of that type and
// thread already points at or after its event (receipts only move
// forward; moved is then false), dropping the oldest threaded receipt
// beyond the bound.
func (api *API) putReceipt(r *store.Receipt) (moved bool, err error) {
	err = api.store.Update(func(t *store.Txn) error {
		moved = false
		old, err := t.Receipt(r.Room, r.User, r.Type, r.Thread)
		switch {
		case err == nil:
			if old.EventID == r.EventID || storedOrder(t, old.EventID) > storedOrder(t, r.EventID) {
				return nil
			}
		case !errors.Is(err, store.ErrNotFound):
			return err
		case r.Thread != "" && r.Thread != "main":
			mine, err := t.Receipts(r.Room, r.User)
			if err != nil {
				return err
			}
			var oldest *store.Receipt
			n := 0
			for _, m := range mine {
				if m.Thread != "" && m.Thread != "main" {
					n++
					if oldest == nil || m.Pos < oldest.Pos {
						oldest = m
					}
				}
			}
			if n >= maxThreadReceipts {
				if err := t.DeleteReceipt(oldest.Room, oldest.User, oldest.Type, oldest.Thread); err != nil {
					return err
				}
			}
		}
		moved = true
		return t.PutReceipt(r)
	})
	return moved, err
}

// storedOrder is a stored event's place in its room's timeline, 0 if it
// has none or is not stored (timelineOrder reads the engine's).
func storedOrder(t *store.Txn, eventID string) uint64 {
	rec, err := t.Event(eventID)
	if err != nil {
		return 0
	}
	return rec.TimelineOrder()
}

// wakeRoom wakes the /sync of the room's local members.
func (api *API) wakeRoom(roomID string) {
	if r := api.dag.Room(roomID); r != nil {
		api.Committed(r)
	}
}

// RemoteReceipt records the public m.read receipt of a user of another
// node, as the wire received it (threadID "" when unthreaded; ts as the
// sender stamped it). The wire must have checked that the receipt came
// from the user's own node. It fails with errs.Forbidden for a local user
// or one not joined to the room, and errs.NotFound for an event the node
// does not hold in that room.
func (api *API) RemoteReceipt(roomID, userID, eventID, threadID string, ts int64) error {
	if _, local := api.peers.LocalUser(userID); local {
		return errs.Forbiddenf("%s is a local user", userID)
	}
	if api.membershipIn(roomID, userID) != "join" {
		return errs.Forbiddenf("%s is not joined to room %s", userID, roomID)
	}
	if i, err := api.dag.Event(eventID); err != nil || i.Event.RoomID() != roomID {
		return errs.NotFoundf("no event %s in room %s", eventID, roomID)
	}
	if threadID != "" && threadID != "main" && !strings.HasPrefix(threadID, "$") {
		return errs.Invalidf("bad thread ID %q", threadID)
	}
	if err := api.checkThread(eventID, threadID); err != nil {
		return err
	}
	moved, err := api.putReceipt(&store.Receipt{Room: roomID, User: userID, Type: "m.read", Thread: threadID, EventID: eventID, TS: ts})
	if err != nil || !moved {
		return err
	}
	api.wakeRoom(roomID)
	return nil
}

// LocalReceipts lists the public (m.read) receipts of the node's own
// users in a room: what the wire sends to the room's other nodes.
func (api *API) LocalReceipts(roomID string) ([]store.Receipt, error) {
	var out []store.Receipt
	err := api.store.View(func(t *store.Txn) error {
		all, err := t.Receipts(roomID, "")
		if err != nil {
			return err
		}
		for _, r := range all {
			if _, local := api.peers.LocalUser(r.User); local && r.Type == "m.read" {
				out = append(out, *r)
			}
		}
		return nil
	})
	return out, err
}

// receiptEvent renders receipts as one m.receipt event for user, leaving
// out other users' private receipts; nil if nothing is left.
func receiptEvent(rs []*store.Receipt, user string) json.RawMessage {
	content := map[string]map[string]map[string]map[string]any{}
	for _, r := range rs {
		if r.Type == "m.read.private" && r.User != user {
			continue
		}
		byType := content[r.EventID]
		if byType == nil {
			byType = map[string]map[string]map[string]any{}
			content[r.EventID] = byType
		}
		if byType[r.Type] == nil {
			byType[r.Type] = map[string]map[string]any{}
		}
		info := map[string]any{"ts": r.TS}
		if r.Thread != "" {
			info["thread_id"] = r.Thread
		}
		byType[r.Type][r.User] = info
	}
	if len(content) == 0 {
		return nil
	}
	b, _ := json.Marshal(map[string]any{"type": "m.receipt", "content": content})
	return b
}
