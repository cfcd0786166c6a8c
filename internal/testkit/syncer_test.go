package testkit

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"
)

// syncServer answers a filter upload and /sync as a homeserver would, for
// as little as Syncer uses: each /sync answers next_batch "s<n+1>" to since
// "s<n>", and records what it was asked.
type syncServer struct {
	mu    sync.Mutex
	limit int      // the timeline limit of the uploaded filter
	asked []string // since, filter of each /sync
}

func (s *syncServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/_matrix/client/v3/user/@u:x/filter":
		var f mautrix.Filter
		if err := json.NewDecoder(r.Body).Decode(&f); err != nil || f.Room == nil || f.Room.Timeline == nil {
			http.Error(w, `{"errcode":"M_BAD_JSON"}`, http.StatusBadRequest)
			return
		}
		s.limit = f.Room.Timeline.Limit
		fmt.Fprint(w, `{"filter_id":"f1"}`)
	case r.Method == http.MethodGet && r.URL.Path == "/_matrix/client/v3/sync":
		since := r.URL.Query().Get("since")
		s.asked = append(s.asked, since+","+r.URL.Query().Get("filter"))
		n := 0
		fmt.Sscanf(since, "s%d", &n)
		fmt.Fprintf(w, `{"next_batch":"s%d"}`, n+1)
	default:
		http.NotFound(w, r)
	}
}

func TestSyncerFollowsTheStreamWithItsFilter(t *testing.T) {
	srv := &syncServer{}
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	c, err := mautrix.NewClient(hs.URL, "@u:x", "token")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s := NewSyncer(t, ctx, c)
	if srv.limit != 100 {
		t.Errorf("filter's timeline limit %d, want 100", srv.limit)
	}
	if _, err := s.Next(ctx, 0); err != nil {
		t.Fatal(err)
	}
	calls := 0
	s.Until(t, time.Minute, "the third batch", func(r *mautrix.RespSync) bool {
		calls++
		return r.NextBatch == "s3"
	})
	if calls != 2 || s.Since != "s3" {
		t.Errorf("Until saw %d responses and left Since at %q, want 2 and s3", calls, s.Since)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	want := []string{",f1", "s1,f1", "s2,f1"}
	if fmt.Sprint(srv.asked) != fmt.Sprint(want) {
		t.Errorf("asked %q, want %q", srv.asked, want)
	}
}

func TestSyncerUntilFailsWhenTheStreamFails(t *testing.T) {
	srv := &syncServer{}
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	c, err := mautrix.NewClient(hs.URL, "@u:x", "token")
	if err != nil {
		t.Fatal(err)
	}
	s := NewSyncer(t, context.Background(), c)
	hs.Close()
	r := &recorder{TB: t}
	r.run(func() {
		s.Until(r, time.Minute, "anything", func(*mautrix.RespSync) bool { return true })
	})
	if f := r.failures(); !r.fatal || len(f) != 1 {
		t.Errorf("failures %q after the server went away, want one", f)
	}
}
