package webui

import (
	"context"
	"net/http"

	"github.com/parley-p2p/parley/errs"
)

// Directory is what the API needs for the public room directory: the
// rooms this node publishes and, through the node, those others publish.
type Directory interface {
	// RoomVisibility is "public" if the node lists the room in its
	// directory, else "private"; not found if the room is unknown here.
	RoomVisibility(ctx context.Context, roomID string) (string, error)
	// SetRoomVisibility publishes the room ("public") or takes it out of
	// the directory ("private").
	SetRoomVisibility(ctx context.Context, s *Session, roomID, visibility string) error
	// PublicRooms returns one page of the directory.
	PublicRooms(ctx context.Context, q PublicRoomsQuery) (*PublicRoomsPage, error)
}

// PublicRoomsQuery is a /publicRooms request, GET's or POST's.
type PublicRoomsQuery struct {
	Limit int // 0: the node's default
	Since string
	// Server is the server whose directory is asked for; "" for the
	// node's own and those the node finds on the network.
	Server               string
	SearchTerm           string
	RoomTypes            []*string // nil: any; a nil element: rooms without a type
	FilterRoomTypes      bool      // RoomTypes was given
	IncludeAllNetworks   bool
	ThirdPartyInstanceID string
}

// PublicRoomsPage is a /publicRooms answer.
type PublicRoomsPage struct {
	Chunk     []PublicRoomEntry `json:"chunk"`
	NextBatch string            `json:"next_batch,omitempty"`
	PrevBatch string            `json:"prev_batch,omitempty"`
	Total     int               `json:"total_room_count_estimate"`
}

// PublicRoomEntry is one room of the directory (the spec's
// PublishedRoomsChunk).
type PublicRoomEntry struct {
	RoomID         string `json:"room_id"`
	Name           string `json:"name,omitempty"`
	Topic          string `json:"topic,omitempty"`
	CanonicalAlias string `json:"canonical_alias,omitempty"`
	AvatarURL      string `json:"avatar_url,omitempty"`
	JoinedMembers  int    `json:"num_joined_members"`
	WorldReadable  bool   `json:"world_readable"`
	GuestCanJoin   bool   `json:"guest_can_join"`
	JoinRule       string `json:"join_rule,omitempty"`
	RoomType       string `json:"room_type,omitempty"`
}

// maxSearchTerm bounds a directory search term.
const maxSearchTerm = 1000

func (s *Server) getRoomVisibility(w http.ResponseWriter, r *http.Request, _ *Session) error {
	v, err := s.directory.RoomVisibility(r.Context(), r.PathValue("roomId"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{"visibility": v})
	return nil
}

func (s *Server) putRoomVisibility(w http.ResponseWriter, r *http.Request, sess *Session) error {
	var body struct {
		Visibility *string `json:"visibility"`
	}
	if err := readJSON(r, &body); err != nil {
		return err
	}
	v := "public" // the spec's default
	if body.Visibility != nil {
		v = *body.Visibility
	}
	if v != "public" && v != "private" {
		return errs.Invalidf("visibility must be \"public\" or \"private\", not %q", v)
	}
	if err := s.directory.SetRoomVisibility(r.Context(), sess, r.PathValue("roomId"), v); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{})
	return nil
}

func (s *Server) getPublicRooms(w http.ResponseWriter, r *http.Request, _ *Session) error {
	q := r.URL.Query()
	query := PublicRoomsQuery{Since: q.Get("since"), Server: q.Get("server"), ThirdPartyInstanceID: q.Get("third_party_instance_id")}
	if n, ok, err := queryInt(q, "limit", 0); err != nil {
		return err
	} else if ok {
		query.Limit = n
	}
	var err error
	if query.IncludeAllNetworks, err = queryBool(q, "include_all_networks"); err != nil {
		return err
	}
	return s.publicRooms(w, r, query)
}

func (s *Server) postPublicRooms(w http.ResponseWriter, r *http.Request, _ *Session) error {
	var body struct {
		Limit  *int   `json:"limit"`
		Since  string `json:"since"`
		Filter *struct {
			GenericSearchTerm string     `json:"generic_search_term"`
			RoomTypes         *[]*string `json:"room_types"`
		} `json:"filter"`
		IncludeAllNetworks   bool   `json:"include_all_networks"`
		ThirdPartyInstanceID string `json:"third_party_instance_id"`
	}
	if err := readJSON(r, &body); err != nil {
		return err
	}
	query := PublicRoomsQuery{
		Since: body.Since, Server: r.URL.Query().Get("server"),
		IncludeAllNetworks: body.IncludeAllNetworks, ThirdPartyInstanceID: body.ThirdPartyInstanceID,
	}
	if body.Limit != nil {
		if *body.Limit < 0 {
			return errs.Invalidf("limit must be a non-negative integer")
		}
		query.Limit = *body.Limit
	}
	if f := body.Filter; f != nil {
		if len(f.GenericSearchTerm) > maxSearchTerm {
			return errs.Invalidf("generic_search_term has %d bytes, over %d", len(f.GenericSearchTerm), maxSearchTerm)
		}
		query.SearchTerm = f.GenericSearchTerm
		if f.RoomTypes != nil {
			query.RoomTypes, query.FilterRoomTypes = *f.RoomTypes, true
		}
	}
	return s.publicRooms(w, r, query)
}

func (s *Server) publicRooms(w http.ResponseWriter, r *http.Request, q PublicRoomsQuery) error {
	if q.IncludeAllNetworks && q.ThirdPartyInstanceID != "" {
		return errs.Invalidf("include_all_networks and third_party_instance_id cannot both be given")
	}
	page, err := s.directory.PublicRooms(r.Context(), q)
	if err != nil {
		return err
	}
	if page.Chunk == nil {
		page.Chunk = []PublicRoomEntry{}
	}
	writeJSON(w, http.StatusOK, page)
	return nil
}
