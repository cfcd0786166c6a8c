package client

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/parley-p2p/parley/errs"
	"github.com/parley-p2p/parley/node/dag"
	"github.com/parley-p2p/parley/node/peers"
	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/rooms"
	"github.com/parley-p2p/parley/webui"
)

// Room aliases of this node (#name:<this server>) are kept in the store
// (store/aliases.go); another server's are resolved by asking that
// server, whose node its name leads to (peers.ResolveRemoteAlias), and
// which answers only about a public or published room.
const (
	// MaxAliasesPerUser bounds the aliases one user may hold.
	MaxAliasesPerUser = 100
	// maxAliasServers bounds the servers GET /directory/room answers.
	maxAliasServers = 10
	maxAliasLength  = 255
)

// parseAlias splits a room alias into its localpart and server name; ok
// is false if it is not one: "#", a localpart without ':' or NUL, ':', a
// server name; at most 255 bytes of valid UTF-8 without spaces or
// control characters.
func parseAlias(alias string) (local, server string, ok bool) {
	if len(alias) > maxAliasLength || !strings.HasPrefix(alias, "#") || !utf8.ValidString(alias) {
		return "", "", false
	}
	if strings.IndexFunc(alias, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
		return "", "", false
	}
	local, server, found := strings.Cut(alias[1:], ":")
	if !found || local == "" || server == "" {
		return "", "", false
	}
	return local, server, true
}

// localAlias checks that alias is a well-formed alias of this node.
func (api *API) localAlias(alias string) error {
	_, server, ok := parseAlias(alias)
	if !ok {
		return errs.Invalidf("%q is not a valid room alias (#name:server)", alias)
	}
	if server != api.serverName {
		return errs.Invalidf("alias %s is not of this server (%s)", alias, api.serverName)
	}
	return nil
}

// resolveLocal returns the room a local alias points to: 400 if it is
// malformed, 404 if it is another server's or unknown.
func (api *API) resolveLocal(alias string) (string, error) {
	_, server, ok := parseAlias(alias)
	if !ok {
		return "", errs.Invalidf("%q is not a valid room alias (#name:server)", alias)
	}
	if server != api.serverName {
		return "", errs.NotFoundf("alias %s is of another server: this node resolves only its own aliases", alias)
	}
	var rec *store.AliasRecord
	err := api.store.View(func(t *store.Txn) error {
		var err error
		rec, err = t.Alias(alias)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return "", errs.NotFoundf("room alias %s does not exist", alias)
	}
	if err != nil {
		return "", err
	}
	return rec.Room, nil
}

// PutAlias implements webui.Aliases. The user must be joined to the room.
func (api *API) PutAlias(ctx context.Context, s *webui.Session, alias, roomID string) error {
	if err := api.localAlias(alias); err != nil {
		return err
	}
	r := api.peers.Room(roomID)
	if r == nil {
		return errs.NotFoundf("room %s is unknown here", roomID)
	}
	if api.peers.Membership(r, s.UserID) != "join" {
		return errs.Forbiddenf("you are not joined to room %s", roomID)
	}
	api.aliasMu.Lock()
	defer api.aliasMu.Unlock()
	return api.putAlias(alias, roomID, s.UserID)
}

// putAlias stores a new alias; the caller holds aliasMu.
func (api *API) putAlias(alias, roomID, user string) error {
	err := api.store.Update(func(t *store.Txn) error { return t.PutAlias(alias, roomID, user, MaxAliasesPerUser) })
	switch {
	case errors.Is(err, store.ErrAliasTaken):
		return &webui.Error{Status: http.StatusConflict, Code: "M_UNKNOWN", Message: "room alias " + alias + " already exists"}
	case errors.Is(err, store.ErrTooManyAliases):
		return errs.Forbiddenf("you hold %d room aliases, the most allowed", MaxAliasesPerUser)
	}
	return err
}

// ResolveAlias implements webui.Aliases: the room an alias points to and
// servers to join it through (at most 10). This node's aliases come from
// the store, with this server and the other servers with joined members;
// another server's from that server: 404 if it says it has no such
// public room, 502 if it cannot be reached.
func (api *API) ResolveAlias(ctx context.Context, alias string) (string, []string, error) {
	_, server, ok := parseAlias(alias)
	if !ok {
		return "", nil, errs.Invalidf("%q is not a valid room alias (#name:server)", alias)
	}
	if server != api.serverName {
		if !peers.ValidServerName(server) {
			return "", nil, errs.NotFoundf("alias %s is of %s, which is not a parley server", alias, server)
		}
		roomID, servers, err := api.peers.ResolveRemoteAlias(ctx, alias, server)
		if errors.Is(err, peers.ErrAliasNotFound) {
			return "", nil, errs.NotFoundf("room alias %s does not exist, or its room is not public", alias)
		}
		if err != nil {
			return "", nil, errs.Unavailablef("could not resolve %s: %v", alias, err)
		}
		return roomID, servers, nil
	}
	roomID, err := api.resolveLocal(alias)
	if err != nil {
		return "", nil, err
	}
	servers := []string{api.serverName}
	if r := api.peers.Room(roomID); r != nil {
		for _, srv := range api.peers.RoomServers(r) {
			if len(servers) == maxAliasServers {
				break
			}
			servers = append(servers, srv)
		}
	}
	return roomID, servers, nil
}

// DeleteAlias implements webui.Aliases: its creator may delete an alias,
// and so may a member with the power to send m.room.canonical_alias in
// its room.
func (api *API) DeleteAlias(ctx context.Context, s *webui.Session, alias string) error {
	if _, err := api.resolveLocal(alias); err != nil {
		return err
	}
	api.aliasMu.Lock()
	defer api.aliasMu.Unlock()
	return api.store.Update(func(t *store.Txn) error {
		rec, err := t.Alias(alias)
		if errors.Is(err, store.ErrNotFound) {
			return errs.NotFoundf("room alias %s does not exist", alias)
		}
		if err != nil {
			return err
		}
		if rec.Creator != s.UserID && !api.maySetCanonicalAlias(rec.Room, s.UserID) {
			return errs.Forbiddenf("only the alias's creator or a room moderator may delete %s", alias)
		}
		return t.DeleteAlias(alias)
	})
}

// maySetCanonicalAlias: the user is joined to the room, with the power to
// send m.room.canonical_alias there.
func (api *API) maySetCanonicalAlias(roomID, user string) bool {
	r := api.peers.Room(roomID)
	if r == nil || api.peers.Membership(r, user) != "join" {
		return false
	}
	pl, err := rooms.PowerLevelsFrom(api.dag.StateFunc(dag.WithCreate(r.Room, r.State())))
	if err != nil {
		return false
	}
	return pl.UserLevel(user) >= pl.EventLevel("m.room.canonical_alias", true)
}

// RoomAliases implements webui.Aliases, for members of the room, or
// anyone if the room is world_readable.
func (api *API) RoomAliases(ctx context.Context, s *webui.Session, roomID string) ([]string, error) {
	if !strings.HasPrefix(roomID, "!") {
		return nil, errs.Invalidf("%q is not a room ID", roomID)
	}
	r := api.peers.Room(roomID)
	if r == nil || (api.peers.Membership(r, s.UserID) != "join" && !api.worldReadable(r.Room)) {
		return nil, errs.Forbiddenf("you are not joined to room %s", roomID)
	}
	var out []string
	err := api.store.View(func(t *store.Txn) error {
		var err error
		out, err = t.RoomAliases(roomID)
		return err
	})
	return out, err
}

func errBadAlias(format string, args ...any) error {
	return webui.Errorf(http.StatusBadRequest, "M_BAD_ALIAS", format, args...)
}

// checkCanonicalAlias validates an m.room.canonical_alias a local user
// sends: alias and alt_aliases must be aliases, and those of this server
// must exist and point to the room, or be fresh: the alias createRoom
// is making for it (roomID is then "").
func (api *API) checkCanonicalAlias(roomID string, content json.RawMessage, fresh string) error {
	var c struct {
		Alias      *string   `json:"alias"`
		AltAliases *[]string `json:"alt_aliases"`
	}
	if err := json.Unmarshal(content, &c); err != nil {
		return errs.Invalidf("m.room.canonical_alias: %v", err)
	}
	var all []string
	if c.Alias != nil && *c.Alias != "" {
		all = append(all, *c.Alias)
	}
	if c.AltAliases != nil {
		all = append(all, *c.AltAliases...)
	}
	for _, alias := range all {
		_, server, ok := parseAlias(alias)
		if !ok {
			return errBadAlias("%q is not a valid room alias", alias)
		}
		if server != api.serverName || (fresh != "" && alias == fresh) {
			continue
		}
		got, err := api.resolveLocal(alias)
		if errs.KindOf(err) == errs.NotFound {
			return errBadAlias("room alias %s does not exist", alias)
		}
		if err != nil {
			return err
		}
		if got != roomID {
			return errBadAlias("room alias %s points to another room", alias)
		}
	}
	return nil
}

// reserveRoomAlias checks createRoom's room_alias_name before the room is
// made: a valid localpart, an alias not taken (400 M_ROOM_IN_USE), a user
// under the bound. It returns the alias ("" for none) and, holding
// aliasMu until the room has it, the unlock to call.
func (api *API) reserveRoomAlias(user, name string) (string, func(), error) {
	if name == "" {
		return "", func() {}, nil
	}
	alias := "#" + name + ":" + api.serverName
	if strings.Contains(name, ":") || api.localAlias(alias) != nil {
		return "", nil, errs.Invalidf("room_alias_name %q is not a valid alias localpart", name)
	}
	api.aliasMu.Lock()
	err := api.store.View(func(t *store.Txn) error {
		if _, err := t.Alias(alias); err == nil {
			return webui.Errorf(http.StatusBadRequest, "M_ROOM_IN_USE", "room alias %s already exists", alias)
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		n, err := t.UserAliases(user, MaxAliasesPerUser)
		if err == nil && n >= MaxAliasesPerUser {
			return errs.Forbiddenf("you hold %d room aliases, the most allowed", MaxAliasesPerUser)
		}
		return err
	})
	if err != nil {
		api.aliasMu.Unlock()
		return "", nil, err
	}
	return alias, api.aliasMu.Unlock, nil
}
