package webui

import (
	"context"
	"net/http"

	"github.com/parley-p2p/parley/errs"
)

// UserDirectory searches the users a user may find (client-server API,
// "User directory").
type UserDirectory interface {
	// SearchUsers answers the users matching term, at most limit of them.
	SearchUsers(ctx context.Context, s *Session, term string, limit int) (*UserSearchResponse, error)
}

// UserSearchResult is one user found.
type UserSearchResult struct {
	UserID      string `json:"user_id"`
	DisplayName string `json:"display_name,omitempty"`
	AvatarURL   string `json:"avatar_url,omitempty"`
}

// UserSearchResponse is the answer to POST /user_directory/search.
type UserSearchResponse struct {
	Results []UserSearchResult `json:"results"`
	// Limited: more users matched than the limit let through.
	Limited bool `json:"limited"`
}

// The user directory's bounds: the number of results when the request
// names none, the most it may ask for, and the longest search term.
const (
	DefaultUserSearchLimit = 10
	MaxUserSearchLimit     = 50
	MaxUserSearchTerm      = 256
)

func (s *Server) searchUsers(w http.ResponseWriter, r *http.Request, sess *Session) error {
	var body struct {
		SearchTerm *string `json:"search_term"`
		Limit      *int    `json:"limit"`
	}
	if err := readJSON(r, &body); err != nil {
		return err
	}
	if body.SearchTerm == nil {
		return errMissingParam("search_term is required")
	}
	if len(*body.SearchTerm) > MaxUserSearchTerm {
		return errs.Invalidf("search_term is longer than %d bytes", MaxUserSearchTerm)
	}
	limit := DefaultUserSearchLimit
	if body.Limit != nil {
		if *body.Limit < 0 {
			return errs.Invalidf("limit must not be negative")
		}
		limit = min(*body.Limit, MaxUserSearchLimit)
	}
	resp, err := s.userDirectory.SearchUsers(r.Context(), sess, *body.SearchTerm, limit)
	if err != nil {
		return err
	}
	if resp.Results == nil {
		resp.Results = []UserSearchResult{}
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}
