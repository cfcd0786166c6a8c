package client

import (
	"context"
	"errors"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/parley-p2p/parley/errs"
	"github.com/parley-p2p/parley/node/peers"
	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/webui"
)

// The public room directory: the rooms this node publishes (a record in
// the store per room; what is shown of a room is read from its current
// state when asked, by peers.LocalPublicRooms) and, found through the
// DHT, those other nodes publish (peers/directory.go says how they are
// found and bounded). A room is listed while it is published, anyone may
// join it or knock, and a local user is joined.

// Bounds of a /publicRooms page.
const (
	defaultDirectoryLimit = 100
	maxDirectoryLimit     = 500
)

// RoomVisibility implements webui.Directory.
func (api *API) RoomVisibility(ctx context.Context, roomID string) (string, error) {
	if api.peers.Room(roomID) == nil {
		return "", errs.NotFoundf("room %s is unknown here", roomID)
	}
	if api.peers.Listed(roomID) {
		return "public", nil
	}
	return "private", nil
}

// SetRoomVisibility implements webui.Directory: a joined member with the
// power to send m.room.canonical_alias may publish a room anyone may join
// (or knock on), or take it out.
func (api *API) SetRoomVisibility(ctx context.Context, s *webui.Session, roomID, visibility string) error {
	r := api.peers.Room(roomID)
	if r == nil {
		return errs.NotFoundf("room %s is unknown here", roomID)
	}
	if !api.maySetCanonicalAlias(roomID, s.UserID) {
		return errs.Forbiddenf("only a joined member with the power to send m.room.canonical_alias may change whether %s is published", roomID)
	}
	if visibility != "public" {
		return api.store.Update(func(t *store.Txn) error { return t.DeletePublished(roomID) })
	}
	if rule := api.peers.JoinRule(r); !peers.PublicJoinRule(rule) {
		return errs.Forbiddenf("room %s has join rule %q: only a room anyone may join or knock on can be published, as publishing tells the whole network it exists", roomID, rule)
	}
	err := api.store.Update(func(t *store.Txn) error { return t.PutPublished(roomID, peers.MaxPublishedRooms) })
	if errors.Is(err, store.ErrTooManyPublished) {
		return errs.Forbiddenf("this node publishes %d rooms, the most allowed", peers.MaxPublishedRooms)
	}
	if err != nil {
		return err
	}
	api.peers.DirectoryChanged()
	return nil
}

// PublicRooms implements webui.Directory: one page of the rooms listed
// here and, unless the query names a server, of those other nodes list;
// largest first. since is an offset in that order ("o<n>").
func (api *API) PublicRooms(ctx context.Context, q webui.PublicRoomsQuery) (*webui.PublicRoomsPage, error) {
	offset := 0
	if q.Since != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(q.Since, "o"))
		if err != nil || n < 0 || !strings.HasPrefix(q.Since, "o") {
			return nil, errs.Invalidf("since %q is not a token this node gave", q.Since)
		}
		offset = n
	}
	limit := q.Limit
	if limit == 0 {
		limit = defaultDirectoryLimit
	}
	limit = min(limit, maxDirectoryLimit)
	if q.ThirdPartyInstanceID != "" {
		return &webui.PublicRoomsPage{}, nil // this node bridges no network
	}
	var list []webui.PublicRoomEntry
	seen := map[string]bool{}
	add := func(e peers.PublicRoom) {
		if !seen[e.RoomID] {
			seen[e.RoomID] = true
			list = append(list, webui.PublicRoomEntry(e))
		}
	}
	if q.Server == "" || q.Server == api.serverName {
		for _, e := range api.peers.LocalPublicRooms() {
			add(e)
		}
	}
	if q.Server != api.serverName {
		if q.Server != "" && !peers.ValidServerName(q.Server) {
			return nil, errs.Invalidf("server %q is not a parley server name", q.Server)
		}
		remote, err := api.peers.RemotePublicRooms(ctx, q.Server)
		if err != nil {
			return nil, errs.Unavailablef("could not read the directory of %s: %v", q.Server, err)
		}
		for _, e := range remote {
			add(e.PublicRoom)
		}
	}
	list = slices.DeleteFunc(list, func(e webui.PublicRoomEntry) bool { return !matches(e, q) })
	sort.SliceStable(list, func(a, b int) bool {
		if list[a].JoinedMembers != list[b].JoinedMembers {
			return list[a].JoinedMembers > list[b].JoinedMembers
		}
		return list[a].RoomID < list[b].RoomID
	})
	page := &webui.PublicRoomsPage{Total: len(list)}
	if offset < len(list) {
		page.Chunk = list[offset:min(offset+limit, len(list))]
	}
	if offset+limit < len(list) {
		page.NextBatch = "o" + strconv.Itoa(offset+limit)
	}
	if offset > 0 {
		page.PrevBatch = "o" + strconv.Itoa(max(0, offset-limit))
	}
	return page, nil
}

// matches applies a /publicRooms filter: the search term, without regard
// to case, in the room's name, topic or canonical alias; the room's type
// among those asked for (a nil type: rooms without one).
func matches(e webui.PublicRoomEntry, q webui.PublicRoomsQuery) bool {
	if term := strings.ToLower(q.SearchTerm); term != "" {
		if !strings.Contains(strings.ToLower(e.Name), term) && !strings.Contains(strings.ToLower(e.Topic), term) &&
			!strings.Contains(strings.ToLower(e.CanonicalAlias), term) {
			return false
		}
	}
	if !q.FilterRoomTypes {
		return true
	}
	for _, t := range q.RoomTypes {
		if t == nil && e.RoomType == "" || t != nil && *t == e.RoomType {
			return true
		}
	}
	return false
}

// publishCreated publishes a room createRoom made with visibility
// "public", if its join rule lets it be (a room created private stays
// out, and the room is made all the same).
func (api *API) publishCreated(r *peers.Room) {
	if !peers.PublicJoinRule(api.peers.JoinRule(r)) {
		api.log.Info("a room created with visibility public is not published: its join rule is not public", "room", r.ID)
		return
	}
	err := api.store.Update(func(t *store.Txn) error { return t.PutPublished(r.ID, peers.MaxPublishedRooms) })
	if err != nil {
		api.log.Warn("publish a new room", "room", r.ID, "err", err)
		return
	}
	api.peers.DirectoryChanged()
}
