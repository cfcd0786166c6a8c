package client

import (
	"bytes"
	"encoding/json"
	"slices"

	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/webui"
)

// maxCountScan bounds the notices a room's notification counts read:
// the newest this many after the user's read position (clients show
// "99+" long before).
const maxCountScan = 1000

// syncUserData adds to a /sync answer the user's data that changed in
// (since, pos], or all of it for an initial sync: global and room
// account data (push rules among it), receipts as m.receipt ephemeral
// events, and each shown joined room's notification counts. A joined
// room with nothing but such news is added with an empty timeline. It
// reports whether there was news.
func (api *API) syncUserData(s *webui.Session, since, pos uint64, resp *webui.SyncResponse, f *webui.Filter) (bool, error) {
	news := false
	err := api.store.View(func(t *store.Txn) error {
		var ads []*store.AccountData
		var err error
		if since == 0 {
			ads, err = t.AllAccountData(s.UserID)
		} else {
			ads, err = t.AccountDataSince(s.UserID, since)
		}
		if err != nil {
			return err
		}
		var rules *webui.PushRuleset
		for _, ad := range ads {
			if ad.Pos > pos {
				continue // the next sync shows it
			}
			content := ad.Content
			if ad.Room == "" && ad.Type == pushRulesType {
				var sr storedRules
				if err := json.Unmarshal(ad.Content, &sr); err != nil {
					return err
				}
				rules = sr.render(s.UserID)
				if content, err = json.Marshal(map[string]any{"global": rules}); err != nil {
					return err
				}
			}
			ev := accountDataEvent(ad.Type, content)
			if f != nil {
				filter := f.AccountData
				if ad.Room != "" {
					filter = f.Room.AccountData
				}
				if !filter.Allows(ad.Type, "") {
					continue
				}
			}
			switch {
			case ad.Room == "":
				resp.AccountData.Events = append(resp.AccountData.Events, ev)
				news = true
			case api.joinedSection(resp, s, f, ad.Room) != nil:
				jr := resp.Rooms.Join[ad.Room]
				jr.AccountData.Events = append(jr.AccountData.Events, ev)
				news = true
			case resp.Rooms.Leave[ad.Room] != nil:
				lr := resp.Rooms.Leave[ad.Room]
				lr.AccountData.Events = append(lr.AccountData.Events, ev)
			}
		}
		if since == 0 && rules == nil && (f == nil || f.AccountData.Allows(pushRulesType, "")) {
			rules = (&storedRules{}).render(s.UserID)
			content, err := json.Marshal(map[string]any{"global": rules})
			if err != nil {
				return err
			}
			resp.AccountData.Events = append(resp.AccountData.Events, accountDataEvent(pushRulesType, content))
		}

		receipts := f == nil || f.Room.Ephemeral.Allows("m.receipt", "")
		switch {
		case !receipts: // the filter leaves them out
		case since == 0:
			for id, jr := range resp.Rooms.Join {
				rs, err := t.Receipts(id, "")
				if err != nil {
					return err
				}
				if ev := receiptEvent(rs, s.UserID); ev != nil {
					jr.Ephemeral.Events = append(jr.Ephemeral.Events, ev)
				}
			}
		default:
			changed, err := t.ReceiptsSince(since)
			if err != nil {
				return err
			}
			byRoom := map[string][]*store.Receipt{}
			var order []string
			for _, r := range changed {
				if r.Pos > pos {
					continue
				}
				if byRoom[r.Room] == nil {
					order = append(order, r.Room)
				}
				byRoom[r.Room] = append(byRoom[r.Room], r)
			}
			for _, id := range order {
				ev := receiptEvent(byRoom[id], s.UserID)
				if ev == nil {
					continue
				}
				if jr := api.joinedSection(resp, s, f, id); jr != nil {
					jr.Ephemeral.Events = append(jr.Ephemeral.Events, ev)
					news = true
				}
			}
		}

		threads := f != nil && f.Room.Timeline.UnreadThreadNotifications
		for id, jr := range resp.Rooms.Join {
			if err := api.unreadCounts(t, s, id, pos, threads, jr); err != nil {
				return err
			}
		}
		return nil
	})
	return news, err
}

func accountDataEvent(typ string, content json.RawMessage) json.RawMessage {
	b, _ := json.Marshal(map[string]any{"type": typ, "content": content})
	return b
}

// joinedSection is the answer's section for a room the user is joined
// to, added with an empty timeline if the answer lacks it; nil if the
// user is not joined or the filter leaves the room out.
func (api *API) joinedSection(resp *webui.SyncResponse, s *webui.Session, f *webui.Filter, roomID string) *webui.JoinedRoom {
	if jr := resp.Rooms.Join[roomID]; jr != nil {
		return jr
	}
	if f != nil && f.Room.Rooms != nil && !slices.Contains(f.Room.Rooms, roomID) {
		return nil
	}
	if api.membershipIn(roomID, s.UserID) != "join" {
		return nil
	}
	jr := emptyJoined()
	resp.Rooms.Join[roomID] = jr
	return jr
}

// unreadCounts fills a joined room's notification counts from the
// user's notices (notices.go): those after the user's read position
// (their latest m.read or m.read.private receipt; their join if they
// have none) up to the answer's position, other users' only. With
// threads, events in a thread count under its root, against the
// thread's own receipts. The user's own event reads what came before it
// in its thread (with threads counted apart) or in the room.
func (api *API) unreadCounts(t *store.Txn, s *webui.Session, roomID string, pos uint64, threads bool, jr *webui.JoinedRoom) error {
	r := api.dag.Room(roomID)
	if r == nil {
		return nil
	}
	memID, ok := r.State()[memberKey(s.UserID)]
	if !ok {
		return nil
	}
	receipts, err := t.Receipts(roomID, s.UserID)
	if err != nil {
		return err
	}
	var unthreaded, mainRead uint64
	threadRead := map[string]uint64{}
	for _, rc := range receipts {
		o := storedOrder(t, rc.EventID)
		switch rc.Thread {
		case "":
			unthreaded = max(unthreaded, o)
		case "main":
			mainRead = max(mainRead, o)
		default:
			threadRead[rc.Thread] = max(threadRead[rc.Thread], o)
		}
	}
	base := unthreaded
	if base == 0 {
		base = storedOrder(t, memID)
	}
	main := map[string]int{"highlight_count": 0, "notification_count": 0}
	byThread := map[string]map[string]int{}
	closedMain, closedThread := false, map[string]bool{}
	read := 0
	err = t.Notices(s.UserID, roomID, base, store.LiveBase+pos, func(n store.Notice) bool {
		if n.Left {
			return false // from a membership before the current one
		}
		read++
		more := read < maxCountScan
		context := ""
		if threads {
			context = n.Thread
		}
		switch {
		case n.Own && context == "":
			closedMain = true
			return more && threads // without threads, nothing older counts
		case n.Own:
			closedThread[context] = true
			return more
		case (context == "" && closedMain) || (context != "" && closedThread[context]):
			return more
		}
		seen := max(unthreaded, mainRead)
		if n.Thread != "" {
			seen = max(unthreaded, threadRead[n.Thread])
		}
		if n.Order <= seen || !n.Notify {
			return more
		}
		counts := main
		if context != "" {
			if counts = byThread[context]; counts == nil {
				counts = map[string]int{"highlight_count": 0, "notification_count": 0}
				byThread[context] = counts
			}
		}
		counts["notification_count"]++
		if n.Highlight {
			counts["highlight_count"]++
		}
		return more
	})
	if err != nil {
		return err
	}
	jr.UnreadNotifications = main
	if threads && len(byThread) > 0 {
		jr.UnreadThreadNotifications = byThread
	}
	return nil
}

// pushEvent is an event as the push rules read it (its plain view, its
// content parsed with UseNumber), and the thread it is in ("" if none).
func pushEvent(e shownEvent, roomID string) (map[string]any, string) {
	ev := map[string]any{"type": e.Type, "sender": e.Sender, "room_id": roomID, "event_id": e.ID}
	if e.StateKey != nil {
		ev["state_key"] = *e.StateKey
	}
	dec := json.NewDecoder(bytes.NewReader(e.Content))
	dec.UseNumber()
	var content map[string]any
	if dec.Decode(&content) == nil {
		ev["content"] = content
	}
	thread := ""
	if rel, _ := content["m.relates_to"].(map[string]any); rel != nil && rel["rel_type"] == "m.thread" {
		thread, _ = rel["event_id"].(string)
	}
	return ev, thread
}

// threadAbove finds the thread of an event that relates to another by a
// relation other than m.thread (a reaction or an edit in a thread, say),
// following at most 3 relations, as the spec recommends; "" if none
// leads to a thread.
func (api *API) threadAbove(t *store.Txn, ev map[string]any) string {
	for range 3 {
		parent, _ := property(ev, "content.m\\.relates_to.event_id").(string)
		if parent == "" {
			return ""
		}
		e, err := api.readShown(t, parent)
		if err != nil || e.hidden {
			return ""
		}
		var thread string
		if ev, thread = pushEvent(e, ""); thread != "" {
			return thread
		}
	}
	return ""
}
