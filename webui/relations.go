package webui

import (
	"context"
	"net/http"

	"github.com/parley-p2p/parley/errs"
)

// Relations serves the children of an event and the threads of a room
// (client-server API, "Relationships between events", "Threading").
type Relations interface {
	// Relations is a page of the events relating to req.EventID;
	// errs.NotFound if the user may not see it (or it does not exist),
	// errs.Invalid for a token that is not one.
	Relations(ctx context.Context, s *Session, req RelationsRequest) (*RelationsResponse, error)
	// Threads is a page of the room's thread roots, latest activity
	// first; errs.Forbidden if the user may not read the room.
	Threads(ctx context.Context, s *Session, req ThreadsRequest) (*ThreadsResponse, error)
}

// RelationsRequest is GET /rooms/{roomId}/relations/{eventId}[/{relType}[/{eventType}]].
type RelationsRequest struct {
	RoomID, EventID    string
	RelType, EventType string // "" for any
	From, To           string
	Limit              int
	Dir                string // "b" or "f"
	Recurse            bool
}

// RelationsResponse is the answer to GET /relations.
type RelationsResponse struct {
	Chunk     []ClientEvent `json:"chunk"`
	NextBatch string        `json:"next_batch,omitempty"`
	PrevBatch string        `json:"prev_batch,omitempty"`
	// RecursionDepth is set when the request asked to recurse.
	RecursionDepth *int `json:"recursion_depth,omitempty"`
}

// ThreadsRequest is GET /rooms/{roomId}/threads.
type ThreadsRequest struct {
	RoomID string
	// Participated keeps the threads the user sent the root of or replied in.
	Participated bool
	From         string
	Limit        int
}

// ThreadsResponse is the answer to GET /threads.
type ThreadsResponse struct {
	Chunk     []ClientEvent `json:"chunk"`
	NextBatch string        `json:"next_batch,omitempty"`
}

// The bounds of a page of relations or threads: its size when the
// request names none, and at most; and how deep recurse follows.
const (
	DefaultRelationsLimit = 50
	MaxRelationsLimit     = 100
	MaxRelationsDepth     = 3
)

func (s *Server) getRelations(w http.ResponseWriter, r *http.Request, sess *Session) error {
	q := r.URL.Query()
	req := RelationsRequest{
		RoomID: r.PathValue("roomId"), EventID: r.PathValue("eventId"),
		RelType: r.PathValue("relType"), EventType: r.PathValue("eventType"),
		From: q.Get("from"), To: q.Get("to"), Limit: DefaultRelationsLimit, Dir: "b",
	}
	if n, ok, err := queryInt(q, "limit", 1); err != nil {
		return err
	} else if ok {
		req.Limit = min(n, MaxRelationsLimit)
	}
	dir, err := queryDir(q)
	if err != nil {
		return err
	}
	if dir == "f" {
		req.Dir = "f"
	}
	if req.Recurse, err = queryBool(q, "recurse"); err != nil {
		return err
	}
	resp, err := s.relations.Relations(r.Context(), sess, req)
	if err != nil {
		return err
	}
	if resp.Chunk == nil {
		resp.Chunk = []ClientEvent{}
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

func (s *Server) getThreads(w http.ResponseWriter, r *http.Request, sess *Session) error {
	q := r.URL.Query()
	req := ThreadsRequest{RoomID: r.PathValue("roomId"), From: q.Get("from"), Limit: DefaultRelationsLimit}
	if n, ok, err := queryInt(q, "limit", 1); err != nil {
		return err
	} else if ok {
		req.Limit = min(n, MaxRelationsLimit)
	}
	switch q.Get("include") {
	case "", "all":
	case "participated":
		req.Participated = true
	default:
		return errs.Invalidf("include must be all or participated")
	}
	resp, err := s.relations.Threads(r.Context(), sess, req)
	if err != nil {
		return err
	}
	if resp.Chunk == nil {
		resp.Chunk = []ClientEvent{}
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}
