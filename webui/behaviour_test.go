package webui

import (
	"slices"
	"testing"
)

func TestContextParams(t *testing.T) {
	ctxPath := "/_matrix/client/v3/rooms/" + escRoomV12 + "/context/%24ev1"
	tests := []struct {
		name, query string
		status      int
		code        string
		limit       float64
		filtered    bool
	}{
		{"the default limit is 10", "", 200, "", 10, false},
		{"a limit of 0 is kept", "?limit=0", 200, "", 0, false},
		{"a huge limit is capped at 100", "?limit=100000", 200, "", 100, false},
		{"a filter is passed on", "?filter=" + esc(`{"types":["m.room.message"]}`), 200, "", 10, true},
		{"a limit that is not a number is refused", "?limit=x", 400, "M_INVALID_PARAM", 0, false},
		{"a negative limit is refused", "?limit=-1", 400, "M_INVALID_PARAM", 0, false},
		{"a filter that is not JSON is refused", "?filter=%7B", 400, "M_INVALID_PARAM", 0, false},
		{"a filter with a limit of the wrong type is refused", "?filter=" + esc(`{"limit":"x"}`), 400, "M_INVALID_PARAM", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, withRooms)
			tok := h.acc.addUser("alice", "pw")
			w := h.do("GET", ctxPath+tt.query, "", token(tok))
			if tt.code != "" {
				wantError(t, w, tt.status, tt.code)
				return
			}
			wantStatus(t, w, 200)
			m := decode(t, w)
			ev, _ := m["event"].(map[string]any)
			content, _ := ev["content"].(map[string]any)
			if ev["event_id"] != "$ev1" || content["limit"] != tt.limit || content["filtered"] != tt.filtered {
				t.Errorf("event = %v, want $ev1 asked with limit %v, filtered %v", ev, tt.limit, tt.filtered)
			}
			for _, k := range []string{"events_before", "events_after", "state"} {
				if _, ok := m[k].([]any); !ok {
					t.Errorf("%s = %v, want a list", k, m[k])
				}
			}
		})
	}
	t.Run("a room the user is not in is refused", func(t *testing.T) {
		h := newHarness(t, withRooms)
		tok := h.acc.addUser("alice", "pw")
		wantError(t, h.do("GET", "/_matrix/client/v3/rooms/"+esc("!other:x")+"/context/%24ev1", "", token(tok)), 403, "M_FORBIDDEN")
	})
}

func TestForgetAndMembersParams(t *testing.T) {
	room := "/_matrix/client/v3/rooms/" + escRoomV12
	t.Run("forget is passed on", func(t *testing.T) {
		h := newHarness(t, withMembership)
		tok := h.acc.addUser("alice", "pw")
		wantStatus(t, h.do("POST", room+"/forget", `{}`, token(tok)), 200)
		if got := h.rec.Changes(); !slices.Contains(got, "Forget "+roomV12) {
			t.Errorf("changes = %v", got)
		}
	})
	t.Run("a forget body that is not JSON is refused", func(t *testing.T) {
		h := newHarness(t, withMembership)
		tok := h.acc.addUser("alice", "pw")
		wantError(t, h.do("POST", room+"/forget", `{`, token(tok)), 400, "M_NOT_JSON")
		if got := h.rec.Changes(); len(got) != 0 {
			t.Errorf("changes = %v", got)
		}
	})
	for _, q := range []string{"?membership=joined", "?not_membership=gone"} {
		t.Run("members with "+q+" is refused", func(t *testing.T) {
			h := newHarness(t, withRooms)
			tok := h.acc.addUser("alice", "pw")
			wantError(t, h.do("GET", room+"/members"+q, "", token(tok)), 400, "M_INVALID_PARAM")
		})
	}
}
