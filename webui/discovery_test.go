package webui

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
)

// fakeDiscovery records what reaches the user directory, hierarchy and
// timestamp roles; it holds nothing.
type fakeDiscovery struct{ calls []string }

func (f *fakeDiscovery) SearchUsers(_ context.Context, s *Session, term string, limit int) (*UserSearchResponse, error) {
	f.calls = append(f.calls, fmt.Sprintf("search %q %d", term, limit))
	return &UserSearchResponse{}, nil
}

func (f *fakeDiscovery) Hierarchy(_ context.Context, s *Session, req HierarchyRequest) (*HierarchyResponse, error) {
	f.calls = append(f.calls, fmt.Sprintf("hierarchy %s from=%s limit=%d depth=%d suggested=%v", req.RoomID, req.From, req.Limit, req.MaxDepth, req.SuggestedOnly))
	return &HierarchyResponse{}, nil
}

func (f *fakeDiscovery) TimestampToEvent(_ context.Context, s *Session, roomID string, ts int64, dir string) (*TimestampEvent, error) {
	f.calls = append(f.calls, fmt.Sprintf("ts %s %d %s", roomID, ts, dir))
	return &TimestampEvent{EventID: "$e", OriginServerTS: ts}, nil
}

func TestDiscoveryRequests(t *testing.T) {
	const room = "/_matrix/client/v1/rooms/%21r:example.org"
	tests := []struct {
		name, method, path, body string
		status                   int
		code                     string // for errors
		call                     string // what the backend must hear; "" for nothing
	}{
		{"a search has a default limit", "POST", "/_matrix/client/v3/user_directory/search", `{"search_term":"Al"}`, 200, "", `search "Al" 10`},
		{"a search's limit is capped", "POST", "/_matrix/client/v3/user_directory/search", `{"search_term":"al","limit":500}`, 200, "", `search "al" 50`},
		{"a search needs a term", "POST", "/_matrix/client/v3/user_directory/search", `{}`, 400, "M_MISSING_PARAM", ""},
		{"a search's limit is not negative", "POST", "/_matrix/client/v3/user_directory/search", `{"search_term":"a","limit":-2}`, 400, "M_INVALID_PARAM", ""},
		{"a search is a POST", "GET", "/_matrix/client/v3/user_directory/search", ``, 405, "M_UNRECOGNIZED", ""},
		{"a hierarchy has defaults", "GET", room + "/hierarchy", ``, 200, "", "hierarchy !r:example.org from= limit=20 depth=10 suggested=false"},
		{"a hierarchy's settings are read and capped", "GET", room + "/hierarchy?from=h3_2_true&limit=1000&max_depth=2&suggested_only=true", ``, 200, "", "hierarchy !r:example.org from=h3_2_true limit=100 depth=2 suggested=true"},
		{"a hierarchy's depth is capped", "GET", room + "/hierarchy?max_depth=99", ``, 200, "", "hierarchy !r:example.org from= limit=20 depth=10 suggested=false"},
		{"a hierarchy's limit is positive", "GET", room + "/hierarchy?limit=0", ``, 400, "M_INVALID_PARAM", ""},
		{"a hierarchy's depth is not negative", "GET", room + "/hierarchy?max_depth=-1", ``, 400, "M_INVALID_PARAM", ""},
		{"suggested_only is a boolean", "GET", room + "/hierarchy?suggested_only=yes", ``, 400, "M_INVALID_PARAM", ""},
		{"a time is looked up", "GET", room + "/timestamp_to_event?ts=1234&dir=b", ``, 200, "", "ts !r:example.org 1234 b"},
		{"a time needs ts", "GET", room + "/timestamp_to_event?dir=f", ``, 400, "M_MISSING_PARAM", ""},
		{"a time needs dir", "GET", room + "/timestamp_to_event?ts=1", ``, 400, "M_MISSING_PARAM", ""},
		{"ts is a number", "GET", room + "/timestamp_to_event?ts=noon&dir=f", ``, 400, "M_INVALID_PARAM", ""},
		{"dir is f or b", "GET", room + "/timestamp_to_event?ts=1&dir=x", ``, 400, "M_INVALID_PARAM", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &record{}
			acc := newFakeAccounts(rec)
			tok := acc.addUser("alice", "pw")
			f := &fakeDiscovery{}
			h := New(Config{Addr: testAddr}, Backends{Accounts: acc, UserDirectory: f, Hierarchy: f, Timestamps: f}).Handler()
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
				t.Errorf("backend heard %q, want %q", got, tt.call)
			}
		})
	}
}
