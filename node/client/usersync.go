package client

import (
	"bytes"
	"encoding/json"
	"slices"

	"github.com/parley-p2p/parley/node/dag"
	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/rooms"
	"github.com/parley-p2p/parley/webui"
)

// maxCountScan bounds the events a room's notification counts read: the
// newest this many after the user's read position (clients show "99+"
// long before).
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
		if since == 0 && rules == nil {
			rules = (&storedRules{}).render(s.UserID)
			content, err := json.Marshal(map[string]any{"global": rules})
			if err != nil {
				return err
			}
			resp.AccountData.Events = append(resp.AccountData.Events, accountDataEvent(pushRulesType, content))
		}

		if since == 0 {
			for id, jr := range resp.Rooms.Join {
				rs, err := t.Receipts(id, "")
				if err != nil {
					return err
				}
				if ev := receiptEvent(rs, s.UserID); ev != nil {
					jr.Ephemeral.Events = append(jr.Ephemeral.Events, ev)
				}
			}
		} else {
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

		if rules == nil {
			sr, err := loadRules(t, s.UserID)
			if err != nil {
				return err
			}
			rules = sr.render(s.UserID)
		}
		threads := f != nil && f.Room.Timeline.UnreadThreadNotifications
		for id, jr := range resp.Rooms.Join {
			if err := api.unreadCounts(t, s, id, pos, rules, threads, jr); err != nil {
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
	jr := &webui.JoinedRoom{
		Timeline:            webui.Timeline{Events: []webui.ClientEvent{}},
		State:               webui.StateList{Events: []webui.ClientEvent{}},
		Ephemeral:           webui.EventList{Events: []json.RawMessage{}},
		AccountData:         webui.EventList{Events: []json.RawMessage{}},
		Summary:             map[string]any{},
		UnreadNotifications: map[string]int{"highlight_count": 0, "notification_count": 0},
	}
	resp.Rooms.Join[roomID] = jr
	return jr
}

// unreadCounts fills a joined room's notification counts: the events
// after the user's read position (their latest m.read or m.read.private
// receipt; their join if they have none) that their push rules say
// notify or highlight, other users' only. With threads, events in a
// thread count under its root, against the thread's own receipts.
func (api *API) unreadCounts(t *store.Txn, s *webui.Session, roomID string, pos uint64, rules *webui.PushRuleset, threads bool, jr *webui.JoinedRoom) error {
	r := api.dag.Room(roomID)
	if r == nil {
		return nil
	}
	state := r.State()
	memID, ok := state[memberKey(s.UserID)]
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
		o := timelineOrder(t, rc.EventID)
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
		base = timelineOrder(t, memID)
	}
	entries, err := t.Timeline(roomID, base, store.LiveBase+pos, false, maxCountScan)
	if err != nil || len(entries) == 0 {
		return err
	}
	env := &pushEnv{userID: s.UserID}
	if pl, err := rooms.PowerLevelsFrom(api.dag.StateFunc(dag.WithCreate(r, state))); err == nil {
		env.pl = pl
	}
	for k, id := range state {
		if k.Type == "m.room.member" && api.membership(t, id) == "join" {
			env.memberCount++
		}
	}
	if me, err := api.readShown(t, memID); err == nil {
		var c struct {
			DisplayName string `json:"displayname"`
		}
		if json.Unmarshal(me.Content, &c) == nil {
			env.displayName = c.DisplayName
		}
	}
	main := map[string]int{"highlight_count": 0, "notification_count": 0}
	byThread := map[string]map[string]int{}
	for _, en := range entries {
		e, err := api.readShown(t, en.EventID)
		if err != nil {
			return err
		}
		if e.hidden || e.Sender == s.UserID || e.redactedBy != nil {
			continue
		}
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
		read := max(unthreaded, mainRead)
		if thread != "" {
			read = max(unthreaded, threadRead[thread])
		}
		if en.Order <= read {
			continue
		}
		v := evaluate(rules, ev, env)
		if !v.notify {
			continue
		}
		counts := main
		if threads && thread != "" {
			if counts = byThread[thread]; counts == nil {
				counts = map[string]int{"highlight_count": 0, "notification_count": 0}
				byThread[thread] = counts
			}
		}
		counts["notification_count"]++
		if v.highlight {
			counts["highlight_count"]++
		}
	}
	jr.UnreadNotifications = main
	if threads && len(byThread) > 0 {
		jr.UnreadThreadNotifications = byThread
	}
	return nil
}
