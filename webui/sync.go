package webui

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/parley-p2p/parley/errs"
)

// Syncer answers /sync. A stored filter named by ID is read through
// Accounts.Filter.
type Syncer interface {
	Sync(ctx context.Context, s *Session, req SyncRequest) (*SyncResponse, error)
}

func (s *Server) sync(w http.ResponseWriter, r *http.Request, sess *Session) error {
	q := r.URL.Query()
	req := SyncRequest{Since: q.Get("since"), FullState: q.Get("full_state") == "true"}
	switch req.SetPresence = q.Get("set_presence"); req.SetPresence {
	case "", "online", "unavailable", "offline":
	default:
		return errs.Invalidf("set_presence must be online, unavailable or offline")
	}
	if t := q.Get("timeout"); t != "" {
		n, err := strconv.ParseInt(t, 10, 64)
		if err != nil || n < 0 {
			return errs.Invalidf("timeout must be a non-negative integer")
		}
		req.Timeout = min(n, 5*60*1000)
	}
	if f := q.Get("filter"); f != "" {
		var raw json.RawMessage
		if strings.HasPrefix(strings.TrimSpace(f), "{") {
			raw = json.RawMessage(f)
		} else {
			stored, err := s.accounts.Filter(sess.UserID, f)
			if err != nil {
				return err
			}
			raw = stored
		}
		var filter Filter
		if err := json.Unmarshal(raw, &filter); err != nil {
			return errs.Invalidf("filter: %v", err)
		}
		req.Filter = &filter
	}
	resp, err := s.syncer.Sync(r.Context(), sess, req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}
