package node

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/parley-p2p/parley/internal/testkit"
)

// localAlias is #name on node n.
func localAlias(n *testNode, name string) id.RoomAlias {
	return id.RoomAlias("#" + name + ":" + n.ServerName())
}

// TestLocalAliases: a member points an alias of the node at a room;
// anyone resolves it, a user joins by it, the creator or a moderator
// deletes it; each documented error in its place.
func TestLocalAliases(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a := newTestNode(t, testOpts{regToken: "let-me-in"})
	alice := a.register(ctx, "alice")
	carol := a.register(ctx, "carol")
	created, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	room := created.RoomID
	lobby := localAlias(a, "lobby")

	if _, err := alice.CreateAlias(ctx, lobby, room); err != nil {
		t.Fatalf("alice creates %s: %v", lobby, err)
	}
	got, err := carol.ResolveAlias(ctx, lobby)
	if err != nil || got.RoomID != room || !slices.Equal(got.Servers, []string{a.ServerName()}) {
		t.Fatalf("resolve %s: %+v, %v; want %s on [%s]", lobby, got, err, room, a.ServerName())
	}
	list, err := alice.GetAliases(ctx, room)
	if err != nil || !slices.Equal(list.Aliases, []id.RoomAlias{lobby}) {
		t.Fatalf("the room's aliases: %+v, %v; want [%s]", list, err, lobby)
	}

	t.Run("an alias taken is 409", func(t *testing.T) {
		_, err := alice.CreateAlias(ctx, lobby, room)
		wantErr(t, "create it again", err, http.StatusConflict, "M_UNKNOWN")
	})
	t.Run("a malformed alias or another server's is 400", func(t *testing.T) {
		for _, bad := range []id.RoomAlias{"#nocolon", "lobby:" + id.RoomAlias(a.ServerName()), "#:" + id.RoomAlias(a.ServerName()), "#has space:" + id.RoomAlias(a.ServerName()), "#lobby:elsewhere.example"} {
			_, err := alice.CreateAlias(ctx, bad, room)
			wantErr(t, fmt.Sprintf("create %q", bad), err, http.StatusBadRequest, "M_INVALID_PARAM")
		}
		_, err := alice.MakeRequest(ctx, http.MethodPut, alice.BuildClientURL("v3", "directory", "room", localAlias(a, "noroom")), map[string]any{}, nil)
		wantErr(t, "create an alias without room_id", err, http.StatusBadRequest, "M_MISSING_PARAM")
		_, err = alice.CreateAlias(ctx, localAlias(a, "unknown-room"), "!nowhere:"+id.RoomID(a.ServerName()))
		wantErr(t, "create an alias of a room unknown here", err, http.StatusNotFound, "M_NOT_FOUND")
		_, err = alice.ResolveAlias(ctx, "#nocolon")
		wantErr(t, "resolve a malformed alias", err, http.StatusBadRequest, "M_INVALID_PARAM")
	})
	t.Run("an unknown alias or another server's is 404", func(t *testing.T) {
		_, err := alice.ResolveAlias(ctx, localAlias(a, "nowhere"))
		wantErr(t, "resolve an unknown alias", err, http.StatusNotFound, "M_NOT_FOUND")
		_, err = alice.ResolveAlias(ctx, "#lobby:elsewhere.example")
		wantErr(t, "resolve another server's alias", err, http.StatusNotFound, "M_NOT_FOUND")
		_, err = alice.DeleteAlias(ctx, localAlias(a, "nowhere"))
		wantErr(t, "delete an unknown alias", err, http.StatusNotFound, "M_NOT_FOUND")
		_, err = carol.JoinRoom(ctx, "#lobby:elsewhere.example", nil)
		wantErr(t, "join by another server's alias", err, http.StatusNotFound, "M_NOT_FOUND")
	})
	t.Run("a non-member may not list or add aliases", func(t *testing.T) {
		_, err := carol.GetAliases(ctx, room)
		wantErr(t, "carol lists the aliases", err, http.StatusForbidden, "M_FORBIDDEN")
		_, err = carol.CreateAlias(ctx, localAlias(a, "carols"), room)
		wantErr(t, "carol adds an alias", err, http.StatusForbidden, "M_FORBIDDEN")
		if _, err := alice.SendStateEvent(ctx, room, event.StateHistoryVisibility, "", map[string]string{"history_visibility": "world_readable"}); err != nil {
			t.Fatal(err)
		}
		if list, err := carol.GetAliases(ctx, room); err != nil || len(list.Aliases) != 1 {
			t.Fatalf("carol lists the aliases of a world_readable room: %+v, %v", list, err)
		}
		if _, err := alice.SendStateEvent(ctx, room, event.StateHistoryVisibility, "", map[string]string{"history_visibility": "shared"}); err != nil {
			t.Fatal(err)
		}
		_, err = alice.GetAliases(ctx, "not-a-room")
		wantErr(t, "list the aliases of a malformed room ID", err, http.StatusBadRequest, "M_INVALID_PARAM")
	})

	joined, err := carol.JoinRoom(ctx, string(lobby), nil)
	if err != nil || joined.RoomID != room {
		t.Fatalf("carol joins by %s: %+v, %v", lobby, joined, err)
	}
	if _, err := carol.GetAliases(ctx, room); err != nil {
		t.Fatalf("carol, now a member, lists the aliases: %v", err)
	}

	t.Run("only the creator or a moderator deletes", func(t *testing.T) {
		_, err := carol.DeleteAlias(ctx, lobby)
		wantErr(t, "carol (power 0, not its creator) deletes alice's alias", err, http.StatusForbidden, "M_FORBIDDEN")
		if _, err := alice.DeleteAlias(ctx, lobby); err != nil {
			t.Fatalf("alice deletes her alias: %v", err)
		}
		_, err = carol.ResolveAlias(ctx, lobby)
		wantErr(t, "resolve the deleted alias", err, http.StatusNotFound, "M_NOT_FOUND")
		_, err = alice.DeleteAlias(ctx, lobby)
		wantErr(t, "delete it again", err, http.StatusNotFound, "M_NOT_FOUND")

		carols := localAlias(a, "carols")
		if _, err := carol.CreateAlias(ctx, carols, room); err != nil {
			t.Fatalf("carol, a member, adds an alias: %v", err)
		}
		if _, err := alice.DeleteAlias(ctx, carols); err != nil {
			t.Fatalf("alice, the room's admin, deletes carol's alias: %v", err)
		}
		list, err := alice.GetAliases(ctx, room)
		if err != nil || len(list.Aliases) != 0 {
			t.Fatalf("the room's aliases after both deletes: %+v, %v; want none", list, err)
		}
	})
}

// TestAliasesPerUserBound: a user holds at most 100 aliases; the next,
// by PUT or by createRoom, is refused, and createRoom then makes no room.
func TestAliasesPerUserBound(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a := newTestNode(t, testOpts{})
	alice := a.register(ctx, "alice")
	room := privateRoom(t, ctx, alice)
	for i := range 100 {
		if _, err := alice.CreateAlias(ctx, localAlias(a, fmt.Sprintf("a%d", i)), room); err != nil {
			t.Fatalf("alias %d: %v", i, err)
		}
	}
	_, err := alice.CreateAlias(ctx, localAlias(a, "one-too-many"), room)
	wantErr(t, "the 101st alias", err, http.StatusForbidden, "M_FORBIDDEN")
	_, err = alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{RoomAliasName: "one-too-many"})
	wantErr(t, "createRoom with a 101st alias", err, http.StatusForbidden, "M_FORBIDDEN")
	if rooms, err := alice.JoinedRooms(ctx); err != nil || len(rooms.JoinedRooms) != 1 {
		t.Fatalf("joined rooms: %+v, %v; want only the first", rooms, err)
	}
	if _, err := alice.DeleteAlias(ctx, localAlias(a, "a0")); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.CreateAlias(ctx, localAlias(a, "one-too-many"), room); err != nil {
		t.Fatalf("an alias once one is freed: %v", err)
	}
}

// TestCreateRoomAliasName: createRoom's room_alias_name makes the alias
// and the room's m.room.canonical_alias; a name taken is 400
// M_ROOM_IN_USE before any room is made.
func TestCreateRoomAliasName(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a := newTestNode(t, testOpts{})
	alice := a.register(ctx, "alice")
	created, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{RoomAliasName: "general"})
	if err != nil {
		t.Fatal(err)
	}
	general := localAlias(a, "general")
	got, err := alice.ResolveAlias(ctx, general)
	if err != nil || got.RoomID != created.RoomID {
		t.Fatalf("resolve %s: %+v, %v; want %s", general, got, err, created.RoomID)
	}
	var canonical event.CanonicalAliasEventContent
	if err := alice.StateEvent(ctx, created.RoomID, event.StateCanonicalAlias, "", &canonical); err != nil || canonical.Alias != general {
		t.Fatalf("m.room.canonical_alias: %+v, %v; want %s", canonical, err, general)
	}

	_, err = alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{RoomAliasName: "general"})
	wantErr(t, "createRoom with a name taken", err, http.StatusBadRequest, "M_ROOM_IN_USE")
	_, err = alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{RoomAliasName: "a:b"})
	wantErr(t, "createRoom with a name holding ':'", err, http.StatusBadRequest, "M_INVALID_PARAM")
	canonicalState := func(alias string) []*event.Event {
		return []*event.Event{{Type: event.StateCanonicalAlias, StateKey: new(string), Content: event.Content{Raw: map[string]any{"alias": alias}}}}
	}
	_, err = alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{InitialState: canonicalState(string(general))})
	wantErr(t, "createRoom whose initial canonical alias is another room's", err, http.StatusBadRequest, "M_BAD_ALIAS")
	if rooms, err := alice.JoinedRooms(ctx); err != nil || len(rooms.JoinedRooms) != 1 {
		t.Fatalf("joined rooms: %+v, %v; want only the first", rooms, err)
	}
	if _, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{RoomAliasName: "second", InitialState: canonicalState(string(localAlias(a, "second")))}); err != nil {
		t.Fatalf("createRoom whose initial canonical alias is the one it makes: %v", err)
	}
}

// TestCanonicalAliasValidated: a local user's m.room.canonical_alias
// names valid aliases, and those of this node exist and point to the
// room; else 400 M_BAD_ALIAS and no event.
func TestCanonicalAliasValidated(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a := newTestNode(t, testOpts{})
	alice := a.register(ctx, "alice")
	room, other := privateRoom(t, ctx, alice), privateRoom(t, ctx, alice)
	mine, theirs := localAlias(a, "mine"), localAlias(a, "theirs")
	if _, err := alice.CreateAlias(ctx, mine, room); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.CreateAlias(ctx, theirs, other); err != nil {
		t.Fatal(err)
	}
	send := func(c map[string]any) error {
		_, err := alice.SendStateEvent(ctx, room, event.StateCanonicalAlias, "", c)
		return err
	}
	for _, tc := range []struct {
		name    string
		content map[string]any
	}{
		{"an alias that does not exist", map[string]any{"alias": string(localAlias(a, "nowhere"))}},
		{"an alias of another room", map[string]any{"alias": string(theirs)}},
		{"a malformed alias", map[string]any{"alias": "general"}},
		{"a malformed alt alias", map[string]any{"alias": string(mine), "alt_aliases": []string{"#nocolon"}}},
		{"an alt alias of another room", map[string]any{"alt_aliases": []string{string(theirs)}}},
	} {
		t.Run(tc.name+" is refused", func(t *testing.T) {
			wantErr(t, tc.name, send(tc.content), http.StatusBadRequest, "M_BAD_ALIAS")
		})
	}
	var canonical event.CanonicalAliasEventContent
	err := alice.StateEvent(ctx, room, event.StateCanonicalAlias, "", &canonical)
	wantErr(t, "the room's canonical alias after refusals", err, http.StatusNotFound, "M_NOT_FOUND")

	if err := send(map[string]any{"alias": string(mine), "alt_aliases": []string{"#elsewhere:other.example"}}); err != nil {
		t.Fatalf("a local alias of the room and another server's: %v", err)
	}
	if err := alice.StateEvent(ctx, room, event.StateCanonicalAlias, "", &canonical); err != nil || canonical.Alias != mine {
		t.Fatalf("m.room.canonical_alias: %+v, %v; want %s", canonical, err, mine)
	}
}

// TestAliasServers: resolving an alias names this node and the nodes of
// the room's other joined members; a member's node resolves it too, by
// asking.
func TestAliasServers(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, b, alice, bob, room := twoMembers(t, ctx, testOpts{}, testOpts{})
	chat := localAlias(a, "chat")
	if _, err := alice.CreateAlias(ctx, chat, room); err != nil {
		t.Fatal(err)
	}
	var got *mautrix.RespAliasResolve
	testkit.WaitFor(t, 20*time.Second, "both nodes among the alias's servers", func() bool {
		var err error
		got, err = alice.ResolveAlias(ctx, chat)
		return err == nil && slices.Equal(got.Servers, []string{a.ServerName(), b.ServerName()})
	})
	if got.RoomID != room {
		t.Fatalf("resolved to %s, want %s", got.RoomID, room)
	}
	// bob's node asks a, which answers a server in the room (a
	// non-member's is refused: TestAPublicRoomIsFoundAndJoinedFromAnotherNode).
	fromB, err := bob.ResolveAlias(ctx, chat)
	if err != nil || fromB.RoomID != room || !slices.Equal(fromB.Servers, []string{a.ServerName(), b.ServerName()}) {
		t.Fatalf("bob's node resolves a's alias: %+v, %v; want %s on [a b]", fromB, err, room)
	}
}
