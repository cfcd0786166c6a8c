package client

import (
	"cmp"
	"math"
	"slices"
	"strconv"

	"github.com/parley-p2p/parley/errs"
	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/webui"
)

const (
	// maxNotificationScan bounds the events GET /notifications reads in
	// each joined room: the newest this many before its cursor.
	maxNotificationScan     = 200
	defaultNotificationPage = 20
	maxNotificationPage     = 100
)

// Notifications implements webui.UserData: the events of the user's
// joined rooms that their push rules say notify, newest first, each
// marked read when it is at or before the user's read position (their
// receipt, or an event of their own after it). Nothing is logged when
// events arrive: the list is evaluated from the rooms' timelines, so it
// reaches back maxNotificationScan events per room. from is the
// next_token of a previous page: an origin_server_ts to go below.
func (api *API) Notifications(s *webui.Session, from string, limit int, only string) (*webui.NotificationsResponse, error) {
	before := int64(math.MaxInt64)
	if from != "" {
		n, err := strconv.ParseInt(from, 10, 64)
		if err != nil || n <= 0 {
			return nil, errs.Invalidf("invalid from token %q", from)
		}
		before = n
	}
	if limit <= 0 {
		limit = defaultNotificationPage
	}
	limit = min(limit, maxNotificationPage)
	rules, err := api.userRules(s.UserID)
	if err != nil {
		return nil, err
	}
	pos := api.store.Pos()
	var all []webui.Notification
	err = api.store.View(func(t *store.Txn) error {
		for _, r := range api.dag.Rooms() {
			state := r.State()
			memID, ok := state[memberKey(s.UserID)]
			if !ok || api.membership(t, memID) != "join" {
				continue
			}
			receipts, err := t.Receipts(r.ID, s.UserID)
			if err != nil {
				return err
			}
			var read uint64
			for _, rc := range receipts {
				if rc.Thread == "" || rc.Thread == "main" {
					read = max(read, storedOrder(t, rc.EventID))
				}
			}
			entries, err := t.Timeline(r.ID, 0, store.LiveBase+pos, false, maxNotificationScan)
			if err != nil {
				return err
			}
			env := api.pushEnvFor(t, r, state, s.UserID, memID)
			ownSeen := false // newest first: an own event reads all before it
			for _, en := range entries {
				e, err := api.readShown(t, en.EventID)
				if err != nil {
					return err
				}
				if e.hidden || e.redactedBy != nil {
					continue
				}
				if e.Sender == s.UserID {
					ownSeen = true
					continue
				}
				if e.OriginServerTS >= before {
					continue
				}
				ev, _ := pushEvent(e, r.ID)
				actions, ok := matchActions(rules, ev, env)
				v := verdictOf(actions)
				if !ok || !v.notify || (only == "highlight" && !v.highlight) {
					continue
				}
				all = append(all, webui.Notification{
					Actions: actions, Event: api.render(e, s, true), Read: ownSeen || en.Order <= read,
					RoomID: r.ID, TS: e.OriginServerTS,
				})
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(all, func(a, b webui.Notification) int { return cmp.Compare(b.TS, a.TS) })
	resp := &webui.NotificationsResponse{Notifications: []webui.Notification{}}
	if len(all) > limit {
		all = all[:limit]
		resp.NextToken = strconv.FormatInt(all[limit-1].TS, 10)
	}
	resp.Notifications = append(resp.Notifications, all...)
	return resp, nil
}
