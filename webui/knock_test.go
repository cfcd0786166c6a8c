package webui

import (
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"testing"

	"github.com/parley-p2p/parley/errs"
)

// fakeKnocking is fakeMembership that also knocks: it records what it was
// asked, and answers err if set.
type fakeKnocking struct {
	fakeMembership
	got *knockCall
	err error
}

type knockCall struct {
	target, reason string
	via            []string
}

func (f fakeKnocking) Knock(_ context.Context, _ *Session, target string, via []string, reason string) (string, error) {
	f.changed("Knock", "Knock %s", target)
	*f.got = knockCall{target: target, reason: reason, via: via}
	if f.err != nil {
		return "", f.err
	}
	return roomV12, nil
}

// knockHarness serves the fake accounts and a Membership that knocks.
func knockHarness(t *testing.T, err error) (*harness, *knockCall) {
	rec := &record{}
	h := &harness{t: t, rec: rec, acc: newFakeAccounts(rec)}
	got := &knockCall{}
	h.srv = New(Config{Addr: testAddr}, Backends{Accounts: h.acc, Membership: fakeKnocking{fakeMembership{rec}, got, err}})
	h.h = h.srv.Handler()
	return h, got
}

func TestKnockRoute(t *testing.T) {
	t.Run("a knock passes the target, the servers named and the reason on, and answers the room ID", func(t *testing.T) {
		h, got := knockHarness(t, nil)
		tok := h.acc.addUser("alice", "pw")
		w := h.do("POST", client+"/knock/"+esc("#chat:example.org")+"?server_name=s1&via=s2&via=s1", `{"reason":"let me in"}`, token(tok))
		wantStatus(t, w, http.StatusOK)
		if id := decode(t, w)["room_id"]; id != roomV12 {
			t.Errorf("room_id = %v, want %s", id, roomV12)
		}
		want := knockCall{target: "#chat:example.org", reason: "let me in", via: []string{"s1", "s2"}}
		if !reflect.DeepEqual(*got, want) {
			t.Errorf("Knock got %+v, want %+v", *got, want)
		}
	})
	t.Run("a knock by room ID with an empty body is a knock without a reason", func(t *testing.T) {
		h, got := knockHarness(t, nil)
		tok := h.acc.addUser("alice", "pw")
		wantStatus(t, h.do("POST", client+"/knock/"+esc(roomV11), `{}`, token(tok)), http.StatusOK)
		if got.target != roomV11 || got.reason != "" || len(got.via) != 0 {
			t.Errorf("Knock got %+v", *got)
		}
	})

	long := make([]byte, maxKnockReason+1)
	for i := range long {
		long[i] = 'a'
	}
	bad := []struct {
		name, path, body string
		status           int
		code             string
	}{
		{"a target that is neither a room ID nor an alias is 400", "/knock/chat", `{}`, 400, "M_INVALID_PARAM"},
		{"an empty server name is 400", "/knock/" + esc(roomV11) + "?via=", `{}`, 400, "M_INVALID_PARAM"},
		{"a reason over the bound is 400", "/knock/" + esc(roomV11), `{"reason":"` + string(long) + `"}`, 400, "M_INVALID_PARAM"},
		{"a body that is not JSON is 400", "/knock/" + esc(roomV11), `{"reason":`, 400, "M_NOT_JSON"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			h, _ := knockHarness(t, nil)
			tok := h.acc.addUser("alice", "pw")
			wantError(t, h.do("POST", client+tt.path, tt.body, token(tok)), tt.status, tt.code)
			if c := h.rec.Changes(); len(c) != 0 {
				t.Errorf("a refused request changed %q", c)
			}
		})
	}

	t.Run("a knock the node refuses is 403", func(t *testing.T) {
		h, _ := knockHarness(t, errs.Forbiddenf("the room cannot be joined through this server"))
		tok := h.acc.addUser("alice", "pw")
		wantError(t, h.do("POST", client+"/knock/"+esc(roomV11), `{}`, token(tok)), 403, "M_FORBIDDEN")
	})
	t.Run("a knock without an access token is 401", func(t *testing.T) {
		h, _ := knockHarness(t, nil)
		wantError(t, h.do("POST", client+"/knock/"+esc(roomV11), `{}`), 401, "M_MISSING_TOKEN")
		if c := h.rec.Changes(); len(c) != 0 {
			t.Errorf("an unauthenticated knock changed %q", c)
		}
	})
	t.Run("a Membership backend that cannot knock serves no knock route", func(t *testing.T) {
		h := newHarness(t, withMembership)
		tok := h.acc.addUser("alice", "pw")
		wantError(t, h.do("POST", client+"/knock/"+esc(roomV11), `{}`, token(tok)), 404, "M_UNRECOGNIZED")
	})
}

// knockSyncer answers every /sync with one knocked room.
type knockSyncer struct{}

func (knockSyncer) Sync(context.Context, *Session, SyncRequest) (*SyncResponse, error) {
	kr := &KnockedRoom{}
	kr.KnockState.Events = []StrippedEvent{
		{Type: "m.room.join_rules", StateKey: "", Sender: "@alice:example.org", Content: json.RawMessage(`{"join_rule":"knock"}`)},
		{Type: "m.room.member", StateKey: "@bob:example.org", Sender: "@bob:example.org", Content: json.RawMessage(`{"membership":"knock"}`)},
	}
	return &SyncResponse{NextBatch: "s2", Rooms: SyncRooms{Knock: map[string]any{roomV12: kr}}}, nil
}

// TestSyncShowsKnocksAsTheSpecSays: rooms.knock maps a room ID to
// {"knock_state": {"events": [stripped state events]}}, each with type,
// state_key, sender and content (what mautrix's SyncKnockedRoom reads).
func TestSyncShowsKnocksAsTheSpecSays(t *testing.T) {
	rec := &record{}
	h := &harness{t: t, rec: rec, acc: newFakeAccounts(rec)}
	h.srv = New(Config{Addr: testAddr}, Backends{Accounts: h.acc, Syncer: knockSyncer{}})
	h.h = h.srv.Handler()
	tok := h.acc.addUser("bob", "pw")
	w := h.do("GET", client+"/sync", "", token(tok))
	wantStatus(t, w, http.StatusOK)
	var resp struct {
		Rooms struct {
			Knock map[string]struct {
				KnockState struct {
					Events []map[string]json.RawMessage `json:"events"`
				} `json:"knock_state"`
			} `json:"knock"`
		} `json:"rooms"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
		t.Fatal(err)
	}
	kr, ok := resp.Rooms.Knock[roomV12]
	if !ok || len(kr.KnockState.Events) != 2 {
		t.Fatalf("rooms.knock = %s, want the room with two stripped events", w.Body.String())
	}
	for _, ev := range kr.KnockState.Events {
		for _, k := range []string{"type", "state_key", "sender", "content"} {
			if _, ok := ev[k]; !ok {
				t.Errorf("a knock_state event lacks %q: %v", k, ev)
			}
		}
	}
	if string(kr.KnockState.Events[1]["content"]) != `{"membership":"knock"}` {
		t.Errorf("the knock member event's content is %s", kr.KnockState.Events[1]["content"])
	}
}
