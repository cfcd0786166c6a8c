//go:build unix

package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/parley-p2p/parley/internal/testkit"
)

// catchUpTimeout bounds how long a user may wait, once their node is back,
// before their client shows every message sent while it was away. It is
// generous so that a slow machine does not fail the tests; they log how
// long it actually took.
const catchUpTimeout = 60 * time.Second

// TestFrozenNodeCatchesUp freezes Carol's process (SIGSTOP, as a laptop lid
// or a debugger would) while Alice and Bob send 100 messages each at once,
// then thaws it: Alice and Bob see all 200 while Carol's node is frozen,
// and Carol sees all 200 through /messages soon after it runs again.
func TestFrozenNodeCatchesUp(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three parley processes")
	}
	parley.Path(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	a := startParley(t, "A", nodeArgs(t.TempDir())...)
	infoA := a.waitStarted()
	b := startParley(t, "B", append(nodeArgs(t.TempDir()), "--bootstrap", infoA.Addrs[0])...)
	c := startParley(t, "C", append(nodeArgs(t.TempDir()), "--bootstrap", infoA.Addrs[0])...)
	infoB, infoC := b.waitStarted(), c.waitStarted()
	alice := register(t, ctx, infoA, "alice")
	bob := register(t, ctx, infoB, "bob")
	carol := register(t, ctx, infoC, "carol")
	room := shareRoom(t, ctx, alice, bob, carol)

	freeze(t, c)
	want := sendAtOnce(t, ctx, room, 100, alice, bob)
	for _, u := range []*mautrix.Client{alice, bob} {
		took := waitForMessages(t, ctx, u, room, want)
		t.Logf("%s had all %d messages %v after the last send", u.UserID, len(want), took.Round(time.Millisecond))
	}

	thaw(t, c)
	took := waitForMessages(t, ctx, carol, room, want)
	t.Logf("carol had all %d messages %.2f s after SIGCONT", len(want), took.Seconds())
	for _, u := range []*mautrix.Client{alice, bob, carol} {
		checkHistory(t, ctx, u, room, want)
	}
	stopAll(a, b, c)
}

// TestKilledNodeCatchesUpAfterRestart kills Carol's process (SIGKILL, a
// crash or a power cut) while Alice and Bob send 100 messages each, then
// starts it again on the same data directory and ports, bootstrapping from
// Alice's node as before: Carol's access token still works and she sees
// all 200 messages.
func TestKilledNodeCatchesUpAfterRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three parley processes")
	}
	parley.Path(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	a := startParley(t, "A", nodeArgs(t.TempDir())...)
	infoA := a.waitStarted()
	dirC := t.TempDir()
	b := startParley(t, "B", append(nodeArgs(t.TempDir()), "--bootstrap", infoA.Addrs[0])...)
	c := startParley(t, "C", append(nodeArgs(dirC), "--bootstrap", infoA.Addrs[0])...)
	infoB, infoC := b.waitStarted(), c.waitStarted()
	alice := register(t, ctx, infoA, "alice")
	bob := register(t, ctx, infoB, "bob")
	carol := register(t, ctx, infoC, "carol")
	room := shareRoom(t, ctx, alice, bob, carol)

	c.kill()
	want := sendAtOnce(t, ctx, room, 100, alice, bob)
	for _, u := range []*mautrix.Client{alice, bob} {
		took := waitForMessages(t, ctx, u, room, want)
		t.Logf("%s had all %d messages %v after the last send", u.UserID, len(want), took.Round(time.Millisecond))
	}

	restarted := time.Now()
	c2 := startParley(t, "C (restarted)", append(restartArgs(dirC, infoC), "--bootstrap", infoA.Addrs[0])...)
	checkSameNode(t, infoC, c2.waitStarted())
	up := time.Since(restarted)
	took := waitForMessages(t, ctx, carol, room, want)
	t.Logf("restarted C was up in %.2f s; carol had all %d messages %.2f s after that (%.2f s after the restart began)",
		up.Seconds(), len(want), took.Seconds(), (up + took).Seconds())
	for _, u := range []*mautrix.Client{alice, bob, carol} {
		checkHistory(t, ctx, u, room, want)
	}
	stopAll(a, b, c2)
}

// TestCrashLosesNoAcknowledgedEvent sends 50 messages one after another as
// Alice and kills her node the moment the last send has returned its event
// ID. Started again on the same data directory, her node still has every
// acknowledged event, and every one of them reaches Bob's node.
func TestCrashLosesNoAcknowledgedEvent(t *testing.T) {
	if testing.Short() {
		t.Skip("starts parley processes")
	}
	parley.Path(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	dirA := t.TempDir()
	a := startParley(t, "A", nodeArgs(dirA)...)
	infoA := a.waitStarted()
	b := startParley(t, "B", append(nodeArgs(t.TempDir()), "--bootstrap", infoA.Addrs[0])...)
	infoB := b.waitStarted()
	alice := register(t, ctx, infoA, "alice")
	bob := register(t, ctx, infoB, "bob")
	room := shareRoom(t, ctx, alice, bob)

	const n = 50
	acked := make([]id.EventID, 0, n)
	want := map[string]bool{}
	for i := range n {
		body := fmt.Sprintf("alice #%d", i)
		resp, err := alice.SendText(ctx, room, body)
		if err != nil {
			t.Fatalf("send %q: %v", body, err)
		}
		acked = append(acked, resp.EventID)
		want[body] = true
	}
	a.kill()

	// A comes back as a node with fixed ports would, with Bob's node as
	// its bootstrap peer so that it need not wait for B to redial it.
	restarted := time.Now()
	a2 := startParley(t, "A (restarted)", append(restartArgs(dirA, infoA), "--bootstrap", infoB.Addrs[0])...)
	checkSameNode(t, infoA, a2.waitStarted())
	up := time.Since(restarted)
	for i, ev := range acked {
		if _, err := alice.GetEvent(ctx, room, ev); err != nil {
			t.Errorf("acknowledged event %s (alice #%d) is gone from A after the crash: %v", ev, i, err)
		}
	}
	h, err := readHistory(ctx, alice, room)
	if err != nil {
		t.Fatalf("alice /messages on restarted A: %v", err)
	}
	if missing := missingEvents(h, acked); len(missing) > 0 {
		t.Errorf("alice's /messages on restarted A lacks %d of %d acknowledged events: %s", len(missing), n, abbreviate(missing))
	}

	took := waitForMessages(t, ctx, bob, room, want)
	t.Logf("restarted A was up in %.2f s; bob had all %d acknowledged messages %.2f s after that", up.Seconds(), n, took.Seconds())
	h, err = readHistory(ctx, bob, room)
	if err != nil {
		t.Fatalf("bob /messages: %v", err)
	}
	if missing := missingEvents(h, acked); len(missing) > 0 {
		t.Errorf("bob's /messages has the bodies but not the acknowledged event IDs %s", abbreviate(missing))
	}
	for _, ev := range acked {
		if _, err := bob.GetEvent(ctx, room, ev); err != nil {
			t.Errorf("bob GET /event/%s on B: %v", ev, err)
		}
	}
	checkHistory(t, ctx, alice, room, want)
	checkHistory(t, ctx, bob, room, want)
	stopAll(a2, b)
}

// freeze stops the process with SIGSTOP. A cleanup sends SIGCONT, before
// the process's own cleanup sends SIGTERM, in case the test ends first.
func freeze(t *testing.T, p *parleyProc) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatalf("SIGSTOP %s: %v", p.name, err)
	}
	t.Cleanup(func() { p.cmd.Process.Signal(syscall.SIGCONT) })
	t.Logf("%s frozen", p.name)
}

// thaw lets a frozen process run again.
func thaw(t *testing.T, p *parleyProc) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatalf("SIGCONT %s: %v", p.name, err)
	}
	t.Logf("%s thawed", p.name)
}

// restartArgs start a node again on dataDir with the HTTP and libp2p ports
// it had before, as a node configured with fixed ports comes back.
func restartArgs(dataDir string, before startInfo) []string {
	args := []string{"--data", dataDir, "--http", strings.TrimPrefix(before.URL, "http://"), "--no-mdns", "--no-port-map"}
	for _, a := range before.Addrs {
		listen, _, _ := strings.Cut(a, "/p2p/")
		args = append(args, "--listen", listen)
	}
	return args
}

// checkSameNode fails the test unless a restarted node came back with the
// identity and client URL it had, so clients and peers can find it again.
func checkSameNode(t *testing.T, before, after startInfo) {
	t.Helper()
	if after.PeerID != before.PeerID || after.ServerName != before.ServerName {
		t.Fatalf("restarted as %s (%s), was %s (%s)", after.ServerName, after.PeerID, before.ServerName, before.PeerID)
	}
	if after.URL != before.URL {
		t.Fatalf("restarted with client API at %s, was %s", after.URL, before.URL)
	}
}

// shareRoom has owner create a private room and invite the others by user
// ID; each waits for the invite in /sync and joins. It returns once every
// user's node lists all of them as joined.
func shareRoom(t *testing.T, ctx context.Context, owner *mautrix.Client, others ...*mautrix.Client) id.RoomID {
	t.Helper()
	resp, err := owner.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Name: "Durability"})
	if err != nil {
		t.Fatalf("createRoom: %v", err)
	}
	room := resp.RoomID
	for _, u := range others {
		if _, err := owner.InviteUser(ctx, room, &mautrix.ReqInviteUser{UserID: u.UserID}); err != nil {
			t.Fatalf("invite %s: %v", u.UserID, err)
		}
	}
	for _, u := range others {
		testkit.NewSyncer(t, ctx, u).Until(t, 30*time.Second, string(u.UserID)+"'s invite", func(r *mautrix.RespSync) bool {
			_, ok := r.Rooms.Invite[room]
			return ok
		})
		if _, err := u.JoinRoomByID(ctx, room); err != nil {
			t.Fatalf("%s join: %v", u.UserID, err)
		}
	}
	everyone := append([]*mautrix.Client{owner}, others...)
	want := userIDs(everyone)
	for _, u := range everyone {
		testkit.WaitFor(t, 30*time.Second, string(u.UserID)+" to see everyone joined", func() bool {
			got, err := joinedMembers(ctx, u, room)
			return err == nil && slices.Equal(got, want)
		})
	}
	return room
}

// sendAtOnce has every sender send n messages, one after another, all
// senders at the same time, and returns the bodies sent ("alice #7").
func sendAtOnce(t *testing.T, ctx context.Context, room id.RoomID, n int, senders ...*mautrix.Client) map[string]bool {
	t.Helper()
	start := time.Now()
	sent := map[string]bool{}
	var wg sync.WaitGroup
	errs := make(chan error, len(senders))
	for _, u := range senders {
		for i := range n {
			sent[fmt.Sprintf("%s #%d", u.UserID.Localpart(), i)] = true
		}
		wg.Go(func() {
			for i := range n {
				if _, err := u.SendText(ctx, room, fmt.Sprintf("%s #%d", u.UserID.Localpart(), i)); err != nil {
					errs <- fmt.Errorf("%s send #%d: %w", u.UserID, i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("%d messages sent in %v", len(sent), time.Since(start).Round(time.Millisecond))
	return sent
}

// history is a room's timeline as a client reads it through /messages.
type history struct {
	bodies map[string]int      // message body → how often it appears
	events map[id.EventID]bool // every event ID in the timeline
}

// readHistoryPageLimit bounds how many pages readHistory follows, so that
// a server whose `end` token never runs out fails the test rather than
// hangs it.
const readHistoryPageLimit = 1000

// readHistory pages GET /rooms/{room}/messages backwards from the end of
// the room, 100 events a page, following `end` until the server leaves it
// out: what a client that scrolls to the top has seen.
func readHistory(ctx context.Context, c *mautrix.Client, room id.RoomID) (history, error) {
	h := history{bodies: map[string]int{}, events: map[id.EventID]bool{}}
	from := ""
	for range readHistoryPageLimit {
		resp, err := c.Messages(ctx, room, from, "", mautrix.DirectionBackward, nil, 100)
		if err != nil {
			return h, fmt.Errorf("%s /messages from %q: %w", c.UserID, from, err)
		}
		for _, ev := range resp.Chunk {
			h.events[ev.ID] = true
			if body, ok := messageBody(ev); ok {
				h.bodies[body]++
			}
		}
		if resp.End == "" {
			return h, nil
		}
		if resp.End == from {
			return h, fmt.Errorf("%s /messages: end token %q does not move", c.UserID, from)
		}
		from = resp.End
	}
	return h, fmt.Errorf("%s /messages: still more after %d pages", c.UserID, readHistoryPageLimit)
}

// waitForMessages reads c's history of the room until it holds every body
// in want and returns how long that took. After catchUpTimeout it fails
// the test with what is still missing.
func waitForMessages(t *testing.T, ctx context.Context, c *mautrix.Client, room id.RoomID, want map[string]bool) time.Duration {
	t.Helper()
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, catchUpTimeout)
	defer cancel()
	var lastErr error
	var missing []string
	for {
		h, err := readHistory(ctx, c, room)
		if err == nil {
			missing = missing[:0]
			for body := range want {
				if h.bodies[body] == 0 {
					missing = append(missing, body)
				}
			}
			if len(missing) == 0 {
				return time.Since(start)
			}
		} else if ctx.Err() == nil {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			slices.Sort(missing)
			t.Fatalf("%s still lacks %d of %d messages after %v: %s (last /messages error: %v)",
				c.UserID, len(missing), len(want), catchUpTimeout, abbreviate(missing), lastErr)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// checkHistory fails the test unless c's history of the room has each
// body in want exactly once and no other message.
func checkHistory(t *testing.T, ctx context.Context, c *mautrix.Client, room id.RoomID, want map[string]bool) {
	t.Helper()
	h, err := readHistory(ctx, c, room)
	if err != nil {
		t.Error(err)
		return
	}
	var missing, extra, doubled []string
	for body := range want {
		if h.bodies[body] == 0 {
			missing = append(missing, body)
		}
	}
	for body, count := range h.bodies {
		if !want[body] {
			extra = append(extra, body)
		}
		if count > 1 {
			doubled = append(doubled, fmt.Sprintf("%s ×%d", body, count))
		}
	}
	for _, p := range []struct {
		what string
		list []string
	}{{"lacks", missing}, {"has unexpected", extra}, {"has more than once", doubled}} {
		if len(p.list) > 0 {
			slices.Sort(p.list)
			t.Errorf("%s's /messages %s %d messages: %s", c.UserID, p.what, len(p.list), abbreviate(p.list))
		}
	}
}

// missingEvents lists the events of ids that h lacks.
func missingEvents(h history, ids []id.EventID) []string {
	var out []string
	for _, ev := range ids {
		if !h.events[ev] {
			out = append(out, string(ev))
		}
	}
	return out
}

// abbreviate joins a list for a failure message, keeping it readable when
// most of 200 messages are missing.
func abbreviate(list []string) string {
	const keep = 12
	if len(list) <= keep {
		return strings.Join(list, ", ")
	}
	return strings.Join(list[:keep], ", ") + fmt.Sprintf(", … (%d more)", len(list)-keep)
}
