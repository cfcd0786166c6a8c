package webui

import (
	"context"
	"encoding/json"
	"net/http"
)

// Hierarchy walks a space's tree of rooms (client-server API, "Spaces").
type Hierarchy interface {
	// Hierarchy is a page of the rooms under req.RoomID, depth first,
	// the root first; errs.Forbidden if the user may not see the root,
	// errs.Invalid for a from token that is not from an earlier page of
	// the same walk.
	Hierarchy(ctx context.Context, s *Session, req HierarchyRequest) (*HierarchyResponse, error)
}

// HierarchyRequest is GET /rooms/{roomId}/hierarchy.
type HierarchyRequest struct {
	RoomID        string
	From          string
	Limit         int
	MaxDepth      int
	SuggestedOnly bool
}

// HierarchyRoom is one room of a hierarchy's page, with its
// m.space.child state events stripped.
type HierarchyRoom struct {
	RoomID           string            `json:"room_id"`
	Name             string            `json:"name,omitempty"`
	Topic            string            `json:"topic,omitempty"`
	CanonicalAlias   string            `json:"canonical_alias,omitempty"`
	AvatarURL        string            `json:"avatar_url,omitempty"`
	JoinRule         string            `json:"join_rule,omitempty"`
	RoomType         string            `json:"room_type,omitempty"`
	RoomVersion      string            `json:"room_version,omitempty"`
	Encryption       string            `json:"encryption,omitempty"`
	NumJoinedMembers int               `json:"num_joined_members"`
	WorldReadable    bool              `json:"world_readable"`
	GuestCanJoin     bool              `json:"guest_can_join"`
	AllowedRoomIDs   []string          `json:"allowed_room_ids,omitempty"`
	ChildrenState    []ChildStateEvent `json:"children_state"`
}

// ChildStateEvent is a stripped m.space.child event.
type ChildStateEvent struct {
	Content        json.RawMessage `json:"content"`
	OriginServerTS int64           `json:"origin_server_ts"`
	Sender         string          `json:"sender"`
	StateKey       string          `json:"state_key"`
	Type           string          `json:"type"`
}

// HierarchyResponse is the answer to GET /rooms/{roomId}/hierarchy.
type HierarchyResponse struct {
	Rooms     []HierarchyRoom `json:"rooms"`
	NextBatch string          `json:"next_batch,omitempty"`
}

// The hierarchy's bounds: rooms per page when the request names none
// and at most, and how deep a walk goes by default and at most.
const (
	DefaultHierarchyLimit = 20
	MaxHierarchyLimit     = 100
	MaxHierarchyDepth     = 10
)

func (s *Server) getHierarchy(w http.ResponseWriter, r *http.Request, sess *Session) error {
	q := r.URL.Query()
	req := HierarchyRequest{RoomID: r.PathValue("roomId"), From: q.Get("from"), Limit: DefaultHierarchyLimit, MaxDepth: MaxHierarchyDepth}
	if n, ok, err := queryInt(q, "limit", 1); err != nil {
		return err
	} else if ok {
		req.Limit = min(n, MaxHierarchyLimit)
	}
	if n, ok, err := queryInt(q, "max_depth", 0); err != nil {
		return err
	} else if ok {
		req.MaxDepth = min(n, MaxHierarchyDepth)
	}
	var err error
	if req.SuggestedOnly, err = queryBool(q, "suggested_only"); err != nil {
		return err
	}
	resp, err := s.hierarchy.Hierarchy(r.Context(), sess, req)
	if err != nil {
		return err
	}
	if resp.Rooms == nil {
		resp.Rooms = []HierarchyRoom{}
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}
