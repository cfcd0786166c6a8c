package client

import (
	"cmp"
	"encoding/json"
	"math"
	"slices"
	"strconv"

	"github.com/parley-p2p/parley/errs"
	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/webui"
)

const (
	// maxNotificationScan bounds the notices GET /notifications reads in
	// each joined room: the newest this many before its cursor.
	maxNotificationScan     = 200
	defaultNotificationPage = 20
	maxNotificationPage     = 100
)

// Notifications implements webui.UserData: the events of the user's
// joined rooms that their push rules said notify when the events were
// stored (the notices, notices.go), newest first, each marked read when
// it is at or before the user's read position (their receipt, or an
// event of their own after it). It reaches back maxNotificationScan
// notices per room. from is the next_token of a previous page: an
// origin_server_ts to go below.
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
	pos := api.store.Pos()
	type found struct {
		room string
		n    store.Notice
		read bool
	}
	var all []found
	resp := &webui.NotificationsResponse{Notifications: []webui.Notification{}}
	err := api.store.View(func(t *store.Txn) error {
		for _, r := range api.dag.Rooms() {
			memID, ok := r.State()[memberKey(s.UserID)]
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
			ownSeen := false // newest first: an own event reads all before it
			scanned := 0
			err = t.Notices(s.UserID, r.ID, 0, store.LiveBase+pos, func(n store.Notice) bool {
				scanned++
				switch {
				case n.Own, n.Left:
					ownSeen = true
				case !n.Notify || n.TS >= before || (only == "highlight" && !n.Highlight):
				default:
					all = append(all, found{room: r.ID, n: n, read: ownSeen || n.Order <= read})
				}
				return scanned < maxNotificationScan
			})
			if err != nil {
				return err
			}
		}
		slices.SortStableFunc(all, func(a, b found) int { return cmp.Compare(b.n.TS, a.n.TS) })
		if len(all) > limit {
			all = all[:limit]
			resp.NextToken = strconv.FormatInt(all[limit-1].n.TS, 10)
		}
		for _, f := range all {
			entries, err := t.Timeline(f.room, f.n.Order-1, f.n.Order, true, 1)
			if err != nil {
				return err
			}
			if len(entries) == 0 {
				continue
			}
			e, err := api.readShown(t, entries[0].EventID)
			if err != nil {
				return err
			}
			if e.hidden || e.redactedBy != nil {
				continue
			}
			var actions []json.RawMessage
			if err := json.Unmarshal(f.n.Actions, &actions); err != nil {
				return err
			}
			resp.Notifications = append(resp.Notifications, webui.Notification{
				Actions: actions, Event: api.render(e, s, true), Read: f.read, RoomID: f.room, TS: f.n.TS,
			})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return resp, nil
}
