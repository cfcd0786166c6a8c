package testkit

import (
	"context"
	"testing"
	"time"

	"maunium.net/go/mautrix"
)

// Syncer follows one user's /sync stream through a real Matrix client, the
// way a client app does: each request carries the previous response's
// next_batch, so every response holds only what is new.
type Syncer struct {
	// Client is the user's client.
	Client *mautrix.Client
	// Since is the next_batch token of the last response, empty before the
	// first: the next request is then an initial sync.
	Since  string
	filter string
}

// NewSyncer stores a filter with a timeline limit of 100 for c's user, as
// real clients do, so that bursts arrive whole rather than as limited
// timelines. It fails the test if the server refuses the filter.
func NewSyncer(t testing.TB, ctx context.Context, c *mautrix.Client) *Syncer {
	t.Helper()
	f, err := c.CreateFilter(ctx, &mautrix.Filter{Room: &mautrix.RoomFilter{Timeline: &mautrix.FilterPart{Limit: 100}}})
	if err != nil {
		t.Fatalf("create filter for %s: %v", c.UserID, err)
	}
	return &Syncer{Client: c, filter: f.FilterID}
}

// Next long-polls once, waiting up to timeout on the server for something
// new (0 returns at once), and moves Since on.
func (s *Syncer) Next(ctx context.Context, timeout time.Duration) (*mautrix.RespSync, error) {
	resp, err := s.Client.SyncRequest(ctx, int(timeout/time.Millisecond), s.Since, s.filter, false, "")
	if err != nil {
		return nil, err
	}
	s.Since = resp.NextBatch
	return resp, nil
}

// Until syncs until cond returns true for a response, failing the test if
// that has not happened within timeout or a request fails. cond sees every
// response, in order, so it may accumulate what it has seen across calls.
func (s *Syncer) Until(t testing.TB, timeout time.Duration, what string, cond func(*mautrix.RespSync) bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		resp, err := s.Next(ctx, 2*time.Second)
		if err != nil {
			if ctx.Err() != nil {
				t.Fatalf("timed out after %v waiting for %s: %v", timeout, what, err)
			}
			t.Fatalf("sync waiting for %s: %v", what, err)
		}
		if cond(resp) {
			return
		}
	}
}
