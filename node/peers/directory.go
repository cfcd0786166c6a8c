package peers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-p2p/parley/node/dag"
	"github.com/parley-p2p/parley/node/internal/gencache"
	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/p2p"
	"github.com/parley-p2p/parley/rooms"
)

// The public room directory across nodes. A node that lists at least one
// room announces itself in the DHT as a provider of one well-known
// rendezvous key (DirectoryKey), and renews that every
// p2p.RoomAdvertiseInterval. A node asked for the directory looks up at
// most MaxDirectoryProviders providers (within directoryFindTimeout),
// asks each at once for its list (MethodPublicRooms, room-less: at most
// MaxDirectoryEntries entries, each field bounded), keeps the entries
// that pass validPublicRoom, and caches the merged list for
// directoryCacheTTL (an empty one for a few seconds only). So one list
// holds at most MaxDirectoryProviders × MaxDirectoryEntries remote
// entries, and a client's polling costs at most one lookup per cache
// period. A room is listed only if it is published here, its join rule
// lets anyone join or knock, and a local user is joined.
//
// Room aliases of other servers are resolved by asking that server
// (MethodResolveAlias): it answers only for a room that is listed or
// public, or that the asking server is in already.

// DirectoryKey is the DHT rendezvous key under which nodes that list
// public rooms announce themselves.
const DirectoryKey = "parley/public-rooms/v1"

// Bounds of the directory.
const (
	// MaxPublishedRooms bounds the rooms one node publishes.
	MaxPublishedRooms = 1000
	// MaxDirectoryProviders bounds the nodes a directory lookup asks.
	MaxDirectoryProviders = 20
	// directoryFindTimeout bounds the DHT lookup of providers, and
	// directoryAskTimeout each provider's answer.
	directoryFindTimeout = 5 * time.Second
	directoryAskTimeout  = 5 * time.Second
	// directoryCacheTTL is how long a merged list is served before it is
	// asked for again; directoryEmptyTTL that of a list with no remote
	// entry (a directory just published is found soon).
	directoryCacheTTL = time.Minute
	directoryEmptyTTL = 5 * time.Second
	// directoryAnswerTTL is how long this node's answer to peers is
	// served before it is built again.
	directoryAnswerTTL = 5 * time.Second
	// maxDirectoryCaches bounds the lists cached: the DHT's and those of
	// single servers a client named.
	maxDirectoryCaches = 32
	// maxAliasCache bounds the remote aliases cached, aliasCacheTTL how
	// long each is.
	maxAliasCache = 256
	aliasCacheTTL = time.Minute
	// maxAliasServers bounds the servers an alias's answer names.
	maxAliasServers = 10
)

// directory is the directory's state on a node: the caches and the wake
// of the advertising loop.
type directory struct {
	kick    chan struct{}
	askMu   sync.Mutex // one lookup at a time; others wait and read its cache
	lists   *gencache.Cache[string, cachedList]
	aliases *gencache.Cache[string, cachedAlias]

	// answer is the last answer to a peer's MethodPublicRooms, served
	// again until answerUntil: peers asking in a loop cost one build of
	// the list per directoryAnswerTTL.
	answerMu    sync.Mutex
	answer      []PublicRoom
	answerUntil time.Time
}

type cachedList struct {
	rooms []RemoteRoom
	until time.Time
}

type cachedAlias struct {
	ResolveAliasResp
	until time.Time
}

// RemoteRoom is a directory entry another node listed, and the servers
// that listed it.
type RemoteRoom struct {
	PublicRoom
	Servers []string
}

func newDirectory() directory {
	return directory{
		kick:    make(chan struct{}, 1),
		lists:   gencache.New[string, cachedList](maxDirectoryCaches / 2),
		aliases: gencache.New[string, cachedAlias](maxAliasCache / 2),
	}
}

// DirectoryChanged wakes the advertising loop after a room was published.
func (ps *Peers) DirectoryChanged() {
	select {
	case ps.dir.kick <- struct{}{}:
	default:
	}
}

// advertiseDirectory announces this node as a directory provider while
// it lists a room: at a publish, and again every
// p2p.RoomAdvertiseInterval; a failed announcement is retried.
func (ps *Peers) advertiseDirectory(ctx context.Context) {
	next := time.Now() // when to announce (again)
	announced := false // and still within p2p.RoomAdvertiseInterval of it
	for {
		select {
		case <-ctx.Done():
			return
		case <-ps.dir.kick:
			if announced {
				continue
			}
		case <-time.After(time.Until(next)):
		}
		next, announced = time.Now().Add(p2p.RoomAdvertiseInterval), false
		if len(ps.LocalPublicRooms()) == 0 {
			continue // until a publish
		}
		actx, cancel := context.WithTimeout(ctx, time.Minute)
		err := ps.host.AdvertiseRendezvous(actx, DirectoryKey)
		cancel()
		if err != nil {
			ps.log.Debug("advertise the directory", "err", err)
			next = time.Now().Add(10 * time.Second)
			continue
		}
		announced = true
	}
}

// Listed reports whether this node lists a room in its directory now:
// published, joinable by anyone (or by knocking), with a local user
// joined.
func (ps *Peers) Listed(roomID string) bool {
	var published bool
	if err := ps.store.View(func(t *store.Txn) error {
		var err error
		published, err = t.Published(roomID)
		return err
	}); err != nil || !published {
		return false
	}
	r := ps.Room(roomID)
	return r != nil && ps.listable(r)
}

// listable: the room's join rule lets anyone ask in, and a local user is
// joined (so this node can let a joiner in).
func (ps *Peers) listable(r *Room) bool {
	return PublicJoinRule(ps.joinRule(r.State())) && ps.serverJoined(r, ps.serverName)
}

// PublicJoinRule reports whether a join rule lets a room be published:
// anyone may join, or knock.
func PublicJoinRule(rule string) bool {
	return rule == "public" || rule == "knock" || rule == "knock_restricted"
}

// JoinRule is the room's current join rule.
func (ps *Peers) JoinRule(r *Room) string { return ps.joinRule(r.State()) }

// LocalPublicRooms lists the rooms this node lists, built from their
// current state, largest first.
func (ps *Peers) LocalPublicRooms() []PublicRoom {
	var ids []string
	if err := ps.store.View(func(t *store.Txn) error {
		var err error
		ids, err = t.PublishedRooms(MaxPublishedRooms)
		return err
	}); err != nil {
		ps.log.Warn("read the published rooms", "err", err)
		return nil
	}
	var out []PublicRoom
	for _, id := range ids {
		r := ps.Room(id)
		if r == nil || !ps.listable(r) {
			continue
		}
		if e, ok := ps.publicRoom(r); ok {
			out = append(out, e)
		}
	}
	sortPublicRooms(out)
	return out
}

func sortPublicRooms(list []PublicRoom) {
	sort.SliceStable(list, func(a, b int) bool {
		if list[a].JoinedMembers != list[b].JoinedMembers {
			return list[a].JoinedMembers > list[b].JoinedMembers
		}
		return list[a].RoomID < list[b].RoomID
	})
}

// publicRoom builds a room's directory entry from its current state, as
// its members read it (decrypted); ok is false if it cannot be within
// the entry's bounds.
func (ps *Peers) publicRoom(r *Room) (PublicRoom, bool) {
	state := dag.WithCreate(r.Room, r.State())
	e := PublicRoom{RoomID: r.ID, JoinRule: ps.joinRule(state)}
	content := func(evType string) map[string]json.RawMessage {
		id, ok := state[rooms.StateKey{Type: evType}]
		if !ok {
			return nil
		}
		i, err := ps.dag.Event(id)
		if err != nil {
			return nil
		}
		var c map[string]json.RawMessage
		if json.Unmarshal(i.ReadContent(), &c) != nil {
			return nil
		}
		return c
	}
	str := func(c map[string]json.RawMessage, field string) string {
		var s string
		json.Unmarshal(c[field], &s)
		return s
	}
	e.Name = truncate(str(content("m.room.name"), "name"), MaxDirectoryField)
	e.Topic = truncate(str(content("m.room.topic"), "topic"), MaxDirectoryTopic)
	e.CanonicalAlias = str(content("m.room.canonical_alias"), "alias")
	e.AvatarURL = str(content("m.room.avatar"), "url")
	e.RoomType = str(content("m.room.create"), "type")
	e.WorldReadable = str(content("m.room.history_visibility"), "history_visibility") == "world_readable"
	e.GuestCanJoin = str(content("m.room.guest_access"), "guest_access") == "can_join"
	for _, id := range dag.MemberEvents(state) {
		if m, ok := ps.dag.MembershipOf(id); ok && m == "join" {
			e.JoinedMembers++
		}
	}
	// What a peer would refuse is left out, or the entry if it is the
	// room's ID or type.
	if !boundedString(e.CanonicalAlias, MaxDirectoryField) || !validAlias(e.CanonicalAlias) {
		e.CanonicalAlias = ""
	}
	if !boundedString(e.AvatarURL, MaxDirectoryField) || !strings.HasPrefix(e.AvatarURL, "mxc://") {
		e.AvatarURL = ""
	}
	return e, validPublicRoom(&e) == nil
}

// truncate cuts s to at most n bytes, at a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// boundedString: valid UTF-8 of at most n bytes.
func boundedString(s string, n int) bool { return len(s) <= n && utf8.ValidString(s) }

// validAlias: "" or #local:server, without spaces or control characters.
func validAlias(a string) bool {
	if a == "" {
		return true
	}
	local, server, ok := strings.Cut(strings.TrimPrefix(a, "#"), ":")
	return strings.HasPrefix(a, "#") && ok && local != "" && server != "" &&
		strings.IndexFunc(a, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) < 0
}

// ValidRoomID: "!" then at most 254 bytes of printable UTF-8 without
// spaces.
func ValidRoomID(id string) bool {
	return len(id) > 1 && id[0] == '!' && boundedString(id, MaxRoomIDLength) &&
		strings.IndexFunc(id, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) < 0
}

// validPublicRoom checks an entry against the directory's bounds: a
// well-formed room ID, bounded strings, a known join rule that lets a
// room be listed, a sane member count.
func validPublicRoom(e *PublicRoom) error {
	switch {
	case !ValidRoomID(e.RoomID):
		return errors.New("bad room ID")
	case !boundedString(e.Name, MaxDirectoryField), !boundedString(e.Topic, MaxDirectoryTopic),
		!boundedString(e.RoomType, MaxDirectoryField):
		return errors.New("a string over its bound")
	case !boundedString(e.CanonicalAlias, MaxDirectoryField) || !validAlias(e.CanonicalAlias):
		return errors.New("bad canonical alias")
	case !boundedString(e.AvatarURL, MaxDirectoryField) || e.AvatarURL != "" && !strings.HasPrefix(e.AvatarURL, "mxc://"):
		return errors.New("bad avatar URL")
	case !PublicJoinRule(e.JoinRule):
		return fmt.Errorf("join rule %q", e.JoinRule)
	case e.JoinedMembers < 0 || e.JoinedMembers > MaxDirectoryMembers:
		return fmt.Errorf("%d joined members", e.JoinedMembers)
	}
	return nil
}

// parseDirectoryAnswer decodes and checks a peer's MethodPublicRooms
// answer: an answer over the bounds, or that is not the protocol's, is
// refused whole; an entry that does not pass validPublicRoom is left out.
func parseDirectoryAnswer(raw []byte) ([]PublicRoom, error) {
	var resp PublicRoomsResp
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&resp); err != nil {
		return nil, fmt.Errorf("directory answer: %w", err)
	}
	if len(resp.Rooms) > MaxDirectoryEntries {
		return nil, fmt.Errorf("directory answer of %d rooms, over %d", len(resp.Rooms), MaxDirectoryEntries)
	}
	out := make([]PublicRoom, 0, len(resp.Rooms))
	seen := map[string]bool{}
	for _, e := range resp.Rooms {
		if validPublicRoom(&e) != nil || seen[e.RoomID] {
			continue
		}
		seen[e.RoomID] = true
		out = append(out, e)
	}
	return out, nil
}

// onPublicRooms answers another node's directory request: the rooms this
// node lists, at most MaxDirectoryEntries of them, largest first.
func (ps *Peers) onPublicRooms(body []byte) (any, error) {
	var req PublicRoomsReq
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	ps.dir.answerMu.Lock()
	defer ps.dir.answerMu.Unlock()
	if time.Now().After(ps.dir.answerUntil) {
		list := ps.LocalPublicRooms()
		if len(list) > MaxDirectoryEntries {
			list = list[:MaxDirectoryEntries]
		}
		ps.dir.answer, ps.dir.answerUntil = list, time.Now().Add(directoryAnswerTTL)
	}
	return PublicRoomsResp{Rooms: ps.dir.answer}, nil
}

// RemotePublicRooms lists the rooms other nodes list: one server's if
// server is set, else those of the providers the DHT finds. Served from
// the cache while it is fresh.
func (ps *Peers) RemotePublicRooms(ctx context.Context, server string) ([]RemoteRoom, error) {
	if c, ok := ps.dir.lists.Get(server); ok && time.Now().Before(c.until) {
		return c.rooms, nil
	}
	ps.dir.askMu.Lock()
	defer ps.dir.askMu.Unlock()
	if c, ok := ps.dir.lists.Get(server); ok && time.Now().Before(c.until) {
		return c.rooms, nil // a lookup that ran while this one waited
	}
	var peers []peer.ID
	if server != "" {
		p, err := peerOf(server)
		if err != nil {
			return nil, err
		}
		peers = []peer.ID{p}
	} else {
		fctx, cancel := context.WithTimeout(ctx, directoryFindTimeout)
		found, err := ps.host.FindRendezvous(fctx, DirectoryKey, MaxDirectoryProviders)
		cancel()
		if err != nil {
			ps.log.Debug("find directory providers", "err", err)
		}
		peers = found
	}
	answers := make([][]PublicRoom, len(peers))
	errs := make([]error, len(peers))
	var wg sync.WaitGroup
	for k, p := range peers {
		wg.Go(func() {
			answers[k], errs[k] = ps.askDirectory(ctx, p)
		})
	}
	wg.Wait()
	if server != "" && errs[0] != nil {
		return nil, errs[0]
	}
	var out []RemoteRoom
	index := map[string]int{}
	for k, list := range answers {
		from, err := p2p.ServerNameFromPeerID(peers[k])
		if err != nil {
			continue
		}
		if errs[k] != nil {
			ps.log.Debug("directory answer ignored", "peer", shortPeer(peers[k]), "err", errs[k])
			continue
		}
		for _, e := range list {
			if j, ok := index[e.RoomID]; ok {
				// Listed by several of its members: the largest count,
				// every server to join through.
				if e.JoinedMembers > out[j].JoinedMembers {
					out[j].PublicRoom = e
				}
				out[j].Servers = append(out[j].Servers, from)
				continue
			}
			index[e.RoomID] = len(out)
			out = append(out, RemoteRoom{PublicRoom: e, Servers: []string{from}})
		}
	}
	ttl := directoryCacheTTL
	if len(out) == 0 {
		ttl = directoryEmptyTTL
	}
	ps.dir.lists.Put(server, cachedList{rooms: out, until: time.Now().Add(ttl)})
	return out, nil
}

// askDirectory asks one node for its list.
func (ps *Peers) askDirectory(ctx context.Context, p peer.ID) ([]PublicRoom, error) {
	ctx, cancel := context.WithTimeout(ctx, directoryAskTimeout)
	defer cancel()
	raw, err := ps.host.Request(ctx, p, MethodPublicRooms, []byte("{}"))
	if err != nil {
		return nil, err
	}
	return parseDirectoryAnswer(raw)
}

// DirectoryServers lists the servers that listed a room in a directory
// answer still cached: servers to join it through.
func (ps *Peers) DirectoryServers(roomID string) []string {
	var out []string
	if c, ok := ps.dir.lists.Get(""); ok {
		for _, e := range c.rooms {
			if e.RoomID == roomID {
				out = append(out, e.Servers...)
			}
		}
	}
	return out
}

// onResolveAlias answers another server's question about an alias of
// this node: the room and the servers in it, if the room is listed or
// public, or the asking server is in it; else not found, whether the
// alias exists or not.
func (ps *Peers) onResolveAlias(server string, body []byte) (any, error) {
	var req ResolveAliasReq
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	notFound := remoteErr("M_NOT_FOUND", "no public room has the alias %q here", truncate(req.Alias, MaxDirectoryField))
	if _, srv, ok := strings.Cut(req.Alias, ":"); !ok || srv != ps.serverName || !validAlias(req.Alias) {
		return nil, notFound
	}
	var rec *store.AliasRecord
	if err := ps.store.View(func(t *store.Txn) error {
		var err error
		rec, err = t.Alias(req.Alias)
		return err
	}); err != nil {
		return nil, notFound
	}
	r := ps.Room(rec.Room)
	if r == nil || !ps.serverJoined(r, ps.serverName) {
		return nil, notFound
	}
	if ps.joinRule(r.State()) != "public" && !ps.Listed(r.ID) && !ps.serverInRoom(r.State(), server) {
		return nil, notFound
	}
	return ResolveAliasResp{RoomID: r.ID, Servers: ps.aliasServers(r)}, nil
}

// aliasServers: this server, then others with users joined, at most
// maxAliasServers.
func (ps *Peers) aliasServers(r *Room) []string {
	out := []string{ps.serverName}
	for _, s := range ps.RoomServers(r) {
		if len(out) == maxAliasServers {
			break
		}
		out = append(out, s)
	}
	return out
}

// ErrAliasNotFound: the alias's server says it has no such alias (or
// none it tells this server of).
var ErrAliasNotFound = errors.New("peers: alias not found")

// ResolveRemoteAlias asks the alias's server where it points: the room
// and servers to join it through (the alias's server first). Answers are
// cached a minute.
func (ps *Peers) ResolveRemoteAlias(ctx context.Context, alias, server string) (string, []string, error) {
	if c, ok := ps.dir.aliases.Get(alias); ok && time.Now().Before(c.until) {
		return c.RoomID, slices.Clone(c.Servers), nil
	}
	p, err := peerOf(server)
	if err != nil {
		return "", nil, ErrAliasNotFound
	}
	ctx, cancel := context.WithTimeout(ctx, directoryAskTimeout)
	defer cancel()
	raw, err := ps.host.Request(ctx, p, MethodResolveAlias, mustJSON(ResolveAliasReq{Alias: alias}))
	var re *p2p.RemoteError
	if errors.As(err, &re) && re.Code == "M_NOT_FOUND" {
		return "", nil, ErrAliasNotFound
	}
	if err != nil {
		return "", nil, fmt.Errorf("resolve %s at %s: %w", alias, shortPeer(p), err)
	}
	resp, err := parseAliasAnswer(raw, server)
	if err != nil {
		return "", nil, fmt.Errorf("resolve %s at %s: %w", alias, shortPeer(p), err)
	}
	ps.dir.aliases.Put(alias, cachedAlias{ResolveAliasResp: resp, until: time.Now().Add(aliasCacheTTL)})
	return resp.RoomID, slices.Clone(resp.Servers), nil
}

// parseAliasAnswer decodes and checks a MethodResolveAlias answer from
// server: a well-formed room ID, and at most maxAliasServers parley
// server names (others are left out), the answering server first.
func parseAliasAnswer(raw []byte, server string) (ResolveAliasResp, error) {
	var resp ResolveAliasResp
	if err := json.Unmarshal(raw, &resp); err != nil {
		return ResolveAliasResp{}, fmt.Errorf("alias answer: %w", err)
	}
	if !ValidRoomID(resp.RoomID) {
		return ResolveAliasResp{}, errors.New("alias answer: bad room ID")
	}
	if len(resp.Servers) > maxAliasServers {
		return ResolveAliasResp{}, fmt.Errorf("alias answer: %d servers, over %d", len(resp.Servers), maxAliasServers)
	}
	servers := []string{server}
	for _, s := range resp.Servers {
		if ValidServerName(s) && !slices.Contains(servers, s) {
			servers = append(servers, s)
		}
	}
	resp.Servers = servers
	return resp, nil
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only for types that cannot marshal
	}
	return b
}
