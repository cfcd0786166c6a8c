package webui

import (
	"context"
	"net/http"
	"strconv"

	"github.com/parley-p2p/parley/errs"
)

// Timestamps finds a room's event nearest a point in time (client-server
// API, "timestamp_to_event").
type Timestamps interface {
	// TimestampToEvent is the event of the room the user may see that is
	// nearest ts in the direction dir ("f": at or after, "b": at or
	// before); errs.NotFound if there is none.
	TimestampToEvent(ctx context.Context, s *Session, roomID string, ts int64, dir string) (*TimestampEvent, error)
}

// TimestampEvent is the answer to timestamp_to_event.
type TimestampEvent struct {
	EventID        string `json:"event_id"`
	OriginServerTS int64  `json:"origin_server_ts"`
}

func (s *Server) timestampToEvent(w http.ResponseWriter, r *http.Request, sess *Session) error {
	q := r.URL.Query()
	rawTS, dir := q.Get("ts"), q.Get("dir")
	if rawTS == "" {
		return errMissingParam("ts is required")
	}
	ts, err := strconv.ParseInt(rawTS, 10, 64)
	if err != nil || ts < 0 {
		return errs.Invalidf("ts must be a non-negative integer (milliseconds)")
	}
	switch dir {
	case "":
		return errMissingParam("dir is required")
	case "f", "b":
	default:
		return errs.Invalidf("dir must be f or b")
	}
	ev, err := s.timestamps.TimestampToEvent(r.Context(), sess, r.PathValue("roomId"), ts, dir)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, ev)
	return nil
}
