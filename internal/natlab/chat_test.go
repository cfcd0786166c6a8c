//go:build linux

package natlab

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/parley-p2p/parley/internal/testkit"
	"github.com/parley-p2p/parley/node/links"
)

// user is one person on one lab daemon: a Matrix client over the daemon's
// namespace, and what its /sync stream has delivered.
type user struct {
	d *Daemon
	c *mautrix.Client

	mu   sync.Mutex
	seen map[string]time.Time // message body -> when /sync returned it
	stop func()
}

// register makes the daemon's first account (the claim code is the
// registration token) and follows its /sync stream until the test ends.
func register(t *testing.T, ctx context.Context, d *Daemon, name string) *user {
	t.Helper()
	c, err := mautrix.NewClient(d.URL, "", "")
	if err != nil {
		t.Fatal(err)
	}
	c.Client = d.HTTPClient()
	req := &mautrix.ReqRegister[any]{Username: name, Password: "password-" + name}
	_, uia, err := c.Register(ctx, req)
	if uia == nil {
		t.Fatalf("register %s on %s: no user-interactive auth: %v", name, d.Name, err)
	}
	req.Auth = map[string]any{"type": "m.login.registration_token", "token": ClaimCode, "session": uia.Session}
	resp, _, err := c.Register(ctx, req)
	if err != nil {
		t.Fatalf("register %s on %s: %v", name, d.Name, err)
	}
	c.SetCredentials(resp.UserID, resp.AccessToken)
	c.DeviceID = resp.DeviceID
	u := &user{d: d, c: c, seen: map[string]time.Time{}}
	u.follow(t, ctx)
	return u
}

// follow long-polls /sync in the background, noting when each message body
// first arrives.
func (u *user) follow(t *testing.T, ctx context.Context) {
	s := testkit.NewSyncer(t, ctx, u.c)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			resp, err := s.Next(ctx, 10*time.Second)
			now := time.Now()
			if err != nil {
				if ctx.Err() == nil {
					time.Sleep(50 * time.Millisecond) // a retry interval while a daemon restarts
				}
				continue
			}
			u.mu.Lock()
			for _, jr := range resp.Rooms.Join {
				for _, ev := range jr.Timeline.Events {
					if body, ok := messageBody(ev); ok {
						if _, dup := u.seen[body]; !dup {
							u.seen[body] = now
						}
					}
				}
			}
			u.mu.Unlock()
		}
	}()
	u.stop = func() { cancel(); <-done }
	t.Cleanup(u.stop)
}

// moveTo points the user at a restarted daemon, with the same session.
func (u *user) moveTo(t *testing.T, ctx context.Context, d *Daemon) {
	t.Helper()
	u.stop()
	u.d = d
	base, err := url.Parse(d.URL)
	if err != nil {
		t.Fatal(err)
	}
	u.c.HomeserverURL = base
	u.c.Client = d.HTTPClient()
	u.follow(t, ctx)
}

func (u *user) arrived(body string) (time.Time, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	at, ok := u.seen[body]
	return at, ok
}

func messageBody(ev *event.Event) (string, bool) {
	if ev.Type != event.EventMessage {
		return "", false
	}
	if err := ev.Content.ParseRaw(ev.Type); err != nil && !errors.Is(err, event.ErrContentAlreadyParsed) {
		return "", false
	}
	return ev.Content.AsMessage().Body, true
}

// createRoom makes a private room.
func createRoom(t *testing.T, ctx context.Context, u *user, name string) id.RoomID {
	t.Helper()
	resp, err := u.c.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Name: name})
	if err != nil {
		t.Fatalf("%s createRoom: %v", u.d.Name, err)
	}
	return resp.RoomID
}

// makeLink makes an invite link to the room and says what kinds of address
// it carries (public, circuit, lan, loopback).
func makeLink(t *testing.T, ctx context.Context, u *user, room id.RoomID, net string) (link string, kinds []string) {
	t.Helper()
	var out struct {
		Link string `json:"link"`
	}
	if _, err := u.c.MakeRequest(ctx, "POST", u.c.BuildURL(mautrix.BaseURLPath{"_parley", "v1", "rooms", room, "links"}), map[string]any{}, &out); err != nil {
		t.Fatalf("%s make link: %v", u.d.Name, err)
	}
	p, err := links.Parse(out.Link)
	if err != nil {
		t.Fatalf("%s made a link that does not parse: %v", u.d.Name, err)
	}
	for _, v := range p.Via {
		for _, a := range v.Addrs {
			k := addrKind(a, net)
			if !slices.Contains(kinds, k) {
				kinds = append(kinds, k)
			}
		}
	}
	slices.Sort(kinds)
	return out.Link, kinds
}

func addrKind(a, net string) string {
	switch {
	case strings.Contains(a, "/p2p-circuit"):
		return "circuit"
	case strings.HasPrefix(a, "/ip4/"+net+"."):
		return "public"
	case strings.HasPrefix(a, "/ip4/127.") || strings.HasPrefix(a, "/ip6/::1/"):
		return "loopback"
	case strings.HasPrefix(a, "/ip4/192.168.") || strings.HasPrefix(a, "/ip4/10."):
		return "lan"
	}
	return "other"
}

// joinLink joins the room through the link, and waits until the inviter's
// node sees the joiner in the room; it returns how long that took.
func joinLink(t *testing.T, ctx context.Context, joiner, inviter *user, link string, room id.RoomID) time.Duration {
	t.Helper()
	start := time.Now()
	var out struct {
		RoomID id.RoomID `json:"room_id"`
	}
	jctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if _, err := joiner.c.MakeRequest(jctx, "POST", joiner.c.BuildURL(mautrix.BaseURLPath{"_parley", "v1", "join_link"}), map[string]string{"link": link}, &out); err != nil {
		t.Fatalf("%s join by link: %v", joiner.d.Name, err)
	}
	if out.RoomID != room {
		t.Fatalf("%s joined %s, want %s", joiner.d.Name, out.RoomID, room)
	}
	testkit.WaitFor(t, 30*time.Second, inviter.d.Name+" to see "+joiner.d.Name+" joined", func() bool {
		m, err := inviter.c.JoinedMembers(ctx, room)
		if err != nil {
			return false
		}
		_, ok := m.Joined[joiner.c.UserID]
		return ok
	})
	return time.Since(start)
}

// exchange sends n messages from a to b, then n from b to a, each after
// the one before has reached the other side's /sync, and returns each
// message's time from send to arrival. A message that has not arrived
// within each fails the test.
func exchange(t *testing.T, ctx context.Context, a, b *user, room id.RoomID, n int, tag string, each time.Duration) []time.Duration {
	t.Helper()
	var lat []time.Duration
	for _, dir := range [][2]*user{{a, b}, {b, a}} {
		from, to := dir[0], dir[1]
		for i := range n {
			body := fmt.Sprintf("%s %s->%s #%d", tag, from.d.Name, to.d.Name, i)
			start := time.Now()
			if _, err := from.c.SendText(ctx, room, body); err != nil {
				t.Fatalf("%s send: %v", from.d.Name, err)
			}
			var at time.Time
			if !testkit.Eventually(each, func() bool {
				var ok bool
				at, ok = to.arrived(body)
				return ok
			}) {
				t.Fatalf("%q did not reach %s within %v of its send (messages so far: %v)", body, to.d.Name, each, summarize(lat))
			}
			lat = append(lat, at.Sub(start))
		}
	}
	return lat
}

// stats are a set of message times.
type stats struct{ p50, max time.Duration }

func summarize(lat []time.Duration) stats {
	if len(lat) == 0 {
		return stats{}
	}
	s := slices.Clone(lat)
	slices.Sort(s)
	return stats{p50: s[len(s)/2], max: s[len(s)-1]}
}

func (s stats) String() string {
	return fmt.Sprintf("p50 %v max %v", s.p50.Round(100*time.Microsecond), s.max.Round(100*time.Microsecond))
}

// peersOf lists the peer IDs the daemon's status says it is connected to.
func peersOf(ctx context.Context, d *Daemon) []string {
	st, err := d.Status(ctx)
	if err != nil {
		return nil
	}
	var out []string
	if ps, ok := st["peers"].([]any); ok {
		for _, p := range ps {
			if s, ok := p.(string); ok {
				out = append(out, s)
			}
		}
	}
	return out
}

// hasCircuitAddr reports whether the daemon announces a relay circuit
// address (it holds a reservation).
func hasCircuitAddr(ctx context.Context, d *Daemon) bool {
	st, err := d.Status(ctx)
	if err != nil {
		return false
	}
	if r, ok := st["relayed"].(bool); ok && r {
		return true
	}
	as, _ := st["addrs"].([]any)
	for _, a := range as {
		if s, ok := a.(string); ok && strings.Contains(s, "/p2p-circuit") {
			return true
		}
	}
	return false
}

// findKey finds the first value under key anywhere in decoded JSON.
func findKey(v any, key string) (any, bool) {
	switch x := v.(type) {
	case map[string]any:
		if got, ok := x[key]; ok {
			return got, true
		}
		for _, k := range slices.Sorted(maps.Keys(x)) {
			if got, ok := findKey(x[k], key); ok {
				return got, true
			}
		}
	case []any:
		for _, e := range x {
			if got, ok := findKey(e, key); ok {
				return got, true
			}
		}
	}
	return nil, false
}

// statusPath is how the daemon's status says it reaches the peer
// ("direct", "relayed", "offline"), or "?" where its status does not say
// (a binary without per-member paths).
func statusPath(ctx context.Context, d *Daemon, peerID string) string {
	st, err := d.Status(ctx)
	if err != nil {
		return "?"
	}
	ms, _ := st["members"].([]any)
	for _, m := range ms {
		if Lookup(m, "peer") == peerID {
			if p, ok := Lookup(m, "path").(string); ok {
				return p
			}
		}
	}
	return "?"
}

// memberRelay is the daemon's member relay status (running, reservations,
// refused), or nil where its status has none.
func memberRelay(ctx context.Context, d *Daemon) map[string]any {
	st, err := d.Status(ctx)
	if err != nil {
		return nil
	}
	v, _ := findKey(st, "member_relay")
	m, _ := v.(map[string]any)
	return m
}

// number reads a JSON number from a decoded map; 0 if absent.
func number(m map[string]any, key string) float64 {
	f, _ := m[key].(float64)
	return f
}

// statusOf is the daemon's status, or nil if it does not answer.
func statusOf(ctx context.Context, d *Daemon) map[string]any {
	st, err := d.Status(ctx)
	if err != nil {
		return nil
	}
	return st
}

// relayedClosed is how many relayed connections the daemon has closed once
// a direct one existed (network.paths.relayed_closed); 0 if unknown.
func relayedClosed(ctx context.Context, d *Daemon) float64 {
	v, _ := findKey(statusOf(ctx, d), "relayed_closed")
	f, _ := v.(float64)
	return f
}
