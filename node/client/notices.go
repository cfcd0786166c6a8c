package client

import (
	"encoding/json"
	"sync"
	"sync/atomic"

	"github.com/parley-p2p/parley/node/dag"
	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/rooms"
	"github.com/parley-p2p/parley/webui"
)

// Push rules are evaluated once per event and local member, when the
// event enters the room's timeline (and again when its plain view comes
// late: the rules read the decrypted content), and the verdict is kept
// in the store as a notice (store.Notice) written with the event.
// Notification counts and GET /notifications read the notices. A change
// of a user's push rules applies to the events stored after it, as in
// Synapse: what was stored keeps the verdict it had.

const (
	// maxNoticeRooms bounds the rooms whose push context (power levels,
	// member count, local members) is kept; the cache is cleared when
	// full.
	maxNoticeRooms = 4096
	// maxNoticeUsers bounds the users whose rendered push rules are kept;
	// the cache is cleared when full.
	maxNoticeUsers = 1024
)

// noticeState is what the evaluation at storage keeps between events.
type noticeState struct {
	mu    sync.Mutex
	rooms map[string]*pushRoom  // by room ID
	rules map[string]*pushRules // by user ID

	evaluations atomic.Int64 // events evaluated for a user (tests)
}

// pushRoom is what a room's state tells the push rules, for one state.
type pushRoom struct {
	stateID     string
	pl          *rooms.PowerLevels
	memberCount int
	locals      []localMember // the room's joined local members
}

type localMember struct{ user, displayName string }

// pushRules are a user's rendered push rules, as of the account data
// stream position pos (every change of the user's account data up to it
// has been seen).
type pushRules struct {
	pos uint64
	rs  *webui.PushRuleset
}

// notice evaluates the push rules of each joined local member of the
// room over an event entering the live timeline (late: its plain view
// came after it) and returns the write that keeps their notices, or nil
// if there is none. A redaction that applies removes its target's
// notices; a local user's leave, kick or ban leaves them a notice that
// nothing before it counts. History notifies nobody.
func (api *API) notice(te *timelineEvent) func(*store.Txn, uint64) error {
	if te.How.Historic() {
		return nil
	}
	r, ev, late := te.Room, te.Event, te.How.Late()
	if ev.Type() == "m.room.redaction" && ev.Redacts() != "" {
		return api.unnotice(r, ev)
	}
	e := te.shown(api)
	if e.hidden || api.dag.RedactedBy(ev) != nil {
		return nil // redacted (before it came, or before its key): nothing to count
	}
	var out []keptNotice
	if e.Type == "m.room.member" && e.StateKey != nil && (e.Membership == "leave" || e.Membership == "ban") {
		if _, local := api.peers.LocalUser(*e.StateKey); local {
			out = append(out, keptNotice{*e.StateKey, &store.Notice{Left: true, TS: e.OriginServerTS}})
		}
	}
	pr := api.pushRoomOf(r)
	if len(pr.locals) == 0 {
		return keepNotices(r.ID, out)
	}
	pev, thread := pushEvent(e, r.ID)
	if thread == "" {
		thread = api.threadAbove(nil, pev)
	}
	err := api.store.View(func(t *store.Txn) error {
		for _, m := range pr.locals {
			if m.user == e.Sender {
				out = append(out, keptNotice{m.user, &store.Notice{Own: true, Thread: thread, TS: e.OriginServerTS}})
				continue
			}
			rs, err := api.noticeRules(t, m.user)
			if err != nil {
				return err
			}
			api.notices.evaluations.Add(1)
			env := &pushEnv{userID: m.user, displayName: m.displayName, memberCount: pr.memberCount, pl: pr.pl}
			actions, ok := matchActions(rs, pev, env)
			v := verdictOf(actions)
			if !ok || !v.notify {
				if late {
					out = append(out, keptNotice{m.user, nil})
				}
				continue
			}
			acts, err := json.Marshal(actions)
			if err != nil {
				return err
			}
			out = append(out, keptNotice{m.user, &store.Notice{Notify: true, Highlight: v.highlight, Thread: thread, TS: e.OriginServerTS, Actions: acts}})
		}
		return nil
	})
	if err != nil {
		api.log.Warn("push rules not evaluated", "room", r.ID, "event", ev.ID(), "err", err)
		return nil
	}
	return keepNotices(r.ID, out)
}

// keptNotice is a user's notice of an event to write; nil: to delete.
type keptNotice struct {
	user   string
	notice *store.Notice
}

// keepNotices is the write of users' notices of an event of a room, at
// the event's order; nil if there are none.
func keepNotices(roomID string, out []keptNotice) func(*store.Txn, uint64) error {
	if len(out) == 0 {
		return nil
	}
	return func(t *store.Txn, order uint64) error {
		for _, k := range out {
			if k.notice == nil {
				if err := t.DeleteNotice(k.user, roomID, order); err != nil {
					return err
				}
				continue
			}
			n := *k.notice
			n.Order = order
			if err := t.PutNotice(k.user, roomID, &n); err != nil {
				return err
			}
		}
		return nil
	}
}

// unnotice is the write that removes the notices of a redaction's target
// once the engine has recorded that the redaction applies (in the same
// write, before this runs).
func (api *API) unnotice(r *dag.Room, ev *rooms.Event) func(*store.Txn, uint64) error {
	pr := api.pushRoomOf(r)
	if len(pr.locals) == 0 {
		return nil
	}
	return func(t *store.Txn, _ uint64) error {
		red, err := t.Redaction(ev.Redacts())
		if err != nil || red == nil || red.RedactionID != ev.ID() {
			return nil // does not apply (or not recorded: kept as it was)
		}
		order := storedOrder(t, ev.Redacts())
		if order == 0 {
			return nil
		}
		for _, m := range pr.locals {
			if err := t.DeleteNotice(m.user, r.ID, order); err != nil {
				return err
			}
		}
		return nil
	}
}

// pushRoomOf returns the room's push context for its current state,
// evaluated once per state.
func (api *API) pushRoomOf(r *dag.Room) *pushRoom {
	h := r.Head()
	ns := &api.notices
	ns.mu.Lock()
	pr := ns.rooms[r.ID]
	ns.mu.Unlock()
	if pr != nil && pr.stateID == h.StateID {
		return pr
	}
	pr = &pushRoom{stateID: h.StateID}
	if pl, err := rooms.PowerLevelsFrom(api.dag.StateFunc(dag.WithCreate(r, h.State))); err == nil {
		pr.pl = pl
	}
	for k, id := range h.State {
		if k.Type != "m.room.member" || api.membership(nil, id) != "join" {
			continue
		}
		pr.memberCount++
		if _, local := api.peers.LocalUser(k.StateKey); !local {
			continue
		}
		m := localMember{user: k.StateKey}
		if me, err := api.readShown(nil, id); err == nil {
			var c struct {
				DisplayName string `json:"displayname"`
			}
			if json.Unmarshal(me.Content, &c) == nil {
				m.displayName = c.DisplayName
			}
		}
		pr.locals = append(pr.locals, m)
	}
	ns.mu.Lock()
	if ns.rooms == nil || len(ns.rooms) >= maxNoticeRooms {
		ns.rooms = map[string]*pushRoom{}
	}
	ns.rooms[r.ID] = pr
	ns.mu.Unlock()
	return pr
}

// noticeRules returns the user's rendered push rules, read again only
// when their account data changed since the last read.
func (api *API) noticeRules(t *store.Txn, user string) (*webui.PushRuleset, error) {
	ns := &api.notices
	ns.mu.Lock()
	pr := ns.rules[user]
	ns.mu.Unlock()
	if pr == nil {
		// The first read: the rules as stored, and the position of
		// their last change (later changes of other account data are
		// read once below).
		sr, err := loadRules(t, user)
		if err != nil {
			return nil, err
		}
		pr = &pushRules{rs: sr.render(user)}
		if ad, err := t.AccountDataEntry(user, "", pushRulesType); err == nil {
			pr.pos = ad.Pos
		}
	}
	changed, err := t.AccountDataSince(user, pr.pos)
	if err != nil {
		return nil, err
	}
	if len(changed) > 0 {
		npr := &pushRules{pos: pr.pos, rs: pr.rs}
		for _, ad := range changed {
			npr.pos = max(npr.pos, ad.Pos)
			if ad.Room != "" || ad.Type != pushRulesType {
				continue
			}
			var sr storedRules
			if err := json.Unmarshal(ad.Content, &sr); err != nil {
				return nil, err
			}
			npr.rs = sr.render(user)
		}
		pr = npr
	}
	ns.mu.Lock()
	if old := ns.rules[user]; old == nil || old.pos <= pr.pos {
		if ns.rules == nil || len(ns.rules) >= maxNoticeUsers {
			ns.rules = map[string]*pushRules{}
		}
		ns.rules[user] = pr
	}
	ns.mu.Unlock()
	return pr.rs, nil
}

// PushEvaluations counts the evaluations of a user's push rules over an
// event since the API started (tests: counting reads what was stored,
// and evaluates nothing).
func (api *API) PushEvaluations() int64 { return api.notices.evaluations.Load() }
