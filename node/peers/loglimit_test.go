package peers

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"
)

// countingHandler counts the lines logged through it.
type countingHandler struct{ lines atomic.Int64 }

func (h *countingHandler) Enabled(context.Context, slog.Level) bool  { return true }
func (h *countingHandler) Handle(context.Context, slog.Record) error { h.lines.Add(1); return nil }
func (h *countingHandler) WithAttrs([]slog.Attr) slog.Handler        { return h }
func (h *countingHandler) WithGroup(string) slog.Handler             { return h }

// TestRefusedGossipLogsAreLimited: the 3,069 lines one flood of bad
// gossip wrote become at most 20 a minute, and the next window's first
// line says how many were left out.
func TestRefusedGossipLogsAreLimited(t *testing.T) {
	h := &countingHandler{}
	log := slog.New(h)
	l := newLogLimiter(20, time.Minute)
	for range 3069 {
		l.log(log, slog.LevelInfo, "forged event dropped")
	}
	if got := h.lines.Load(); got != 20 {
		t.Errorf("%d lines logged during the flood, want 20", got)
	}
	// A minute on: the summary, then the line itself.
	l.mu.Lock()
	l.start = l.start.Add(-time.Minute)
	l.mu.Unlock()
	l.log(log, slog.LevelInfo, "forged event dropped")
	if got := h.lines.Load(); got != 22 {
		t.Errorf("%d lines after the window turned, want 22 (a summary and the line)", got)
	}
	if l.suppressed != 0 {
		t.Errorf("the summary did not reset the count")
	}
}
