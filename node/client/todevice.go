package client

import (
	"context"
	"encoding/json"
	"slices"
	"time"

	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/webui"
)

// To-device messages: queued per device at a stream position, shown in
// every /sync whose token is below that position, and removed once the
// device syncs with a token at or past it (it has seen them), so each is
// delivered until acknowledged and never after.
const (
	maxQueueMessages = 1000    // messages waiting for one device
	maxQueueBytes    = 4 << 20 // bytes waiting for one device
	toDeviceTxnTTL   = 24 * time.Hour
)

// SendToDevice implements webui.Keys. Messages for users of other nodes
// go to their node through the outbox (remotekeys.go), if the sender
// shares a room with one of its users.
func (api *API) SendToDevice(ctx context.Context, s *webui.Session, evType, txnID string, messages map[string]map[string]json.RawMessage) error {
	var woken []string
	var remote bool
	err := api.store.Update(func(t *store.Txn) error {
		woken, remote = woken[:0], false
		seen, err := t.ToDeviceTxnSeen(s.UserID, s.DeviceID, txnID)
		if err != nil || seen {
			return err
		}
		pos := t.NextPos()
		n := 0
		for user, devs := range messages {
			if !api.isLocal(user) {
				for dev, content := range devs {
					ok, err := api.queueRemoteToDevice(t, s.UserID, evType, user, dev, content, toDeviceID(pos, n))
					if err != nil {
						return err
					}
					if ok {
						n++
						remote = true
					}
				}
				continue
			}
			msgs := map[string]json.RawMessage{}
			for dev, content := range devs {
				msg, err := json.Marshal(map[string]any{"type": evType, "sender": s.UserID, "content": content})
				if err != nil {
					return err
				}
				if dev != "*" {
					msgs[dev] = msg
					continue
				}
				all, err := userDevices(t, user)
				if err != nil {
					return err
				}
				for _, d := range all {
					msgs[d] = msg
				}
			}
			for dev, msg := range msgs {
				queued, err := api.queueLocal(t, user, dev, pos, n, msg)
				if err != nil {
					return err
				}
				if queued {
					n++
				}
			}
			woken = append(woken, user)
		}
		return t.PutToDeviceTxn(s.UserID, s.DeviceID, txnID, toDeviceTxnTTL)
	})
	if err != nil {
		return err
	}
	api.notify.wake(woken...)
	if remote {
		api.peers.KickOutbox()
	}
	return nil
}

// queueLocal queues a message for a local device, unless its queue is
// full: then the device misses it (its user's other devices still get
// it), rather than one abandoned device blocking its user's senders.
func (api *API) queueLocal(t *store.Txn, user, dev string, pos uint64, n int, msg json.RawMessage) (bool, error) {
	q, err := t.ToDeviceQueueOf(user, dev)
	if err != nil {
		return false, err
	}
	if q.Count >= maxQueueMessages || q.Bytes+len(msg) > maxQueueBytes {
		api.log.Warn("to-device queue full: message dropped", "user", user, "device", dev)
		return false, nil
	}
	return true, t.QueueToDevice(user, dev, pos, n, msg)
}

// userDevices lists a user's devices: those with an access token (from
// before devices were kept, too) and those that published keys.
func userDevices(t *store.Txn, user string) ([]string, error) {
	devs, err := t.SessionDevices(user)
	if err != nil {
		return nil, err
	}
	kept, err := t.Devices(user)
	if err != nil {
		return nil, err
	}
	for _, d := range kept {
		if !slices.Contains(devs, d.ID) {
			devs = append(devs, d.ID)
		}
	}
	keyed, err := t.DeviceKeys(user)
	if err != nil {
		return nil, err
	}
	for d := range keyed {
		if !slices.Contains(devs, d) {
			devs = append(devs, d)
		}
	}
	return devs, nil
}

// syncDevices fills a /sync answer's to-device messages, device lists,
// one-time key counts and unused fallback key types for (since, pos]. It
// reports whether there is news for the device.
func (api *API) syncDevices(s *webui.Session, since, pos uint64, resp *webui.SyncResponse) (bool, error) {
	news := false
	acked := false
	resp.UnusedFallbackKeyTypes = []string{}
	err := api.store.View(func(t *store.Txn) error {
		// The whole queue: what is not shown now would be taken as seen.
		queued, err := t.ToDevices(s.UserID, s.DeviceID, 2*maxQueueMessages)
		if err != nil {
			return err
		}
		for _, m := range queued {
			switch {
			case since != 0 && m.Pos <= since:
				acked = true
			case m.Pos <= pos:
				resp.ToDevice.Events = append(resp.ToDevice.Events, m.Message)
				news = true
			}
		}
		if resp.OTKCount, err = t.OneTimeKeyCounts(s.UserID, s.DeviceID); err != nil {
			return err
		}
		withZeroCount(resp.OTKCount)
		fb, err := t.FallbackKeys(s.UserID, s.DeviceID)
		if err != nil {
			return err
		}
		for alg, k := range fb {
			if !k.Used {
				resp.UnusedFallbackKeyTypes = append(resp.UnusedFallbackKeyTypes, alg)
			}
		}
		slices.Sort(resp.UnusedFallbackKeyTypes)
		if since == 0 {
			return nil
		}
		// Who shares a room with whom costs a pass over every room:
		// only when a key changed after the token, or a member event is
		// in this answer.
		last, err := t.LastKeysChange()
		if err != nil {
			return err
		}
		changed := []string{}
		if last > since {
			if changed, err = api.changedSince(t, s.UserID, since); err != nil {
				return err
			}
		}
		left := api.membershipChanges(s.UserID, resp, &changed)
		if len(changed) > 0 || len(left) > 0 {
			news = true
		}
		resp.DeviceLists = map[string]any{"changed": changed, "left": left}
		return nil
	})
	if err != nil {
		return false, err
	}
	if acked {
		// The device has seen what was queued up to its token. Removing
		// it need not hold up the answer: until it commits, the next
		// sync skips those messages by their position all the same.
		user, dev := s.UserID, s.DeviceID
		api.store.UpdateThen(func(t *store.Txn) error { return t.AckToDevices(user, dev, since) }, func(err error) {
			if err != nil {
				api.log.Warn("to-device acknowledgement", "user", user, "device", dev, "err", err)
			}
		})
	}
	return news, nil
}

// membershipChanges adds to changed the users who joined a room the
// user shares with them, in this sync's timelines (the client must learn
// their devices), and returns the users who no longer share any room
// with the user after a leave in them, or after the user left a room.
func (api *API) membershipChanges(user string, resp *webui.SyncResponse, changed *[]string) []string {
	left := []string{}
	if !hasMemberChange(user, resp) {
		return left
	}
	shared := api.sharedWith(user)
	addLeft := func(u string) {
		if u != user && !shared[u] && !slices.Contains(left, u) {
			left = append(left, u)
		}
	}
	for _, jr := range resp.Rooms.Join {
		for _, ev := range jr.Timeline.Events {
			if ev.Type != "m.room.member" || ev.StateKey == nil || *ev.StateKey == user {
				continue
			}
			var c struct {
				Membership string `json:"membership"`
			}
			json.Unmarshal(ev.Content, &c)
			switch c.Membership {
			case "join":
				if shared[*ev.StateKey] && !slices.Contains(*changed, *ev.StateKey) {
					*changed = append(*changed, *ev.StateKey)
				}
			case "leave", "ban":
				addLeft(*ev.StateKey)
			}
		}
	}
	for id := range resp.Rooms.Leave {
		if r := api.dag.Room(id); r != nil {
			for _, m := range api.joinedMembers(r.State()) {
				addLeft(m)
			}
		}
	}
	slices.Sort(*changed)
	slices.Sort(left)
	return left
}

// hasMemberChange reports whether a /sync answer shows another user's
// membership change, or a room the user left.
func hasMemberChange(user string, resp *webui.SyncResponse) bool {
	if len(resp.Rooms.Leave) > 0 {
		return true
	}
	for _, jr := range resp.Rooms.Join {
		for _, ev := range jr.Timeline.Events {
			if ev.Type == "m.room.member" && ev.StateKey != nil && *ev.StateKey != user {
				return true
			}
		}
	}
	return false
}

// ForgetDevice forgets a device's published keys and what waits for it,
// and tells those who share a room with the user: for a device logged
// out or deleted.
func (api *API) ForgetDevice(user, dev string) error {
	err := api.store.Update(func(t *store.Txn) error {
		if err := t.DeleteDeviceKeys(user, dev); err != nil {
			return err
		}
		if _, err := t.MarkKeysChanged(user); err != nil {
			return err
		}
		_, err := api.announceKeys(t, user)
		return err
	})
	if err != nil {
		return err
	}
	api.notify.wake(api.sharingUsers(user)...)
	api.peers.KickOutbox()
	return nil
}

// withZeroCount shows signed_curve25519 even at 0, as homeservers do:
// some clients upload one-time keys only when told the count is 0.
func withZeroCount(counts map[string]int) {
	if _, ok := counts["signed_curve25519"]; !ok {
		counts["signed_curve25519"] = 0
	}
}
