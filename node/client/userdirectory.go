package client

import (
	"context"
	"encoding/json"
	"slices"
	"strings"

	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/webui"
)

// The user directory (client-server API, "User directory"): a user finds
// the local users of this node, and the users who share a joined room
// with them, by a case-insensitive match of the search term anywhere in
// the user ID or the display name. A local user shows their profile; a
// user of another node the display name and avatar of their member
// event in the first shared room (in room ID order) that has one.

// maxDirectoryScan bounds the users one search reads: local accounts,
// then members of the searcher's rooms; past it the rest are not
// searched.
const maxDirectoryScan = 20000

// SearchUsers implements webui.UserDirectory.
func (api *API) SearchUsers(_ context.Context, s *webui.Session, term string, limit int) (*webui.UserSearchResponse, error) {
	needle := strings.ToLower(term)
	matches := func(u webui.UserSearchResult) bool {
		return strings.Contains(strings.ToLower(u.UserID), needle) || strings.Contains(strings.ToLower(u.DisplayName), needle)
	}
	seen := map[string]bool{}
	var found []webui.UserSearchResult
	scanned := 0
	err := api.store.View(func(t *store.Txn) error {
		err := t.Accounts(maxDirectoryScan, func(a *store.Account) error {
			scanned++
			if a.Deactivated {
				return nil
			}
			u := webui.UserSearchResult{UserID: api.userID(a.Localpart)}
			seen[u.UserID] = true
			if p, err := t.Profile(u.UserID); err == nil {
				u.DisplayName, u.AvatarURL = p.DisplayName, p.AvatarURL
			}
			if matches(u) {
				found = append(found, u)
			}
			return nil
		})
		if err != nil {
			return err
		}
		roomIDs := api.joinedRoomIDs(s.UserID)
		slices.Sort(roomIDs)
		for _, roomID := range roomIDs {
			r := api.dag.Room(roomID)
			if r == nil {
				continue
			}
			for k, id := range r.State() {
				if k.Type != "m.room.member" || seen[k.StateKey] || scanned >= maxDirectoryScan {
					continue
				}
				scanned++
				e, err := api.readShown(t, id)
				if err != nil || e.hidden || e.Membership != "join" {
					continue
				}
				seen[k.StateKey] = true
				u := webui.UserSearchResult{UserID: k.StateKey}
				var c struct {
					DisplayName string `json:"displayname"`
					AvatarURL   string `json:"avatar_url"`
				}
				if json.Unmarshal(e.Content, &c) == nil {
					u.DisplayName, u.AvatarURL = c.DisplayName, c.AvatarURL
				}
				if matches(u) {
					found = append(found, u)
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(found, func(a, b webui.UserSearchResult) int { return strings.Compare(a.UserID, b.UserID) })
	resp := &webui.UserSearchResponse{Results: found, Limited: len(found) > limit}
	if resp.Limited {
		resp.Results = found[:limit]
	}
	return resp, nil
}
