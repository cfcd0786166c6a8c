package webui

import (
	"bytes"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestVersions(t *testing.T) {
	h := newHarness(t)
	w := h.do("GET", "/_matrix/client/versions", "")
	wantStatus(t, w, 200)
	m := decode(t, w)
	versions, _ := m["versions"].([]any)
	if !slices.Contains(versions, any("v1.1")) || !slices.Contains(versions, any("v1.10")) {
		t.Errorf("versions = %v", m["versions"])
	}
	if _, ok := m["unstable_features"].(map[string]any); !ok {
		t.Errorf("unstable_features = %v, want an object", m["unstable_features"])
	}
}

func TestCapabilities(t *testing.T) {
	h := newHarness(t)
	tok := h.acc.addUser("alice", "pw")
	w := h.do("GET", "/_matrix/client/v3/capabilities", "", token(tok))
	wantStatus(t, w, 200)
	var got struct {
		Capabilities struct {
			RoomVersions struct {
				Default   string            `json:"default"`
				Available map[string]string `json:"available"`
			} `json:"m.room_versions"`
			ChangePassword struct {
				Enabled *bool `json:"enabled"`
			} `json:"m.change_password"`
		} `json:"capabilities"`
	}
	decodeInto(t, w, &got)
	rv := got.Capabilities.RoomVersions
	if rv.Default != "12" {
		t.Errorf("default room version = %q, want 12", rv.Default)
	}
	if want := map[string]string{"10": "stable", "11": "stable", "12": "stable"}; !reflect.DeepEqual(rv.Available, want) {
		t.Errorf("available room versions = %v, want %v", rv.Available, want)
	}
	if got.Capabilities.ChangePassword.Enabled == nil {
		t.Error("m.change_password.enabled is missing")
	}
}

func TestFilters(t *testing.T) {
	alice, bob := userID("alice"), userID("bob")
	filterPath := func(user string) string { return "/_matrix/client/v3/user/" + esc(user) + "/filter" }
	const filter = `{"room":{"timeline":{"limit":20},"state":{"lazy_load_members":true}},"presence":{"not_types":["*"]}}`

	t.Run("a stored filter comes back exactly as it was saved", func(t *testing.T) {
		h := newHarness(t)
		tok := h.acc.addUser("alice", "pw")
		w := h.do("POST", filterPath(alice), filter, token(tok))
		wantStatus(t, w, 200)
		id, _ := decode(t, w)["filter_id"].(string)
		if id == "" {
			t.Fatalf("no filter_id in %s", w.Body.String())
		}
		w = h.do("GET", filterPath(alice)+"/"+id, "", token(tok))
		wantStatus(t, w, 200)
		if w.Body.String() != filter {
			t.Errorf("GET filter = %s, want %s", w.Body.String(), filter)
		}
		if ct := w.Header().Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type = %q", ct)
		}
	})

	tests := []struct {
		name, method, user, suffix, body string
		status                           int
		code                             string
	}{
		{"reading another user's filter is forbidden", "GET", bob, "/f1", "", 403, "M_FORBIDDEN"},
		{"creating a filter for another user is forbidden", "POST", bob, "", filter, 403, "M_FORBIDDEN"},
		{"an unknown filter is not found", "GET", alice, "/f999", "", 404, "M_NOT_FOUND"},
		{"a malformed filter is not JSON", "POST", alice, "", `{"room":`, 400, "M_NOT_JSON"},
		{"a filter with a fractional limit is bad JSON", "POST", alice, "", `{"room":{"timeline":{"limit":1.5}}}`, 400, "M_BAD_JSON"},
		{"a filter that is null is bad JSON", "POST", alice, "", `null`, 400, "M_BAD_JSON"},
		{"a filter that is an array is bad JSON", "POST", alice, "", `[]`, 400, "M_BAD_JSON"},
		{"a filter over 1 MiB is too large", "POST", alice, "", bigObject(maxBody + 1), 413, "M_TOO_LARGE"},
		{"a filter with a limit that is a string is bad JSON", "POST", alice, "", `{"room":{"timeline":{"limit":"x"}}}`, 400, "M_BAD_JSON"},
		{"a filter with a negative limit is bad JSON", "POST", alice, "", `{"room":{"state":{"limit":-1}}}`, 400, "M_BAD_JSON"},
		{"a filter with a presence limit of the wrong type is bad JSON", "POST", alice, "", `{"presence":{"limit":true}}`, 400, "M_BAD_JSON"},
		{"a filter with not_senders that is a string is bad JSON", "POST", alice, "", `{"room":{"ephemeral":{"not_senders":"@a:b"}}}`, 400, "M_BAD_JSON"},
		{"a filter with event_fields that is a string is bad JSON", "POST", alice, "", `{"event_fields":"content"}`, 400, "M_BAD_JSON"},
		{"a filter with an unknown event_format is bad JSON", "POST", alice, "", `{"event_format":"raw"}`, 400, "M_BAD_JSON"},
		{"a filter with include_leave that is a string is bad JSON", "POST", alice, "", `{"room":{"include_leave":"yes"}}`, 400, "M_BAD_JSON"},
		{"a filter that is not UTF-8 is not JSON", "POST", alice, "", "{\"room\":{\"rooms\":[\"\xff\"]}}", 400, "M_NOT_JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			tok := h.acc.addUser("alice", "pw")
			h.acc.addUser("bob", "pw")
			h.acc.PutFilter(bob, []byte(filter)) // bob's filter f1
			h.rec.changes = nil
			wantError(t, h.do(tt.method, filterPath(tt.user)+tt.suffix, tt.body, token(tok)), tt.status, tt.code)
			wantNoChanges(t, h.rec)
		})
	}
}

// bigObject is a JSON object of exactly n bytes.
func bigObject(n int) string {
	const head, tail = `{"body":"`, `"}`
	return head + strings.Repeat("x", n-len(head)-len(tail)) + tail
}

func TestBadInput(t *testing.T) {
	room := "/_matrix/client/v3/rooms/" + escRoomV12
	send := room + "/send/m.room.message/t1"
	state := room + "/state/m.room.topic/"
	profile := "/_matrix/client/v3/profile/" + esc(userID("alice"))
	tests := []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		{"a malformed createRoom body is not JSON", "POST", "/_matrix/client/v3/createRoom", `{"name":`, 400, "M_NOT_JSON"},
		{"a createRoom field of the wrong type is bad JSON", "POST", "/_matrix/client/v3/createRoom", `{"name":5}`, 400, "M_BAD_JSON"},
		{"a createRoom body over 1 MiB is too large", "POST", "/_matrix/client/v3/createRoom", bigObject(maxBody + 1), 413, "M_TOO_LARGE"},
		{"an unknown preset is refused", "POST", "/_matrix/client/v3/createRoom", `{"preset":"secret_chat"}`, 400, "M_INVALID_PARAM"},
		{"an unknown room version is refused", "POST", "/_matrix/client/v3/createRoom", `{"room_version":"9"}`, 400, "M_UNSUPPORTED_ROOM_VERSION"},
		{"an invitee that is not a user ID is refused", "POST", "/_matrix/client/v3/createRoom", `{"invite":["bob"]}`, 400, "M_INVALID_PARAM"},
		{"an invitee with an invalid server name is refused", "POST", "/_matrix/client/v3/createRoom", `{"invite":["@bob:bad server"]}`, 400, "M_INVALID_PARAM"},
		{"malformed event content is not JSON", "PUT", send, `{"body":`, 400, "M_NOT_JSON"},
		{"empty event content is not JSON", "PUT", send, ``, 400, "M_NOT_JSON"},
		{"event content that is an array is bad JSON", "PUT", send, `["hi"]`, 400, "M_BAD_JSON"},
		{"event content that is a string is bad JSON", "PUT", send, `"hi"`, 400, "M_BAD_JSON"},
		{"event content that is null is bad JSON", "PUT", send, `null`, 400, "M_BAD_JSON"},
		{"event content with a float is bad JSON", "PUT", send, `{"body":"hi","n":1.5}`, 400, "M_BAD_JSON"},
		{"event content with a too-large integer is bad JSON", "PUT", send, `{"n":9007199254740992}`, 400, "M_BAD_JSON"},
		{"event content with duplicate keys is bad JSON", "PUT", send, `{"body":"a","body":"b"}`, 400, "M_BAD_JSON"},
		{"event content with trailing data is not JSON", "PUT", send, `{"body":"a"} {}`, 400, "M_NOT_JSON"},
		{"event content over 65536 bytes is too large", "PUT", send, bigObject(65537), 413, "M_TOO_LARGE"},
		{"an event body over 1 MiB is too large", "PUT", send, bigObject(maxBody + 1), 413, "M_TOO_LARGE"},
		{"state content with a float is bad JSON", "PUT", state, `{"topic":"t","v":0.5}`, 400, "M_BAD_JSON"},
		{"state content that is not an object is bad JSON", "PUT", state, `[1]`, 400, "M_BAD_JSON"},
		{"state content over 65536 bytes is too large", "PUT", state, bigObject(65537), 413, "M_TOO_LARGE"},
		{"an invite without user_id is refused", "POST", room + "/invite", `{}`, 400, "M_MISSING_PARAM"},
		{"an invite of an invalid user ID is refused", "POST", room + "/invite", `{"user_id":"bob"}`, 400, "M_INVALID_PARAM"},
		{"a malformed invite is not JSON", "POST", room + "/invite", `{`, 400, "M_NOT_JSON"},
		{"a malformed join is not JSON", "POST", room + "/join", `{`, 400, "M_NOT_JSON"},
		{"a malformed leave is not JSON", "POST", room + "/leave", `{`, 400, "M_NOT_JSON"},
		{"a display name that is not a string is refused", "PUT", profile + "/displayname", `{"displayname":5}`, 400, "M_INVALID_PARAM"},
		{"a display name over 256 bytes is refused", "PUT", profile + "/displayname", `{"displayname":"` + strings.Repeat("a", 257) + `"}`, 400, "M_INVALID_PARAM"},
		{"an unsupported profile field is refused", "PUT", profile + "/email", `{"email":"a@b"}`, 400, "M_INVALID_PARAM"},
		{"another user's profile cannot be changed", "PUT", "/_matrix/client/v3/profile/" + esc(userID("bob")) + "/displayname", `{"displayname":"B"}`, 403, "M_FORBIDDEN"},
		{"a non-numeric messages limit is refused", "GET", room + "/messages?limit=ten", "", 400, "M_INVALID_PARAM"},
		{"a negative messages limit is refused", "GET", room + "/messages?limit=-1", "", 400, "M_INVALID_PARAM"},
		{"an unknown messages direction is refused", "GET", room + "/messages?dir=up", "", 400, "M_INVALID_PARAM"},
		{"a malformed messages filter is refused", "GET", room + "/messages?filter=%7Bbad", "", 400, "M_INVALID_PARAM"},
		{"a messages filter that is not an object is refused", "GET", room + "/messages?filter=%5B%5D", "", 400, "M_INVALID_PARAM"},
		{"a non-numeric sync timeout is refused", "GET", "/_matrix/client/v3/sync?timeout=soon", "", 400, "M_INVALID_PARAM"},
		{"a negative sync timeout is refused", "GET", "/_matrix/client/v3/sync?timeout=-5", "", 400, "M_INVALID_PARAM"},
		{"a malformed inline sync filter is refused", "GET", "/_matrix/client/v3/sync?filter=%7Bbad", "", 400, "M_INVALID_PARAM"},
		{"an inline sync filter of the wrong shape is refused", "GET", "/_matrix/client/v3/sync?filter=%7B%22room%22%3A5%7D", "", 400, "M_INVALID_PARAM"},
		{"an inline sync filter with a limit that is a string is refused", "GET", "/_matrix/client/v3/sync?filter=" + esc(`{"room":{"timeline":{"limit":"x"}}}`), "", 400, "M_INVALID_PARAM"},
		{"a messages filter with a limit that is a string is refused", "GET", room + "/messages?filter=" + esc(`{"limit":"x"}`), "", 400, "M_INVALID_PARAM"},
		{"a messages filter with contains_url that is a string is refused", "GET", room + "/messages?filter=" + esc(`{"contains_url":"yes"}`), "", 400, "M_INVALID_PARAM"},
		{"event content that is not UTF-8 is not JSON", "PUT", send, "{\"body\":\"\xc3\x28\"}", 400, "M_NOT_JSON"},
		{"state content that is not UTF-8 is not JSON", "PUT", state, "{\"topic\":\"\xed\xa0\x80\"}", 400, "M_NOT_JSON"},
		{"a createRoom body that is not UTF-8 is not JSON", "POST", "/_matrix/client/v3/createRoom", "{\"name\":\"\xff\"}", 400, "M_NOT_JSON"},
		{"an invite that is not UTF-8 is not JSON", "POST", room + "/invite", "{\"user_id\":\"@b:x\",\"reason\":\"\xfe\"}", 400, "M_NOT_JSON"},
		{"a leave that is not UTF-8 is not JSON", "POST", room + "/leave", "{\"reason\":\"\x80\"}", 400, "M_NOT_JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, withRooms, withMembership, withSyncer)
			tok := h.acc.addUser("alice", "pw")
			wantError(t, h.do(tt.method, tt.path, tt.body, token(tok)), tt.status, tt.code)
			if c := h.rec.Calls(); !reflect.DeepEqual(c, []string{"Authenticate"}) {
				t.Errorf("backend calls = %q, want only Authenticate", c)
			}
			wantNoChanges(t, h.rec)
		})
	}

	t.Run("event content of exactly 65536 bytes reaches the node", func(t *testing.T) {
		h := newHarness(t, withRooms, withMembership, withSyncer)
		tok := h.acc.addUser("alice", "pw")
		wantStatus(t, h.do("PUT", send, bigObject(65536), token(tok)), 200)
	})
}

func TestInternalErrors(t *testing.T) {
	var logs bytes.Buffer
	h := serve(t, Config{Addr: testAddr, Logger: slog.New(slog.NewTextHandler(&logs, nil))}, withRooms)
	tok := h.acc.addUser("alice", "pw")
	h.rooms.fail = true

	w := h.do("GET", "/_matrix/client/v3/joined_rooms", "", token(tok))
	t.Run("a plain backend error is a 500 M_UNKNOWN", func(t *testing.T) {
		wantError(t, w, 500, "M_UNKNOWN")
	})
	t.Run("the response carries no internal details", func(t *testing.T) {
		for _, leak := range []string{"badger", "vlog", "node:", "1234", userID("alice")} {
			if strings.Contains(w.Body.String(), leak) {
				t.Errorf("body %s contains %q", w.Body.String(), leak)
			}
		}
	})
	t.Run("the details are logged with the component", func(t *testing.T) {
		if !strings.Contains(logs.String(), "000042.vlog") || !strings.Contains(logs.String(), "component=webui") {
			t.Errorf("log = %q", logs.String())
		}
	})
}

func TestProfile(t *testing.T) {
	alice := "/_matrix/client/v3/profile/" + esc(userID("alice"))
	tests := []struct {
		name, method, path, body string
		status                   int
		want                     string // a fragment of the body, or the errcode
		change                   string
	}{
		{"a profile can be read without a token", "GET", alice, "", 200, `"displayname":"Alice"`, ""},
		{"one profile field can be read", "GET", alice + "/displayname", "", 200, `{"displayname":"Alice"}`, ""},
		{"a field the user has not set is not found", "GET", alice + "/avatar_url", "", 404, "M_NOT_FOUND", ""},
		{"an unknown user's profile is not found", "GET", "/_matrix/client/v3/profile/" + esc(userID("zed")), "", 404, "M_NOT_FOUND", ""},
		{"the display name can be set", "PUT", alice + "/displayname", `{"displayname":"Al"}`, 200, `{}`, "SetProfile " + userID("alice") + " displayname=Al"},
		{"the avatar can be cleared with null", "PUT", alice + "/avatar_url", `{"avatar_url":null}`, 200, `{}`, "SetProfile " + userID("alice") + " avatar_url="},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			tok := h.acc.addUser("alice", "pw")
			var opts []option
			if tt.method != "GET" {
				opts = append(opts, token(tok))
			}
			w := h.do(tt.method, tt.path, tt.body, opts...)
			if tt.status != 200 {
				wantError(t, w, tt.status, tt.want)
				return
			}
			wantStatus(t, w, 200)
			if !strings.Contains(w.Body.String(), tt.want) {
				t.Errorf("body = %s, want it to contain %s", w.Body.String(), tt.want)
			}
			if c := h.rec.Changes(); tt.change != "" && !reflect.DeepEqual(c, []string{tt.change}) {
				t.Errorf("changes = %q, want %q", c, tt.change)
			}
		})
	}
}
