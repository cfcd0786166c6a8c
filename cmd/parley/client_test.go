package main

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// TestTheCommandLineWaitsForAStartingDaemon: a daemon answers 503 while it
// loads its rooms; parley invite and join try again instead of failing.
func TestTheCommandLineWaitsForAStartingDaemon(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) <= 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte(`{"errcode":"M_UNKNOWN","error":"the node is starting"}`))
			return
		}
		w.Write([]byte(`{"room_id":"!r"}`))
	}))
	defer srv.Close()
	c := &apiClient{base: srv.URL, token: "t", http: &http.Client{Timeout: 10 * time.Second}}
	var out struct {
		RoomID string `json:"room_id"`
	}
	if err := c.call(http.MethodPost, "/_parley/v1/join_link", map[string]string{"link": "x"}, &out); err != nil {
		t.Fatalf("call: %v", err)
	}
	if out.RoomID != "!r" || calls.Load() != 4 {
		t.Fatalf("got %q after %d calls, want !r after 4", out.RoomID, calls.Load())
	}
}
