package client

import (
	"bytes"
	"encoding/json"
	"maps"
	"slices"
	"sync"

	"github.com/parley-p2p/parley/node/dag"
	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/rooms"
	"github.com/parley-p2p/parley/webui"
)

// maxCountScan bounds the events a room's notification counts read: the
// newest this many after the user's read position (clients show "99+"
// long before).
const maxCountScan = 1000

// countBudget bounds the events one /sync evaluates for notification
// counts not cached yet, over all its rooms: about 60 us each, so
// ~300 ms. Without it an initial sync after a start evaluated every
// unread event of every room (1,000 rooms of 100 events: 5.5-7 s,
// against 1.0 s before counts). Rooms past it get no counts in that
// answer (the field is optional; clients keep what they had) and are
// counted by the following syncs, each within the budget again.
const countBudget = 5000

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

		if rules == nil {
			sr, err := loadRules(t, s.UserID)
			if err != nil {
				return err
			}
			rules = sr.render(s.UserID)
		}
		var rulesPos uint64
		if ad, err := t.AccountDataEntry(s.UserID, "", pushRulesType); err == nil {
			rulesPos = ad.Pos
		}
		threads := f != nil && f.Room.Timeline.UnreadThreadNotifications
		budget := countBudget
		if api.cfg.CountBudget > 0 {
			budget = api.cfg.CountBudget
		}
		cr := countRules{rules, rulesPos}
		countedNow := map[string]bool{}
		// Rooms an earlier answer left uncounted come first, each with
		// an empty timeline if nothing else brings them: at least one
		// per answer, so they are all counted within a few syncs.
		for k, id := range api.unread.takePending(s.UserID) {
			if k > 0 && budget <= 0 {
				api.unread.addPending(s.UserID, id)
				continue
			}
			jr := api.joinedSection(resp, s, f, id)
			if jr == nil {
				continue // left, or filtered out
			}
			if k == 0 {
				budget = max(budget, 1)
			}
			if err := api.unreadCounts(t, s, id, pos, cr, threads, jr, &budget); err != nil {
				return err
			}
			countedNow[id] = true
			news = true
		}
		for id, jr := range resp.Rooms.Join {
			if countedNow[id] {
				continue
			}
			if err := api.unreadCounts(t, s, id, pos, cr, threads, jr, &budget); err != nil {
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

// unreadCounts fills a joined room's notification counts: the events
// after the user's read position (their latest m.read or m.read.private
// receipt; their join if they have none) that their push rules say
// notify or highlight, other users' only. With threads, events in a
// thread count under its root, against the thread's own receipts.
func (api *API) unreadCounts(t *store.Txn, s *webui.Session, roomID string, pos uint64, rules countRules, threads bool, jr *webui.JoinedRoom, budget *int) (err error) {
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
	var unthreaded, mainRead, receiptsPos uint64
	threadRead := map[string]uint64{}
	for _, rc := range receipts {
		receiptsPos = max(receiptsPos, rc.Pos)
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
	// Counts already evaluated for the same receipts, rules and join
	// cover (base, upTo]: only what came after is read.
	key := unreadKey{user: s.UserID, room: roomID}
	fp := unreadPrint{base: base, receipts: receiptsPos, nReceipts: len(receipts), rules: rules.pos, threads: threads}
	main := map[string]int{"highlight_count": 0, "notification_count": 0}
	byThread := map[string]map[string]int{}
	after := base
	var cached unreadEntry
	if c, ok := api.unread.get(key); ok && c.print == fp && c.upTo <= store.LiveBase+pos {
		after = max(after, c.upTo)
		cached = c
	}
	if *budget <= 0 && after < store.LiveBase+pos {
		// Not counted in this answer (countBudget): the next one does.
		jr.UnreadNotifications, jr.UnreadThreadNotifications = nil, nil
		api.unread.addPending(s.UserID, roomID)
		return nil
	}
	defer func() {
		jr.UnreadNotifications = main
		if threads && len(byThread) > 0 {
			jr.UnreadThreadNotifications = byThread
		}
	}()
	upTo := store.LiveBase + pos
	entries, err := t.Timeline(roomID, after, upTo, false, maxCountScan)
	if err != nil {
		return err
	}
	*budget -= len(entries)
	upTo = max(after, upTo)
	// The user's own event is an implicit receipt for what came before it
	// in its thread (with threads counted apart) or in the room: scanning
	// newest first, the first one closes its context.
	closedMain, closedThread := false, map[string]bool{}
	defer func() {
		if err != nil {
			return
		}
		if !closedMain {
			addCounts(main, cached.main)
		}
		for k, v := range cached.threads {
			if !closedThread[k] {
				if byThread[k] == nil {
					byThread[k] = map[string]int{"highlight_count": 0, "notification_count": 0}
				}
				addCounts(byThread[k], v)
			}
		}
		api.unread.put(key, newUnreadEntry(fp, upTo, main, byThread))
	}()
	if len(entries) == 0 {
		return nil
	}
	env := api.pushEnvFor(t, r, state, s.UserID, memID)
	for _, en := range entries {
		e, err := api.readShown(t, en.EventID)
		if err != nil {
			return err
		}
		if e.hidden || e.redactedBy != nil {
			continue
		}
		ev, thread := pushEvent(e, roomID)
		if threads && thread == "" {
			thread = api.threadAbove(t, ev)
		}
		context := ""
		if threads {
			context = thread
		}
		if e.Sender == s.UserID {
			if context == "" {
				closedMain = true
			} else {
				closedThread[context] = true
			}
			continue
		}
		if (context == "" && closedMain) || (context != "" && closedThread[context]) {
			continue
		}
		read := max(unthreaded, mainRead)
		if thread != "" {
			read = max(unthreaded, threadRead[thread])
		}
		if en.Order <= read {
			continue
		}
		v := evaluate(rules.rs, ev, env)
		if !v.notify {
			continue
		}
		counts := main
		if context != "" {
			if counts = byThread[context]; counts == nil {
				counts = map[string]int{"highlight_count": 0, "notification_count": 0}
				byThread[context] = counts
			}
		}
		counts["notification_count"]++
		if v.highlight {
			counts["highlight_count"]++
		}
	}
	return nil
}

// pushEnvFor is what a room's state tells the push rules about a user.
func (api *API) pushEnvFor(t *store.Txn, r *dag.Room, state store.StateMap, user, memID string) *pushEnv {
	env := &pushEnv{userID: user}
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
	return env
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

func addCounts(to, from map[string]int) {
	for k, v := range from {
		to[k] += v
	}
}

// newUnreadEntry copies counts into a cache entry, which the answer's
// maps must not share.
func newUnreadEntry(fp unreadPrint, upTo uint64, main map[string]int, byThread map[string]map[string]int) unreadEntry {
	c := unreadEntry{print: fp, upTo: upTo, main: maps.Clone(main), threads: make(map[string]map[string]int, len(byThread))}
	for k, v := range byThread {
		c.threads[k] = maps.Clone(v)
	}
	return c
}

// countRules are a user's push rules and the stream position of their
// last change (0: the defaults), which tells cached counts apart.
type countRules struct {
	rs  *webui.PushRuleset
	pos uint64
}

// unreadCache keeps each user's counts per room as last evaluated, so
// that a /sync evaluates only the events that came since. It holds at
// most maxUnreadCache entries and is cleared when full.
type unreadCache struct {
	mu sync.Mutex
	m  map[unreadKey]unreadEntry
	// pending are rooms, per user, whose counts an answer left out
	// (countBudget); at most maxUnreadCache in all.
	pending  map[string][]string
	npending int
}

func (c *unreadCache) addPending(user, room string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pending == nil {
		c.pending = map[string][]string{}
	}
	if c.npending >= maxUnreadCache || slices.Contains(c.pending[user], room) {
		return
	}
	c.pending[user] = append(c.pending[user], room)
	c.npending++
}

// takePending returns and forgets the user's pending rooms.
func (c *unreadCache) takePending(user string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	rs := c.pending[user]
	delete(c.pending, user)
	c.npending -= len(rs)
	return rs
}

const maxUnreadCache = 10000

type unreadKey struct{ user, room string }

// unreadPrint is what counts depend on besides the events: the read
// base, the user's receipts in the room, their rules and whether threads
// are counted apart.
type unreadPrint struct {
	base, receipts uint64
	nReceipts      int
	rules          uint64
	threads        bool
}

type unreadEntry struct {
	print   unreadPrint
	upTo    uint64 // the timeline order the counts cover up to
	main    map[string]int
	threads map[string]map[string]int
}

func (c *unreadCache) get(k unreadKey) (unreadEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	return e, ok
}

func (c *unreadCache) put(k unreadKey, e unreadEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxUnreadCache {
		c.m = map[unreadKey]unreadEntry{}
	}
	c.m[k] = e
}
