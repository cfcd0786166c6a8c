package node

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"net/http"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/parley-p2p/parley/internal/testkit"
	"github.com/parley-p2p/parley/node/peers"
	"github.com/parley-p2p/parley/p2p"
)

// putDirVisibility is PUT /directory/list/room/{roomId}.
func putDirVisibility(ctx context.Context, c *mautrix.Client, room id.RoomID, body any) error {
	_, err := c.MakeRequest(ctx, http.MethodPut, c.BuildClientURL("v3", "directory", "list", "room", room), body, nil)
	return err
}

// dirVisibility is GET /directory/list/room/{roomId}.
func dirVisibility(ctx context.Context, c *mautrix.Client, room id.RoomID) (string, error) {
	var resp struct {
		Visibility string `json:"visibility"`
	}
	_, err := c.MakeRequest(ctx, http.MethodGet, c.BuildClientURL("v3", "directory", "list", "room", room), nil, &resp)
	return resp.Visibility, err
}

// postPublicRooms is POST /publicRooms (mautrix has only the GET).
func postPublicRooms(ctx context.Context, c *mautrix.Client, server string, body any) (*mautrix.RespPublicRooms, error) {
	q := map[string]string{}
	if server != "" {
		q["server"] = server
	}
	var resp mautrix.RespPublicRooms
	_, err := c.MakeRequest(ctx, http.MethodPost, c.BuildURLWithQuery(mautrix.ClientURLPath{"v3", "publicRooms"}, q), body, &resp)
	return &resp, err
}

func entryOf(resp *mautrix.RespPublicRooms, room id.RoomID) *mautrix.PublicRoomInfo {
	if resp == nil {
		return nil
	}
	for _, e := range resp.Chunk {
		if e.RoomID == room {
			return e
		}
	}
	return nil
}

// TestAPublicRoomIsFoundAndJoinedFromAnotherNode: alice publishes a
// public room with an alias; bob, on a node that knows alice's only
// through a DHT bootstrap node, finds it in his /publicRooms with its
// name, topic and member count, resolves its alias at alice's server and
// joins by it. A node that answers the directory request with garbage is
// ignored; the alias of a room that is not public resolves to nothing.
func TestAPublicRoomIsFoundAndJoinedFromAnotherNode(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	x := newTestNode(t, testOpts{})
	var garbageServed atomic.Int64
	garbage := func(next p2p.Handler) p2p.Handler {
		return func(ctx context.Context, from peer.ID, method string, body []byte) ([]byte, error) {
			if method == peers.MethodPublicRooms {
				garbageServed.Add(1)
				return []byte(`{"rooms":[{"room_id":"not a room","join_rule":"public"}],"junk":"\u0000"}`), nil
			}
			return next(ctx, from, method, body)
		}
	}
	a := newTestNode(t, testOpts{bootstrap: []*testNode{x}})
	b := newTestNode(t, testOpts{bootstrap: []*testNode{x}})
	c := newTestNode(t, testOpts{bootstrap: []*testNode{x}, wrap: garbage})
	alice, bob, carol := a.register(ctx, "alice"), b.register(ctx, "bob"), c.register(ctx, "carol")

	created, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{
		Preset: "public_chat", Name: "Lobby", Topic: "Talk about parley", RoomAliasName: "lobby",
	})
	if err != nil {
		t.Fatal(err)
	}
	room, lobby := created.RoomID, localAlias(a, "lobby")
	if err := putDirVisibility(ctx, alice, room, map[string]string{"visibility": "public"}); err != nil {
		t.Fatalf("alice publishes the room: %v", err)
	}
	if v, err := dirVisibility(ctx, alice, room); err != nil || v != "public" {
		t.Fatalf("the room's visibility: %q, %v; want public", v, err)
	}
	// A second public room, which bob joins by its room ID alone, as a
	// client picking it from the directory does.
	lounge, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Lounge", Visibility: "public"})
	if err != nil {
		t.Fatal(err)
	}
	carols, err := carol.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Carol's", Visibility: "public"})
	if err != nil {
		t.Fatal(err)
	}
	secret, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", RoomAliasName: "secret"})
	if err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, time.Minute, "a and c to be directory providers in the DHT", func() bool {
		found, err := x.Host().FindRendezvous(ctx, peers.DirectoryKey, 10)
		return err == nil && slices.Contains(found, a.PeerID()) && slices.Contains(found, c.PeerID())
	})

	var entry *mautrix.PublicRoomInfo
	var list *mautrix.RespPublicRooms
	testkit.WaitFor(t, time.Minute, "bob to find alice's room in his directory", func() bool {
		list, err = bob.PublicRooms(ctx, &mautrix.ReqPublicRooms{})
		entry = entryOf(list, room)
		return err == nil && entry != nil && entryOf(list, lounge.RoomID) != nil
	})
	if entry.Name != "Lobby" || entry.Topic != "Talk about parley" || entry.CanonicalAlias != lobby ||
		entry.NumJoinedMembers != 1 || entry.JoinRule != "public" || entry.WorldReadable {
		t.Fatalf("bob's entry for alice's room: %+v", entry)
	}
	if via := b.peers.DirectoryServers(room.String()); !slices.Equal(via, []string{a.ServerName()}) {
		t.Fatalf("servers to join alice's room through, from bob's directory: %v; want [a]", via)
	}
	if garbageServed.Load() == 0 {
		t.Fatal("c was never asked for its directory")
	}
	if e := entryOf(list, carols.RoomID); e != nil || len(list.Chunk) != 2 {
		t.Fatalf("bob's directory holds %d rooms (carol's: %+v); want alice's two only: c's answer is garbage", len(list.Chunk), e)
	}
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	nowhere := hex.EncodeToString(pub) // a server name no node has
	t.Run("one server's directory", func(t *testing.T) {
		got, err := bob.PublicRooms(ctx, &mautrix.ReqPublicRooms{Server: a.ServerName()})
		if err != nil || entryOf(got, room) == nil || len(got.Chunk) != 2 {
			t.Fatalf("a's directory: %+v, %v; want alice's room", got, err)
		}
		_, err = bob.PublicRooms(ctx, &mautrix.ReqPublicRooms{Server: c.ServerName()})
		wantErr(t, "c's directory, which is garbage", err, http.StatusBadGateway, "M_UNKNOWN")
		_, err = bob.PublicRooms(ctx, &mautrix.ReqPublicRooms{Server: "elsewhere.example"})
		wantErr(t, "the directory of a server that is not a parley server", err, http.StatusBadRequest, "M_INVALID_PARAM")
		_, err = bob.PublicRooms(ctx, &mautrix.ReqPublicRooms{Server: nowhere})
		wantErr(t, "the directory of a server no node answers for", err, http.StatusBadGateway, "M_UNKNOWN")
		_, err = bob.ResolveAlias(ctx, id.RoomAlias("#lobby:"+nowhere))
		wantErr(t, "an alias of a server no node answers for", err, http.StatusBadGateway, "M_UNKNOWN")
	})
	t.Run("the alias of a room that is not public resolves to nothing", func(t *testing.T) {
		_, err := bob.ResolveAlias(ctx, localAlias(a, "secret"))
		wantErr(t, "resolve alice's private room's alias", err, http.StatusNotFound, "M_NOT_FOUND")
		_, err = bob.ResolveAlias(ctx, localAlias(a, "nothing-here"))
		wantErr(t, "resolve an alias alice's server does not have", err, http.StatusNotFound, "M_NOT_FOUND")
		_, err = bob.JoinRoom(ctx, string(localAlias(a, "secret")), nil)
		wantErr(t, "join alice's private room by its alias", err, http.StatusNotFound, "M_NOT_FOUND")
	})

	got, err := bob.ResolveAlias(ctx, lobby)
	if err != nil || got.RoomID != room || len(got.Servers) == 0 || got.Servers[0] != a.ServerName() {
		t.Fatalf("bob resolves %s: %+v, %v; want %s through %s", lobby, got, err, room, a.ServerName())
	}
	if _, err := alice.SendText(ctx, room, "welcome, whoever finds this"); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.JoinRoom(ctx, string(lobby), nil); err != nil {
		t.Fatalf("bob joins %s by its alias: %v", lobby, err)
	}
	hasAll(t, ctx, bob, room, []string{"welcome, whoever finds this"}, 30*time.Second)
	if _, err := bob.JoinRoom(ctx, lounge.RoomID.String(), nil); err != nil {
		t.Fatalf("bob joins the lounge, found in his directory, by its room ID alone: %v", err)
	}
	testkit.WaitFor(t, 30*time.Second, "alice's directory to count bob", func() bool {
		got, err := alice.PublicRooms(ctx, &mautrix.ReqPublicRooms{Server: a.ServerName()})
		e := entryOf(got, room)
		return err == nil && e != nil && e.NumJoinedMembers == 2
	})

	t.Run("a member's server resolves the alias of a room that is not public", func(t *testing.T) {
		joinThrough(t, ctx, secret.RoomID, alice, bob)
		testkit.WaitFor(t, 30*time.Second, "bob's join to reach a", func() bool {
			return a.membership(a.getRoom(secret.RoomID.String()), bob.UserID.String()) == "join"
		})
		got, err := bob.ResolveAlias(ctx, localAlias(a, "secret"))
		if err != nil || got.RoomID != secret.RoomID {
			t.Fatalf("bob, now a member, resolves alice's private room's alias: %+v, %v", got, err)
		}
	})
}

// TestPublishingAndListingOnOneNode: who may publish which room, the
// documented errors, what stops a room being listed, and the paging and
// filters of /publicRooms.
func TestPublishingAndListingOnOneNode(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a := newTestNode(t, testOpts{regToken: "let-me-in"})
	alice, carol := a.register(ctx, "alice"), a.register(ctx, "carol")
	own := a.ServerName()
	create := func(req *mautrix.ReqCreateRoom) id.RoomID {
		t.Helper()
		resp, err := alice.CreateRoom(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return resp.RoomID
	}
	lobby := create(&mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Lobby", Topic: "Chat about anything"})
	garden := create(&mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Garden", Visibility: "public"})
	space := create(&mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Space", Visibility: "public",
		CreationContent: map[string]any{"type": "m.space"}})
	private := create(&mautrix.ReqCreateRoom{Preset: "private_chat", Name: "Private"})
	list := func(t *testing.T, req *mautrix.ReqPublicRooms) *mautrix.RespPublicRooms {
		t.Helper()
		if req.Server == "" {
			req.Server = own
		}
		resp, err := alice.PublicRooms(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	ids := func(resp *mautrix.RespPublicRooms) []id.RoomID {
		var out []id.RoomID
		for _, e := range resp.Chunk {
			out = append(out, e.RoomID)
		}
		slices.Sort(out)
		return out
	}
	sorted := func(rs ...id.RoomID) []id.RoomID { slices.Sort(rs); return rs }

	t.Run("createRoom with visibility public publishes the room", func(t *testing.T) {
		if got := ids(list(t, &mautrix.ReqPublicRooms{})); !slices.Equal(got, sorted(garden, space)) {
			t.Fatalf("listed %v; want garden and space", got)
		}
		if v, err := dirVisibility(ctx, alice, lobby); err != nil || v != "private" {
			t.Fatalf("the lobby's visibility before publishing: %q, %v", v, err)
		}
	})
	t.Run("the errors of publishing", func(t *testing.T) {
		err := putDirVisibility(ctx, alice, private, map[string]string{"visibility": "public"})
		wantErr(t, "publish a private room", err, http.StatusForbidden, "M_FORBIDDEN")
		err = putDirVisibility(ctx, carol, lobby, map[string]string{"visibility": "public"})
		wantErr(t, "a non-member publishes the lobby", err, http.StatusForbidden, "M_FORBIDDEN")
		err = putDirVisibility(ctx, alice, lobby, map[string]string{"visibility": "everyone"})
		wantErr(t, "an unknown visibility", err, http.StatusBadRequest, "M_INVALID_PARAM")
		err = putDirVisibility(ctx, alice, lobby, map[string]any{"visibility": 1})
		wantErr(t, "a visibility that is not a string", err, http.StatusBadRequest, "M_BAD_JSON")
		err = putDirVisibility(ctx, alice, "!nowhere", map[string]string{"visibility": "public"})
		wantErr(t, "publish an unknown room", err, http.StatusNotFound, "M_NOT_FOUND")
		_, err = dirVisibility(ctx, alice, "!nowhere")
		wantErr(t, "the visibility of an unknown room", err, http.StatusNotFound, "M_NOT_FOUND")
		if v, _ := dirVisibility(ctx, alice, private); v != "private" {
			t.Fatalf("the private room's visibility: %q", v)
		}
	})
	if err := putDirVisibility(ctx, alice, lobby, map[string]string{}); err != nil {
		t.Fatalf("publish the lobby (visibility defaults to public): %v", err)
	}
	if v, err := dirVisibility(ctx, alice, lobby); err != nil || v != "public" {
		t.Fatalf("the lobby's visibility: %q, %v", v, err)
	}
	t.Run("pages follow since and limit", func(t *testing.T) {
		first := list(t, &mautrix.ReqPublicRooms{Limit: 2})
		if len(first.Chunk) != 2 || first.NextBatch == "" || first.PrevBatch != "" || first.TotalRoomCountEstimate != 3 {
			t.Fatalf("the first page: %+v", first)
		}
		second := list(t, &mautrix.ReqPublicRooms{Limit: 2, Since: first.NextBatch})
		if len(second.Chunk) != 1 || second.NextBatch != "" || second.PrevBatch == "" {
			t.Fatalf("the second page: %+v", second)
		}
		all := append(ids(first), ids(second)...)
		slices.Sort(all)
		if !slices.Equal(all, sorted(lobby, garden, space)) {
			t.Fatalf("the two pages hold %v", all)
		}
	})
	t.Run("bad limits and since are 400", func(t *testing.T) {
		for _, q := range []string{"limit=-1", "limit=many", "since=nonsense", "since=o-3"} {
			_, err := alice.MakeRequest(ctx, http.MethodGet, alice.BuildClientURL("v3", "publicRooms")+"?server="+own+"&"+q, nil, nil)
			wantErr(t, "GET /publicRooms?"+q, err, http.StatusBadRequest, "M_INVALID_PARAM")
		}
		_, err := postPublicRooms(ctx, alice, own, map[string]any{"limit": -1})
		wantErr(t, "POST a negative limit", err, http.StatusBadRequest, "M_INVALID_PARAM")
		_, err = postPublicRooms(ctx, alice, own, map[string]any{"limit": "ten"})
		wantErr(t, "POST a limit that is not a number", err, http.StatusBadRequest, "M_BAD_JSON")
		_, err = postPublicRooms(ctx, alice, own, map[string]any{"include_all_networks": true, "third_party_instance_id": "irc"})
		wantErr(t, "POST both include_all_networks and a network", err, http.StatusBadRequest, "M_INVALID_PARAM")
	})
	t.Run("filters select by search term and room type", func(t *testing.T) {
		got, err := postPublicRooms(ctx, alice, own, map[string]any{"filter": map[string]any{"generic_search_term": "ANYTHING"}})
		if err != nil || !slices.Equal(ids(got), []id.RoomID{lobby}) {
			t.Fatalf("search for the lobby's topic: %+v, %v", got, err)
		}
		got, err = postPublicRooms(ctx, alice, own, map[string]any{"filter": map[string]any{"room_types": []any{"m.space"}}})
		if err != nil || !slices.Equal(ids(got), []id.RoomID{space}) || got.Chunk[0].RoomType != "m.space" {
			t.Fatalf("spaces only: %+v, %v", got, err)
		}
		got, err = postPublicRooms(ctx, alice, own, map[string]any{"filter": map[string]any{"room_types": []any{nil}}})
		if err != nil || !slices.Equal(ids(got), sorted(lobby, garden)) {
			t.Fatalf("rooms without a type: %+v, %v", got, err)
		}
		got, err = postPublicRooms(ctx, alice, own, map[string]any{"third_party_instance_id": "irc"})
		if err != nil || len(got.Chunk) != 0 {
			t.Fatalf("a third-party network: %+v, %v", got, err)
		}
	})
	t.Run("a room stops being listed when unpublished, no longer public, or left", func(t *testing.T) {
		if err := putDirVisibility(ctx, alice, space, map[string]string{"visibility": "private"}); err != nil {
			t.Fatal(err)
		}
		if _, err := alice.SendStateEvent(ctx, garden, event.StateJoinRules, "", &event.JoinRulesEventContent{JoinRule: event.JoinRuleInvite}); err != nil {
			t.Fatal(err)
		}
		if v, _ := dirVisibility(ctx, alice, garden); v != "private" {
			t.Fatalf("the garden, now invite-only, is %q", v)
		}
		if got := ids(list(t, &mautrix.ReqPublicRooms{})); !slices.Equal(got, []id.RoomID{lobby}) {
			t.Fatalf("listed %v; want the lobby only", got)
		}
		if _, err := alice.LeaveRoom(ctx, lobby); err != nil {
			t.Fatal(err)
		}
		if got := list(t, &mautrix.ReqPublicRooms{}); len(got.Chunk) != 0 {
			t.Fatalf("listed %v after every local user left", ids(got))
		}
	})
	t.Run("a node alone lists its own rooms without a server named", func(t *testing.T) {
		resp, err := carol.PublicRooms(ctx, &mautrix.ReqPublicRooms{})
		if err != nil || len(resp.Chunk) != 0 {
			t.Fatalf("the directory: %+v, %v", resp, err)
		}
	})
}
