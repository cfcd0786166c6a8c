package client

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/parley-p2p/parley/errs"
	"github.com/parley-p2p/parley/node/dag"
	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/rooms"
	"github.com/parley-p2p/parley/webui"
)

// Spaces (client-server API, "Spaces"): a space is a room whose
// m.space.child state events (with a non-empty via) name its children.
// The hierarchy walks them depth first from a root, over the rooms this
// node holds only (it asks no other node), and shows a room only to a
// user who is joined to it, or if it is public or world-readable; a room
// it does not show it does not walk into. A page is a slice of the
// whole walk, which is rebuilt for each page: its from token carries
// the place and the walk's settings, which may not change between pages.

// maxHierarchyRooms bounds the rooms one walk visits.
const maxHierarchyRooms = 1000

// Hierarchy implements webui.Hierarchy.
func (api *API) Hierarchy(_ context.Context, s *webui.Session, req webui.HierarchyRequest) (*webui.HierarchyResponse, error) {
	skip := 0
	if req.From != "" {
		n, ok := parseHierarchyToken(req.From, req.MaxDepth, req.SuggestedOnly)
		if !ok {
			return nil, errs.Invalidf("invalid from token %q (max_depth and suggested_only may not change between pages)", req.From)
		}
		skip = n
	}
	root := api.dag.Room(req.RoomID)
	if root == nil || !api.seesSpaceRoom(s, root) {
		return nil, errs.Forbiddenf("you may not see room %s", req.RoomID)
	}
	var walk []webui.HierarchyRoom
	visited := map[string]bool{}
	var visit func(r *dag.Room, depth int)
	visit = func(r *dag.Room, depth int) {
		if visited[r.ID] || len(visited) >= maxHierarchyRooms {
			return
		}
		visited[r.ID] = true
		entry, children := api.spaceRoom(r, req.SuggestedOnly)
		walk = append(walk, entry)
		if depth >= req.MaxDepth {
			return
		}
		for _, id := range children {
			if c := api.dag.Room(id); c != nil && api.seesSpaceRoom(s, c) {
				visit(c, depth+1)
			}
		}
	}
	visit(root, 0)
	resp := &webui.HierarchyResponse{}
	if skip < len(walk) {
		resp.Rooms = walk[skip:min(len(walk), skip+req.Limit)]
	}
	if next := skip + req.Limit; next < len(walk) {
		resp.NextBatch = hierarchyToken(next, req.MaxDepth, req.SuggestedOnly)
	}
	return resp, nil
}

// hierarchyToken names a place in a walk with the walk's settings.
func hierarchyToken(skip, maxDepth int, suggested bool) string {
	return fmt.Sprintf("h%d_%d_%t", skip, maxDepth, suggested)
}

func parseHierarchyToken(tok string, maxDepth int, suggested bool) (int, bool) {
	rest, ok := strings.CutPrefix(tok, "h")
	if !ok {
		return 0, false
	}
	n, settings, ok := strings.Cut(rest, "_")
	if !ok || settings != fmt.Sprintf("%d_%t", maxDepth, suggested) {
		return 0, false
	}
	skip, err := strconv.Atoi(n)
	return skip, err == nil && skip >= 0
}

// seesSpaceRoom reports whether a hierarchy shows the room to the user:
// they are joined, or it is public or world-readable.
func (api *API) seesSpaceRoom(s *webui.Session, r *dag.Room) bool {
	if api.membershipIn(r.ID, s.UserID) == "join" || api.worldReadable(r) {
		return true
	}
	var jr struct {
		JoinRule string `json:"join_rule"`
	}
	api.stateContent(r.State(), "m.room.join_rules", "", &jr)
	return jr.JoinRule == "public"
}

// shownState is the (typ, key) event of a state as clients are shown it;
// false if the state has none, or it is hidden.
func (api *API) shownState(state store.StateMap, typ, key string) (shownEvent, bool, error) {
	id, ok := state[rooms.StateKey{Type: typ, StateKey: key}]
	if !ok {
		return shownEvent{}, false, nil
	}
	e, err := api.readShown(nil, id)
	if err != nil {
		return shownEvent{}, false, err
	}
	return e, !e.hidden, nil
}

// stateContent decodes a state event's content (its plain view) into v;
// false if the state has none, or it cannot be read.
func (api *API) stateContent(state store.StateMap, typ, key string, v any) bool {
	e, ok, err := api.shownState(state, typ, key)
	return err == nil && ok && json.Unmarshal(e.Content, v) == nil
}

// spaceChild is one m.space.child event of a room.
type spaceChild struct {
	roomID string
	order  string
	ts     int64
	ev     webui.ChildStateEvent
}

// spaceRoom is a room's entry in a hierarchy and its children's room
// IDs in the spec's order: by their order field (those with one first),
// then the time of their m.space.child event, then room ID.
func (api *API) spaceRoom(r *dag.Room, suggestedOnly bool) (webui.HierarchyRoom, []string) {
	state := dag.WithCreate(r, r.State())
	out := webui.HierarchyRoom{RoomID: r.ID, RoomVersion: r.Version, ChildrenState: []webui.ChildStateEvent{}}
	var name struct {
		Name string `json:"name"`
	}
	if api.stateContent(state, "m.room.name", "", &name) {
		out.Name = name.Name
	}
	var topic struct {
		Topic string `json:"topic"`
	}
	if api.stateContent(state, "m.room.topic", "", &topic) {
		out.Topic = topic.Topic
	}
	var alias struct {
		Alias string `json:"alias"`
	}
	if api.stateContent(state, "m.room.canonical_alias", "", &alias) {
		out.CanonicalAlias = alias.Alias
	}
	var avatar struct {
		URL string `json:"url"`
	}
	if api.stateContent(state, "m.room.avatar", "", &avatar) {
		out.AvatarURL = avatar.URL
	}
	var jr struct {
		JoinRule string `json:"join_rule"`
		Allow    []struct {
			Type   string `json:"type"`
			RoomID string `json:"room_id"`
		} `json:"allow"`
	}
	if api.stateContent(state, "m.room.join_rules", "", &jr) {
		out.JoinRule = jr.JoinRule
		for _, a := range jr.Allow {
			if a.Type == "m.room_membership" && a.RoomID != "" {
				out.AllowedRoomIDs = append(out.AllowedRoomIDs, a.RoomID)
			}
		}
	}
	var create struct {
		Type string `json:"type"`
	}
	if api.stateContent(state, "m.room.create", "", &create) {
		out.RoomType = create.Type
	}
	var enc struct {
		Algorithm string `json:"algorithm"`
	}
	if api.stateContent(state, "m.room.encryption", "", &enc) {
		out.Encryption = enc.Algorithm
	}
	var guests struct {
		GuestAccess string `json:"guest_access"`
	}
	api.stateContent(state, "m.room.guest_access", "", &guests)
	out.GuestCanJoin = guests.GuestAccess == "can_join"
	out.WorldReadable = api.worldReadable(r)
	var children []spaceChild
	for k, id := range state {
		switch k.Type {
		case "m.room.member":
			if m, ok := api.dag.MembershipOf(id); ok && m == "join" {
				out.NumJoinedMembers++
			}
			continue
		case "m.space.child":
		default:
			continue
		}
		e, err := api.readShown(nil, id)
		if err != nil || e.hidden {
			continue
		}
		var c struct {
			Via       []string `json:"via"`
			Order     any      `json:"order"`
			Suggested bool     `json:"suggested"`
		}
		if json.Unmarshal(e.Content, &c) != nil || len(c.Via) == 0 || (suggestedOnly && !c.Suggested) {
			continue // no via: not a child (removed)
		}
		order, _ := c.Order.(string)
		if len(order) > 50 || strings.IndexFunc(order, func(r rune) bool { return r < 0x20 || r > 0x7e }) >= 0 {
			order = "" // not a valid order: as if none
		}
		children = append(children, spaceChild{roomID: k.StateKey, order: order, ts: e.OriginServerTS, ev: webui.ChildStateEvent{
			Content: e.Content, OriginServerTS: e.OriginServerTS, Sender: e.Sender, StateKey: k.StateKey, Type: k.Type,
		}})
	}
	slices.SortFunc(children, func(a, b spaceChild) int {
		switch {
		case a.order != "" && b.order == "":
			return -1
		case a.order == "" && b.order != "":
			return 1
		}
		return cmp.Or(strings.Compare(a.order, b.order), cmp.Compare(a.ts, b.ts), strings.Compare(a.roomID, b.roomID))
	})
	ids := make([]string, 0, len(children))
	for _, c := range children {
		out.ChildrenState = append(out.ChildrenState, c.ev)
		ids = append(ids, c.roomID)
	}
	return out, ids
}
