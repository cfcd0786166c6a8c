package webui

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
)

// fakeSearch records the searches that reach it and finds nothing.
type fakeSearch struct{ calls []string }

func (f *fakeSearch) SearchRoomEvents(_ context.Context, s *Session, req SearchRequest) (*SearchRoomEventsResponse, error) {
	c := fmt.Sprintf("%q keys=%v order=%s limit=%d rooms=%v/%v not=%v senders=%v not=%v types=%v state=%v group=%v next=%q",
		req.Term, req.Keys, req.OrderBy, req.Filter.Limit, req.Filter.HasRooms, req.Filter.Rooms, req.Filter.NotRooms,
		req.Filter.Senders, req.Filter.NotSenders, req.Filter.Types, req.IncludeState, req.GroupBy, req.NextBatch)
	if req.Context != nil {
		c += fmt.Sprintf(" context=%d/%d/%v", req.Context.Before, req.Context.After, req.Context.IncludeProfile)
	}
	f.calls = append(f.calls, c)
	return &SearchRoomEventsResponse{}, nil
}

func TestSearchRequests(t *testing.T) {
	const path = "/_matrix/client/v3/search"
	re := func(s string) string { return `{"search_categories":{"room_events":` + s + `}}` }
	tests := []struct {
		name, method, path, body string
		status                   int
		code                     string // for errors
		call                     string // what the backend must hear; "" for nothing
		want                     string // in the body, for successes
	}{
		{"a search has defaults", "POST", path, re(`{"search_term":"lunch"}`), 200, "",
			`"lunch" keys=[] order=rank limit=10 rooms=false/[] not=[] senders=[] not=[] types=[] state=false group=[] next=""`, `"results":[]`},
		{"every setting is read", "POST", path + "?next_batch=abc", re(`{"search_term":"x y","keys":["content.body"],"order_by":"recent",
			"filter":{"limit":3,"rooms":["!a:b"],"not_rooms":["!c:d"],"senders":["@u:v"],"not_senders":["@w:v"],"types":["m.room.message"]},
			"event_context":{"before_limit":1,"after_limit":2,"include_profile":true},"include_state":true,"groupings":{"group_by":[{"key":"room_id"},{"key":"sender"}]}}`), 200, "",
			`"x y" keys=[content.body] order=recent limit=3 rooms=true/[!a:b] not=[!c:d] senders=[@u:v] not=[@w:v] types=[m.room.message] state=true group=[room_id sender] next="abc" context=1/2/true`, ""},
		{"the limit and context are capped", "POST", path, re(`{"search_term":"a","filter":{"limit":1000},"event_context":{"before_limit":500}}`), 200, "",
			`"a" keys=[] order=rank limit=50 rooms=false/[] not=[] senders=[] not=[] types=[] state=false group=[] next="" context=20/5/false`, ""},
		{"no room_events is an empty answer", "POST", path, `{"search_categories":{}}`, 200, "", "", `{"search_categories":{}}`},
		{"search_categories is required", "POST", path, `{}`, 400, "M_MISSING_PARAM", "", ""},
		{"a search needs a term", "POST", path, re(`{}`), 400, "M_MISSING_PARAM", "", ""},
		{"order_by is rank or recent", "POST", path, re(`{"search_term":"a","order_by":"best"}`), 400, "M_INVALID_PARAM", "", ""},
		{"keys are content keys", "POST", path, re(`{"search_term":"a","keys":["sender"]}`), 400, "M_INVALID_PARAM", "", ""},
		{"a filter of the wrong shape is refused", "POST", path, re(`{"search_term":"a","filter":{"rooms":"!a:b"}}`), 400, "M_INVALID_PARAM", "", ""},
		{"a negative limit is refused", "POST", path, re(`{"search_term":"a","filter":{"limit":-1}}`), 400, "M_INVALID_PARAM", "", ""},
		{"a negative context is refused", "POST", path, re(`{"search_term":"a","event_context":{"after_limit":-1}}`), 400, "M_INVALID_PARAM", "", ""},
		{"groups are by room or sender", "POST", path, re(`{"search_term":"a","groupings":{"group_by":[{"key":"type"}]}}`), 400, "M_INVALID_PARAM", "", ""},
		{"a long term is refused", "POST", path, re(`{"search_term":"` + strings.Repeat("a", MaxSearchTerm+1) + `"}`), 400, "M_INVALID_PARAM", "", ""},
		{"a body that is not JSON is refused", "POST", path, `{"search_categories":`, 400, "M_NOT_JSON", "", ""},
		{"a search is a POST", "GET", path, ``, 405, "M_UNRECOGNIZED", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &record{}
			acc := newFakeAccounts(rec)
			tok := acc.addUser("alice", "pw")
			f := &fakeSearch{}
			h := New(Config{Addr: testAddr}, Backends{Accounts: acc, Search: f}).Handler()
			r := httptest.NewRequest(tt.method, tt.path, strings.NewReader(tt.body))
			r.Host = testAddr
			r.Header.Set("Authorization", "Bearer "+tok)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if tt.code != "" {
				wantError(t, w, tt.status, tt.code)
			} else {
				wantStatus(t, w, tt.status)
			}
			var got string
			if len(f.calls) > 0 {
				got = f.calls[0]
			}
			if got != tt.call {
				t.Errorf("backend heard\n%s\nwant\n%s", got, tt.call)
			}
			if tt.want != "" && !strings.Contains(w.Body.String(), tt.want) {
				t.Errorf("body %s; want it to hold %s", w.Body.String(), tt.want)
			}
		})
	}
	t.Run("without the role the route is not served", func(t *testing.T) {
		acc := newFakeAccounts(&record{})
		tok := acc.addUser("alice", "pw")
		h := New(Config{Addr: testAddr}, Backends{Accounts: acc}).Handler()
		r := httptest.NewRequest("POST", path, strings.NewReader(re(`{"search_term":"a"}`)))
		r.Host = testAddr
		r.Header.Set("Authorization", "Bearer "+tok)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		wantError(t, w, 404, "M_UNRECOGNIZED")
	})
}
