package peers

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// logLimiter lets at most max lines through per window and then counts the
// rest, which the first line of a later window reports: a flood of bad
// gossip (3,069 lines in one attack) must not flood the log too.
type logLimiter struct {
	max    int
	window time.Duration

	mu         sync.Mutex
	start      time.Time
	n          int
	suppressed int
}

func newLogLimiter(max int, window time.Duration) *logLimiter {
	return &logLimiter{max: max, window: window}
}

// log writes the line if the window allows it.
func (l *logLimiter) log(log *slog.Logger, level slog.Level, msg string, args ...any) {
	l.mu.Lock()
	now := time.Now()
	if now.Sub(l.start) >= l.window {
		if l.suppressed > 0 {
			log.Log(context.Background(), slog.LevelWarn, "similar log lines suppressed", "count", l.suppressed, "over", now.Sub(l.start).Round(time.Second))
		}
		l.start, l.n, l.suppressed = now, 0, 0
	}
	ok := l.n < l.max
	if ok {
		l.n++
	} else {
		l.suppressed++
	}
	l.mu.Unlock()
	if ok {
		log.Log(context.Background(), level, msg, args...)
	}
}
