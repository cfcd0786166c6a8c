package webui

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
)

// fakeRelations records what reaches the relations role; it holds nothing.
type fakeRelations struct{ calls []string }

func (f *fakeRelations) Relations(_ context.Context, s *Session, req RelationsRequest) (*RelationsResponse, error) {
	f.calls = append(f.calls, fmt.Sprintf("relations %s %s rel=%s type=%s from=%s to=%s limit=%d dir=%s recurse=%v",
		req.RoomID, req.EventID, req.RelType, req.EventType, req.From, req.To, req.Limit, req.Dir, req.Recurse))
	return &RelationsResponse{}, nil
}

func (f *fakeRelations) Threads(_ context.Context, s *Session, req ThreadsRequest) (*ThreadsResponse, error) {
	f.calls = append(f.calls, fmt.Sprintf("threads %s participated=%v from=%s limit=%d", req.RoomID, req.Participated, req.From, req.Limit))
	return &ThreadsResponse{}, nil
}

func TestRelationsRequests(t *testing.T) {
	const room = "/_matrix/client/v1/rooms/%21r:example.org"
	tests := []struct {
		name, path string
		status     int
		code       string // for errors
		call       string // what the backend must hear; "" for nothing
	}{
		{"relations have defaults", room + "/relations/$p", 200, "", "relations !r:example.org $p rel= type= from= to= limit=50 dir=b recurse=false"},
		{"a relation type narrows them", room + "/relations/$p/m.annotation", 200, "", "relations !r:example.org $p rel=m.annotation type= from= to= limit=50 dir=b recurse=false"},
		{"and an event type", room + "/relations/$p/m.annotation/m.reaction", 200, "", "relations !r:example.org $p rel=m.annotation type=m.reaction from= to= limit=50 dir=b recurse=false"},
		{"settings are read and the limit capped", room + "/relations/$p?from=t9&to=t2&limit=500&dir=f&recurse=true", 200, "", "relations !r:example.org $p rel= type= from=t9 to=t2 limit=100 dir=f recurse=true"},
		{"a limit is positive", room + "/relations/$p?limit=0", 400, "M_INVALID_PARAM", ""},
		{"dir is b or f", room + "/relations/$p?dir=x", 400, "M_INVALID_PARAM", ""},
		{"recurse is a boolean", room + "/relations/$p?recurse=1", 400, "M_INVALID_PARAM", ""},
		{"threads have defaults", room + "/threads", 200, "", "threads !r:example.org participated=false from= limit=50"},
		{"threads' settings are read and the limit capped", room + "/threads?include=participated&from=t5&limit=1000", 200, "", "threads !r:example.org participated=true from=t5 limit=100"},
		{"include is all or participated", room + "/threads?include=mine", 400, "M_INVALID_PARAM", ""},
		{"threads' limit is positive", room + "/threads?limit=-3", 400, "M_INVALID_PARAM", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &record{}
			acc := newFakeAccounts(rec)
			tok := acc.addUser("alice", "pw")
			f := &fakeRelations{}
			h := New(Config{Addr: testAddr}, Backends{Accounts: acc, Relations: f}).Handler()
			r := httptest.NewRequest("GET", tt.path, strings.NewReader(""))
			r.Host = testAddr
			r.Header.Set("Authorization", "Bearer "+tok)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if tt.code != "" {
				wantError(t, w, tt.status, tt.code)
			} else {
				wantStatus(t, w, tt.status)
				if body := w.Body.String(); !strings.Contains(body, `"chunk":[]`) {
					t.Errorf("answer %s lacks an empty chunk", body)
				}
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

// Without the role the routes are not served.
func TestRelationsWithoutTheRoleAreUnrecognized(t *testing.T) {
	h := newHarness(t)
	tok := h.acc.addUser("alice", "pw")
	w := h.do("GET", "/_matrix/client/v1/rooms/%21r:example.org/threads", "", token(tok))
	wantError(t, w, 404, "M_UNRECOGNIZED")
}
