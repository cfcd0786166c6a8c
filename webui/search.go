package webui

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/parley-p2p/parley/errs"
)

// Search finds the events of a user's rooms by their text (client-server
// API, "Server Side Search").
type Search interface {
	// SearchRoomEvents answers the room_events category of POST /search.
	SearchRoomEvents(ctx context.Context, s *Session, req SearchRequest) (*SearchRoomEventsResponse, error)
}

// The bounds of a search: results per page when the request names no
// limit, the most it may ask for, the longest search term (bytes), and
// the most context events on each side of a result.
const (
	DefaultSearchLimit = 10
	MaxSearchLimit     = 50
	MaxSearchTerm      = 512
	MaxSearchContext   = 20
)

// The keys a search may look in (SearchRequest.Keys).
const (
	SearchKeyBody  = "content.body"
	SearchKeyName  = "content.name"
	SearchKeyTopic = "content.topic"
)

// SearchRequest is the room_events category of POST /search, checked.
type SearchRequest struct {
	Term string
	// Keys are the content keys to look in; all three if the request
	// names none.
	Keys   []string
	Filter SearchFilter
	// OrderBy is "rank" (the default) or "recent".
	OrderBy string
	// Context, if set, asks for events around each result.
	Context *SearchContextRequest
	// IncludeState asks for the current state of each room with a result.
	IncludeState bool
	// GroupBy is "room_id" and/or "sender".
	GroupBy []string
	// NextBatch is the token of a previous page ("" for the first).
	NextBatch string
}

// SearchFilter is the RoomEventFilter of a search.
type SearchFilter struct {
	Limit                int // 1..MaxSearchLimit
	Rooms, NotRooms      []string
	Senders, NotSenders  []string
	Types, NotTypes      []string
	ContainsURL          *bool
	HasRooms, HasSenders bool // Rooms, Senders given (an empty list allows none)
	HasTypes             bool
}

// Allows reports whether the filter lets an event through by its room,
// type and sender.
func (f *SearchFilter) Allows(roomID, evType, sender string) bool {
	if (f.HasRooms && !matchAny(f.Rooms, roomID)) || matchAny(f.NotRooms, roomID) {
		return false
	}
	if (f.HasSenders && !matchAny(f.Senders, sender)) || matchAny(f.NotSenders, sender) {
		return false
	}
	return (!f.HasTypes || matchAny(f.Types, evType)) && !matchAny(f.NotTypes, evType)
}

// AllowsRoom reports whether the filter lets any event of a room through.
func (f *SearchFilter) AllowsRoom(roomID string) bool {
	return (!f.HasRooms || matchAny(f.Rooms, roomID)) && !matchAny(f.NotRooms, roomID)
}

// SearchContextRequest asks for the events around each result.
type SearchContextRequest struct {
	Before, After  int
	IncludeProfile bool
}

// SearchRoomEventsResponse is the room_events category of the answer.
type SearchRoomEventsResponse struct {
	Count      int                                `json:"count"`
	Highlights []string                           `json:"highlights"`
	NextBatch  string                             `json:"next_batch,omitempty"`
	Results    []SearchResult                     `json:"results"`
	State      map[string][]ClientEvent           `json:"state,omitempty"`
	Groups     map[string]map[string]*SearchGroup `json:"groups,omitempty"`
}

// SearchResult is one event found.
type SearchResult struct {
	Rank    float64              `json:"rank"`
	Result  ClientEvent          `json:"result"`
	Context *SearchResultContext `json:"context,omitempty"`
}

// SearchResultContext is the events around a result.
type SearchResultContext struct {
	Start        string                   `json:"start,omitempty"`
	End          string                   `json:"end,omitempty"`
	EventsBefore []ClientEvent            `json:"events_before"`
	EventsAfter  []ClientEvent            `json:"events_after"`
	ProfileInfo  map[string]SearchProfile `json:"profile_info,omitempty"`
}

// SearchProfile is a sender's profile as of the result.
type SearchProfile struct {
	DisplayName string `json:"displayname,omitempty"`
	AvatarURL   string `json:"avatar_url,omitempty"`
}

// SearchGroup is the results of one room or sender, by event ID.
type SearchGroup struct {
	Results   []string `json:"results"`
	Order     int      `json:"order"`
	NextBatch string   `json:"next_batch,omitempty"`
}

func (s *Server) postSearch(w http.ResponseWriter, r *http.Request, sess *Session) error {
	var body struct {
		Categories *struct {
			RoomEvents *struct {
				SearchTerm *string          `json:"search_term"`
				Keys       []string         `json:"keys"`
				Filter     *json.RawMessage `json:"filter"`
				OrderBy    *string          `json:"order_by"`
				Context    *struct {
					Before         *int `json:"before_limit"`
					After          *int `json:"after_limit"`
					IncludeProfile bool `json:"include_profile"`
				} `json:"event_context"`
				IncludeState bool `json:"include_state"`
				Groupings    *struct {
					GroupBy []struct {
						Key string `json:"key"`
					} `json:"group_by"`
				} `json:"groupings"`
			} `json:"room_events"`
		} `json:"search_categories"`
	}
	if err := readJSON(r, &body); err != nil {
		return err
	}
	if body.Categories == nil {
		return errMissingParam("search_categories is required")
	}
	out := map[string]any{}
	if re := body.Categories.RoomEvents; re != nil {
		if re.SearchTerm == nil {
			return errMissingParam("room_events.search_term is required")
		}
		req := SearchRequest{Term: *re.SearchTerm, Keys: re.Keys, OrderBy: "rank", IncludeState: re.IncludeState, NextBatch: r.URL.Query().Get("next_batch")}
		if len(req.Term) > MaxSearchTerm {
			return errs.Invalidf("search_term is longer than %d bytes", MaxSearchTerm)
		}
		for _, k := range re.Keys {
			if k != SearchKeyBody && k != SearchKeyName && k != SearchKeyTopic {
				return errs.Invalidf("keys: %q is not one of content.body, content.name, content.topic", k)
			}
		}
		if re.OrderBy != nil {
			if *re.OrderBy != "rank" && *re.OrderBy != "recent" {
				return errs.Invalidf("order_by must be rank or recent")
			}
			req.OrderBy = *re.OrderBy
		}
		f, err := searchFilter(re.Filter)
		if err != nil {
			return err
		}
		req.Filter = f
		if c := re.Context; c != nil {
			req.Context = &SearchContextRequest{Before: 5, After: 5, IncludeProfile: c.IncludeProfile}
			for _, p := range []struct {
				v   *int
				dst *int
			}{{c.Before, &req.Context.Before}, {c.After, &req.Context.After}} {
				if p.v == nil {
					continue
				}
				if *p.v < 0 {
					return errs.Invalidf("event_context limits must not be negative")
				}
				*p.dst = min(*p.v, MaxSearchContext)
			}
		}
		if g := re.Groupings; g != nil {
			for _, k := range g.GroupBy {
				if k.Key != "room_id" && k.Key != "sender" {
					return errs.Invalidf("groupings: group_by key must be room_id or sender")
				}
				req.GroupBy = append(req.GroupBy, k.Key)
			}
		}
		resp, err := s.search.SearchRoomEvents(r.Context(), sess, req)
		if err != nil {
			return err
		}
		if resp.Results == nil {
			resp.Results = []SearchResult{}
		}
		if resp.Highlights == nil {
			resp.Highlights = []string{}
		}
		out["room_events"] = resp
	}
	writeJSON(w, http.StatusOK, map[string]any{"search_categories": out})
	return nil
}

// searchFilter reads a search's filter, checked as /messages checks its
// own, with the limit defaulted and capped.
func searchFilter(raw *json.RawMessage) (SearchFilter, error) {
	f := SearchFilter{Limit: DefaultSearchLimit}
	if raw == nil || string(*raw) == "null" {
		return f, nil
	}
	var s roomEventFilterSchema
	if err := json.Unmarshal(*raw, &s); err != nil {
		return f, errs.Invalidf("filter: %v", err)
	}
	if err := s.check(); err != nil {
		return f, errs.Invalidf("filter: %v", err)
	}
	if s.Limit != nil && *s.Limit > 0 {
		f.Limit = min(*s.Limit, MaxSearchLimit)
	}
	f.Rooms, f.NotRooms, f.HasRooms = s.Rooms, s.NotRooms, s.Rooms != nil
	f.Senders, f.NotSenders, f.HasSenders = s.Senders, s.NotSenders, s.Senders != nil
	f.Types, f.NotTypes, f.HasTypes = s.Types, s.NotTypes, s.Types != nil
	f.ContainsURL = s.ContainsURL
	return f, nil
}
