package webui

import (
	"reflect"
	"strings"
	"testing"
)

const client = "/_matrix/client/v3"

func TestPutStateKeys(t *testing.T) {
	tests := []struct {
		name, path string
		room, typ  string
		key        string
	}{
		{"a state path without a key sends the empty key", "/rooms/" + escRoomV12 + "/state/m.room.name", roomV12, "m.room.name", ""},
		{"a state path ending in a slash sends the empty key", "/rooms/" + escRoomV12 + "/state/m.room.name/", roomV12, "m.room.name", ""},
		{"a user ID as key is decoded", "/rooms/" + escRoomV12 + "/state/m.room.member/" + esc(userID("bob")), roomV12, "m.room.member", userID("bob")},
		{"a key with an escaped slash keeps the slash", "/rooms/" + escRoomV12 + "/state/org.example.x/" + esc("a/b"), roomV12, "org.example.x", "a/b"},
		{"a key of two dots is not taken for a parent folder", "/rooms/" + escRoomV12 + "/state/org.example.x/" + esc(".."), roomV12, "org.example.x", ".."},
		{"a key with a double slash is not cleaned", "/rooms/" + escRoomV12 + "/state/org.example.x/" + esc("a//b"), roomV12, "org.example.x", "a//b"},
		{"an escaped event type is decoded", "/rooms/" + escRoomV12 + "/state/" + esc("org.example.x") + "/k", roomV12, "org.example.x", "k"},
		{"a fully escaped older room ID is decoded", "/rooms/" + esc(roomV11) + "/state/m.room.topic/", roomV11, "m.room.topic", ""},
		{"an older room ID escaped as matrix-js-sdk does is decoded", "/rooms/!old%3Aexample.org/state/m.room.topic", roomV11, "m.room.topic", ""},
		{"an unescaped older room ID is taken as it is", "/rooms/" + roomV11 + "/state/m.room.topic/x", roomV11, "m.room.topic", "x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, withRooms)
			tok := h.acc.addUser("alice", "pw")
			w := h.do("PUT", client+tt.path, `{"v": 1}`, token(tok))
			wantStatus(t, w, 200)
			if id, _ := decode(t, w)["event_id"].(string); !strings.HasPrefix(id, "$") {
				t.Errorf("event_id = %q", id)
			}
			if len(h.rooms.sent) != 1 {
				t.Fatalf("sent %d events, want 1", len(h.rooms.sent))
			}
			got := h.rooms.sent[0]
			if got.Room != tt.room || got.Type != tt.typ || got.StateKey == nil || *got.StateKey != tt.key || got.TxnID != "" {
				t.Errorf("Send got room %q type %q key %v txn %q; want room %q type %q key %q", got.Room, got.Type, deref(got.StateKey), got.TxnID, tt.room, tt.typ, tt.key)
			}
			if got.Content != `{"v":1}` {
				t.Errorf("content = %s, want canonical JSON", got.Content)
			}
		})
	}
}

func deref(s *string) any {
	if s == nil {
		return nil
	}
	return *s
}

func TestSend(t *testing.T) {
	h := newHarness(t, withRooms)
	tok := h.acc.addUser("alice", "pw")

	t.Run("a message reaches the node as a canonical, non-state event with its transaction ID", func(t *testing.T) {
		w := h.do("PUT", client+"/rooms/"+escRoomV12+"/send/m.room.message/"+esc("txn.1/2"), `{ "msgtype": "m.text", "body": "hé" }`, token(tok))
		wantStatus(t, w, 200)
		want := sentEvent{Room: roomV12, Type: "m.room.message", Content: `{"body":"hé","msgtype":"m.text"}`, TxnID: "txn.1/2"}
		if got := h.rooms.sent[len(h.rooms.sent)-1]; !reflect.DeepEqual(got, want) {
			t.Errorf("Send got %+v, want %+v", got, want)
		}
	})

	t.Run("a refusal from the node is passed on", func(t *testing.T) {
		wantError(t, h.do("PUT", client+"/rooms/"+esc("!elsewhere:example.org")+"/send/m.room.message/t", `{}`, token(tok)), 403, "M_FORBIDDEN")
	})
}

func TestReadRoutes(t *testing.T) {
	eventID := "$Ab-_Cd:example.org"
	tests := []struct {
		name, path string
		lookup     string // what the fake must have been asked for
		body       string // the exact response body
	}{
		{"a state event without a key is looked up with the empty key", "/rooms/" + escRoomV12 + "/state/m.room.name", roomV12 + "|m.room.name|", `{"name":"Test room"}`},
		{"a state event with a trailing slash is looked up with the empty key", "/rooms/" + escRoomV12 + "/state/m.room.name/", roomV12 + "|m.room.name|", `{"name":"Test room"}`},
		{"a state event with an escaped key is looked up with that key", "/rooms/" + esc(roomV11) + "/state/m.room.name/" + esc("@x:y"), roomV11 + "|m.room.name|@x:y", `{"name":"Test room"}`},
		{"format=event returns the whole event", "/rooms/" + escRoomV12 + "/state/m.room.name/?format=event", roomV12 + "|m.room.name|",
			`{"content":{"name":"Test room"},"event_id":"$name","origin_server_ts":0,"sender":"","state_key":"","type":"m.room.name"}`},
		{"an escaped event ID is decoded", "/rooms/" + esc(roomV11) + "/event/" + esc(eventID), roomV11 + "|" + eventID,
			`{"content":{},"event_id":"$Ab-_Cd:example.org","origin_server_ts":0,"room_id":"!old:example.org","sender":"","type":"m.room.message"}`},
		{"an event ID with a raw dollar sign is taken as it is", "/rooms/" + escRoomV12 + "/event/$abc", roomV12 + "|$abc",
			`{"content":{},"event_id":"$abc","origin_server_ts":0,"room_id":"` + roomV12 + `","sender":"","type":"m.room.message"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, withRooms)
			tok := h.acc.addUser("alice", "pw")
			w := h.do("GET", client+tt.path, "", token(tok))
			wantStatus(t, w, 200)
			if w.Body.String() != tt.body {
				t.Errorf("body = %s\nwant   %s", w.Body.String(), tt.body)
			}
			if !reflect.DeepEqual(h.rooms.lookups, []string{tt.lookup}) {
				t.Errorf("lookups = %q, want %q", h.rooms.lookups, tt.lookup)
			}
		})
	}

	t.Run("a missing state event is not found", func(t *testing.T) {
		h := newHarness(t, withRooms)
		tok := h.acc.addUser("alice", "pw")
		wantError(t, h.do("GET", client+"/rooms/"+escRoomV12+"/state/m.room.topic/", "", token(tok)), 404, "M_NOT_FOUND")
	})
}

func TestListShapes(t *testing.T) {
	tests := []struct {
		name, path string
		body       string
	}{
		{"joined rooms are listed", "/joined_rooms", `{"joined_rooms":["` + roomV12 + `","` + roomV11 + `"]}`},
		{"a room with no state gives an empty array, not null", "/rooms/" + escRoomV12 + "/state", `[]`},
		{"a room with no members gives an empty chunk, not null", "/rooms/" + escRoomV12 + "/members?not_membership=leave", `{"chunk":[]}`},
		{"joined members are keyed by user ID", "/rooms/" + escRoomV12 + "/joined_members", `{"joined":{"` + userID("alice") + `":{"display_name":"Alice"}}}`},
		{"messages give an empty chunk, not null", "/rooms/" + escRoomV12 + "/messages", `{"start":"s1","chunk":[]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, withRooms)
			tok := h.acc.addUser("alice", "pw")
			w := h.do("GET", client+tt.path, "", token(tok))
			wantStatus(t, w, 200)
			if w.Body.String() != tt.body {
				t.Errorf("body = %s, want %s", w.Body.String(), tt.body)
			}
		})
	}

	t.Run("a user in no rooms gets an empty list, not null", func(t *testing.T) {
		h := newHarness(t, withRooms)
		tok := h.acc.addUser("alice", "pw")
		h.rooms.joined = nil
		w := h.do("GET", client+"/joined_rooms", "", token(tok))
		if w.Body.String() != `{"joined_rooms":[]}` {
			t.Errorf("body = %s", w.Body.String())
		}
	})
}

func TestMessagesParams(t *testing.T) {
	room := client + "/rooms/" + escRoomV12 + "/messages"
	tests := []struct {
		name, query string
		want        MessagesRequest
	}{
		{"no parameters mean backwards from the end, 10 events", "",
			MessagesRequest{RoomID: roomV12, Dir: "b", Limit: 10}},
		{"from, to, dir and limit are passed on", "?from=s5&to=s1&dir=f&limit=3",
			MessagesRequest{RoomID: roomV12, From: "s5", To: "s1", Dir: "f", Limit: 3}},
		{"a limit of zero is allowed", "?limit=0",
			MessagesRequest{RoomID: roomV12, Dir: "b", Limit: 0}},
		{"a huge limit is capped at 1000", "?limit=1000000",
			MessagesRequest{RoomID: roomV12, Dir: "b", Limit: 1000}},
		{"a filter is parsed", "?filter=" + esc(`{"types":["m.room.message"],"lazy_load_members":true}`),
			MessagesRequest{RoomID: roomV12, Dir: "b", Limit: 10, Filter: &RoomEventFilter{Types: []string{"m.room.message"}, LazyLoadMembers: true}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, withRooms)
			tok := h.acc.addUser("alice", "pw")
			wantStatus(t, h.do("GET", room+tt.query, "", token(tok)), 200)
			if len(h.rooms.messages) != 1 || !reflect.DeepEqual(h.rooms.messages[0], tt.want) {
				t.Errorf("Messages got %+v, want %+v", h.rooms.messages, tt.want)
			}
		})
	}
}

func TestSyncParams(t *testing.T) {
	const stored = `{"room":{"timeline":{"limit":7},"include_leave":true}}`
	tests := []struct {
		name, query string
		want        SyncRequest
	}{
		{"no parameters mean an immediate initial sync", "", SyncRequest{}},
		{"since, timeout and full_state are passed on", "?since=s9&timeout=30000&full_state=true",
			SyncRequest{Since: "s9", Timeout: 30000, FullState: true}},
		{"a huge timeout is capped at five minutes", "?timeout=99999999999", SyncRequest{Timeout: 300000}},
		{"an inline filter is parsed", "?filter=" + esc(`{"room":{"timeline":{"limit":3}}}`),
			SyncRequest{Filter: &Filter{Room: RoomFilter{Timeline: RoomEventFilter{Limit: 3, HasLimit: true}}}}},
		{"a timeline limit of 0 is kept as set", "?filter=" + esc(`{"room":{"timeline":{"limit":0}}}`),
			SyncRequest{Filter: &Filter{Room: RoomFilter{Timeline: RoomEventFilter{HasLimit: true}}}}},
		{"a stored filter is found by its ID", "?filter=f1",
			SyncRequest{Filter: &Filter{Room: RoomFilter{Timeline: RoomEventFilter{Limit: 7, HasLimit: true}, IncludeLeave: true}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, withSyncer)
			tok := h.acc.addUser("alice", "pw")
			h.acc.PutFilter(userID("alice"), []byte(stored))
			w := h.do("GET", client+"/sync"+tt.query, "", token(tok))
			wantStatus(t, w, 200)
			if len(h.syncer.syncs) != 1 || !reflect.DeepEqual(h.syncer.syncs[0], tt.want) {
				t.Errorf("Sync got %+v, want %+v", h.syncer.syncs, tt.want)
			}
			if m := decode(t, w); m["next_batch"] != "s2" {
				t.Errorf("next_batch = %v", m["next_batch"])
			}
		})
	}

	t.Run("an unknown stored filter is not found and sync is not run", func(t *testing.T) {
		h := newHarness(t, withSyncer)
		tok := h.acc.addUser("alice", "pw")
		wantError(t, h.do("GET", client+"/sync?filter=nope", "", token(tok)), 404, "M_NOT_FOUND")
		if len(h.syncer.syncs) != 0 {
			t.Error("Sync was called")
		}
	})
}

func TestMembership(t *testing.T) {
	tests := []struct {
		name, path, body string
		want             string // the change the node must record
		roomID           string // the room_id in the reply, if any
	}{
		{"creating a room passes the request on", "/createRoom",
			`{"preset":"private_chat","name":"Hi","invite":["@bob:example.org"],"room_version":"11","is_direct":true}`, "CreateRoom", "!new1"},
		{"joining by escaped alias passes the alias on", "/join/" + esc("#chat:example.org"), `{}`, "Join #chat:example.org", "#chat:example.org"},
		{"joining by room ID passes the room ID on", "/rooms/" + esc(roomV11) + "/join", ``, "Join " + roomV11, roomV11},
		{"leaving passes the room ID on", "/rooms/" + escRoomV12 + "/leave", `{"reason":"bye"}`, "Leave " + roomV12, ""},
		{"inviting passes the user on", "/rooms/" + escRoomV12 + "/invite", `{"user_id":"@bob:example.org"}`, "Invite " + roomV12 + " @bob:example.org", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, withRooms, withMembership)
			tok := h.acc.addUser("alice", "pw")
			w := h.do("POST", client+tt.path, tt.body, token(tok))
			wantStatus(t, w, 200)
			if c := h.rec.Changes(); !reflect.DeepEqual(c, []string{tt.want}) {
				t.Errorf("changes = %q, want %q", c, tt.want)
			}
			if tt.roomID != "" && decode(t, w)["room_id"] != tt.roomID {
				t.Errorf("room_id = %v, want %s", decode(t, w)["room_id"], tt.roomID)
			}
		})
	}

	t.Run("createRoom hands the node every field it was given", func(t *testing.T) {
		h := newHarness(t, withRooms, withMembership)
		tok := h.acc.addUser("alice", "pw")
		body := `{"preset":"public_chat","visibility":"public","topic":"t","room_alias_name":"a","invite":["@bob:example.org"],` +
			`"creation_content":{"m.federate":true},"initial_state":[{"type":"m.room.encryption","content":{"algorithm":"m.megolm.v1.aes-sha2"}}],` +
			`"power_level_content_override":{"users_default":10}}`
		wantStatus(t, h.do("POST", client+"/createRoom", body, token(tok)), 200)
		got := h.rooms.created[0]
		if got.Preset != "public_chat" || got.Visibility != "public" || got.Topic != "t" || got.RoomAliasName != "a" ||
			!reflect.DeepEqual(got.Invite, []string{"@bob:example.org"}) || string(got.CreationContent) != `{"m.federate":true}` ||
			len(got.InitialState) != 1 || got.InitialState[0].Type != "m.room.encryption" ||
			string(got.PowerLevelContentOverride) != `{"users_default":10}` {
			t.Errorf("CreateRoom got %+v", got)
		}
	})
}

func TestModerationRoutesSetTheTargetsMembership(t *testing.T) {
	for _, tc := range []struct{ path, want string }{
		{"kick", "leave"}, {"ban", "ban"}, {"unban", "leave"},
	} {
		t.Run(tc.path+" sets membership "+tc.want, func(t *testing.T) {
			h := newHarness(t, withMembership)
			tok := h.acc.addUser("alice", "pw")
			w := h.do("POST", client+"/rooms/"+escRoomV12+"/"+tc.path, `{"user_id":"@bob:example.org"}`, token(tok))
			wantStatus(t, w, 200)
			want := "Moderate " + roomV12 + " @bob:example.org " + tc.want
			if ch := h.rec.Changes(); len(ch) != 1 || ch[0] != want {
				t.Errorf("backend changes %v, want [%s]", ch, want)
			}
		})
	}
	t.Run("a missing user_id changes nothing", func(t *testing.T) {
		h := newHarness(t, withMembership)
		tok := h.acc.addUser("alice", "pw")
		w := h.do("POST", client+"/rooms/"+escRoomV12+"/ban", `{}`, token(tok))
		wantStatus(t, w, 400)
		if ch := h.rec.Changes(); len(ch) != 0 {
			t.Errorf("backend changes %v", ch)
		}
	})
}

func TestRedactSendsARedactionEvent(t *testing.T) {
	h := newHarness(t, withRooms)
	tok := h.acc.addUser("alice", "pw")
	w := h.do("PUT", client+"/rooms/"+escRoomV12+"/redact/"+esc("$ev")+"/t1", `{"reason":"spam"}`, token(tok))
	wantStatus(t, w, 200)
	if len(h.rooms.sent) != 1 || h.rooms.sent[0].Type != "m.room.redaction" || h.rooms.sent[0].Content != `{"reason":"spam","redacts":"$ev"}` || h.rooms.sent[0].TxnID != "t1" {
		t.Errorf("sent %+v", h.rooms.sent)
	}
}
