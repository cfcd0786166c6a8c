package webui

import (
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"
)

// limiter slows guessing: it counts failed attempts per key (a user, a
// client) and, after a few free ones, makes the key wait before its next
// attempt, twice as long after each further failure. An attempt is counted
// as failed when it begins, so that a burst of concurrent guesses is held
// to the free ones too; a success gives its count back.
type limiter struct {
	free    int           // failures allowed before any wait
	base    time.Duration // the first wait
	ceiling time.Duration // the longest wait
	forget  time.Duration // a key idle this long starts afresh
	max     int           // keys tracked; the table's memory bound
	now     func() time.Time

	mu   sync.Mutex
	keys map[string]*attempts
}

type attempts struct {
	fails int
	until time.Time // no attempt before this
	last  time.Time
}

func newLimiter(free int, base, ceiling time.Duration) *limiter {
	return &limiter{
		free: free, base: base, ceiling: ceiling, forget: time.Hour, max: 10000,
		now: time.Now, keys: map[string]*attempts{},
	}
}

// begin asks whether an attempt under all of keys may go ahead. If one of
// them must wait, it returns how long, and counts nothing; otherwise it
// counts the attempt as failed under each key.
func (l *limiter) begin(keys ...string) (wait time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	for _, k := range keys {
		if a := l.keys[k]; a != nil && now.Sub(a.last) < l.forget && now.Before(a.until) {
			wait = max(wait, a.until.Sub(now))
		}
	}
	if wait > 0 {
		return wait
	}
	for _, k := range keys {
		a := l.keys[k]
		if a == nil || now.Sub(a.last) >= l.forget {
			if a == nil {
				l.makeRoom(now)
			}
			a = &attempts{}
			l.keys[k] = a
		}
		a.fails++
		a.last = now
		if a.fails > l.free {
			a.until = now.Add(l.delay(a.fails - l.free))
		}
	}
	return 0
}

// succeeded gives back the failure begin counted under each key.
func (l *limiter) succeeded(keys ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range keys {
		a := l.keys[k]
		if a == nil {
			continue
		}
		if a.fails--; a.fails <= 0 {
			delete(l.keys, k)
		} else if a.fails <= l.free {
			a.until = time.Time{}
		}
	}
}

// reset forgets keys whose secret was just shown to be known: the
// owner's right password, the right code.
func (l *limiter) reset(keys ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range keys {
		delete(l.keys, k)
	}
}

// delay is the wait after the n-th failure beyond the free ones.
func (l *limiter) delay(n int) time.Duration {
	d := l.base
	for i := 1; i < n && d < l.ceiling; i++ {
		d *= 2
	}
	return min(d, l.ceiling)
}

// makeRoom keeps the table under max keys. When it is full it drops the
// keys idle long enough to be forgotten and, if that is not a quarter of
// them, the longest idle, down to three quarters full: a sort now and then
// rather than a scan at every new key. Keys still held back go last, so
// that a guesser cannot free a victim's key by filling the table with
// names of its own.
func (l *limiter) makeRoom(now time.Time) {
	if len(l.keys) < l.max {
		return
	}
	type idle struct {
		key    string
		last   time.Time
		locked bool
	}
	kept := make([]idle, 0, len(l.keys))
	for k, a := range l.keys {
		if now.Sub(a.last) >= l.forget {
			delete(l.keys, k)
			continue
		}
		kept = append(kept, idle{k, a.last, a.until.After(now)})
	}
	target := l.max * 3 / 4
	if len(kept) <= target {
		return
	}
	slices.SortFunc(kept, func(a, b idle) int {
		if a.locked != b.locked {
			if a.locked {
				return 1
			}
			return -1
		}
		return a.last.Compare(b.last)
	})
	for _, e := range kept[:len(kept)-target] {
		delete(l.keys, e.key)
	}
}

func (l *limiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.keys)
}

// guard holds the limiters of the API's guessable secrets.
type guard struct {
	users   *limiter // failed logins per user
	clients *limiter // failed logins per client, whatever the user
	codes   *limiter // wrong registration tokens and claim codes per client
	log     logThrottle
}

func newGuard() *guard {
	return &guard{
		users:   newLimiter(5, time.Second, 10*time.Minute),
		clients: newLimiter(20, time.Second, time.Minute),
		codes:   newLimiter(5, time.Second, 10*time.Minute),
		log:     logThrottle{burst: 10, period: time.Minute},
	}
}

// beginLogin counts a login attempt under its user (if the name is valid)
// and its client, or says how long they must wait.
func (g *guard) beginLogin(user, client string) error {
	var keys []string
	if user != "" {
		keys = append(keys, "user:"+user)
	}
	if wait := g.users.begin(keys...); wait > 0 {
		return errLimited(wait)
	}
	if wait := g.clients.begin(client); wait > 0 {
		g.users.succeeded(keys...)
		return errLimited(wait)
	}
	return nil
}

// loginDone gives back the attempt's count if it did not fail on a wrong
// password: the user's slate is clean after a right one; the client's
// other failures (other users' names) still count.
func (g *guard) loginDone(user, client string, ok bool) {
	if ok {
		g.users.reset("user:" + user)
	} else if user != "" {
		g.users.succeeded("user:" + user)
	}
	g.clients.succeeded(client)
}

// errLimited is the spec's answer to a client that must wait.
func errLimited(wait time.Duration) *Error {
	ms := max(wait.Milliseconds(), 1)
	e := Errorf(http.StatusTooManyRequests, "M_LIMIT_EXCEEDED", "too many failed attempts; try again in %s", wait.Round(time.Second).String())
	e.Extra = map[string]any{"retry_after_ms": ms}
	return e
}

// clientKey names the client behind a request for the limiters: its IP
// address, every loopback address as one (a local process can pick any
// of 127.0.0.0/8), and an IPv6 address by its /64.
func clientKey(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip := net.ParseIP(host)
	switch {
	case ip == nil:
		return "client:" + host
	case ip.IsLoopback():
		return "client:loopback"
	case ip.To4() == nil:
		return "client:" + ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
	default:
		return "client:" + ip.String()
	}
}

// logThrottle lets at most burst lines through per period, and says in
// the next line that does how many it held back.
type logThrottle struct {
	burst  int
	period time.Duration

	mu         sync.Mutex
	start      time.Time
	n          int
	suppressed int
}

func (t *logThrottle) log(l *slog.Logger, msg string, args ...any) {
	t.mu.Lock()
	now := time.Now()
	if now.Sub(t.start) >= t.period {
		t.start, t.n = now, 0
	}
	if t.n >= t.burst {
		t.suppressed++
		t.mu.Unlock()
		return
	}
	t.n++
	if t.suppressed > 0 {
		args = append(args, "suppressed", t.suppressed) // lines held back since the last one
		t.suppressed = 0
	}
	t.mu.Unlock()
	l.Warn(msg, args...)
}
