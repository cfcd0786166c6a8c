package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/parley-p2p/parley/internal/testkit"
)

// TestThreeProcessesChat runs the walking skeleton across three parley
// processes on loopback, as a user would start them: Alice's node first,
// Bob's and Carol's bootstrapping from it. Alice creates a private room and
// invites Bob and Carol by user ID; they see the invite in /sync and join;
// each sends 10 messages; everyone receives all 30 through /sync and
// /messages, every node agrees on the members, and every process exits 0
// on SIGTERM without having logged an error.
func TestThreeProcessesChat(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three parley processes")
	}
	if runtime.GOOS == "windows" {
		t.Skip("stops the processes with SIGTERM")
	}
	parley.Path(t) // build before the clock starts
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	began := time.Now()

	// The identity `parley id` reports is the one `parley run` uses.
	dirA := t.TempDir()
	var idOut bytes.Buffer
	if err := run([]string{"id", "--data", dirA}, &idOut, &bytes.Buffer{}); err != nil {
		t.Fatalf("parley id: %v", err)
	}

	a := startParley(t, "A", nodeArgs(dirA)...)
	infoA := a.waitStarted()
	if want := fmt.Sprintf("server name: %s\npeer id:     %s\n", infoA.ServerName, infoA.PeerID); idOut.String() != want {
		t.Errorf("parley id printed\n%s\nbut parley run started as\n%s", idOut.String(), want)
	}
	if infoA.Version != testVersion {
		t.Errorf("parley run printed version %q, want %q (set with -ldflags)", infoA.Version, testVersion)
	}
	b := startParley(t, "B", append(nodeArgs(t.TempDir()), "--bootstrap", infoA.Addrs[0])...)
	c := startParley(t, "C", append(nodeArgs(t.TempDir()), "--bootstrap", infoA.Addrs[0])...)
	infoB, infoC := b.waitStarted(), c.waitStarted()
	t.Logf("three processes up in %v", time.Since(began).Round(time.Millisecond))

	alice := register(t, ctx, infoA, "alice")
	bob := register(t, ctx, infoB, "bob")
	carol := register(t, ctx, infoC, "carol")
	room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Name: "Three processes"})
	if err != nil {
		t.Fatalf("createRoom: %v", err)
	}
	for _, u := range []*mautrix.Client{bob, carol} {
		if _, err := alice.InviteUser(ctx, room.RoomID, &mautrix.ReqInviteUser{UserID: u.UserID}); err != nil {
			t.Fatalf("invite %s: %v", u.UserID, err)
		}
	}

	everyone := []*mautrix.Client{alice, bob, carol}
	syncers := map[id.UserID]*testkit.Syncer{}
	for _, u := range everyone {
		syncers[u.UserID] = testkit.NewSyncer(t, ctx, u)
	}
	for _, u := range []*mautrix.Client{bob, carol} {
		syncers[u.UserID].Until(t, 30*time.Second, string(u.UserID)+"'s invite", func(r *mautrix.RespSync) bool {
			_, ok := r.Rooms.Invite[room.RoomID]
			return ok
		})
		if _, err := u.JoinRoomByID(ctx, room.RoomID); err != nil {
			t.Fatalf("%s join: %v", u.UserID, err)
		}
	}
	want := userIDs(everyone)
	for _, u := range everyone {
		testkit.WaitFor(t, 30*time.Second, string(u.UserID)+" to see all three joined", func() bool {
			got, err := joinedMembers(ctx, u, room.RoomID)
			return err == nil && slices.Equal(got, want)
		})
	}
	t.Logf("room joined by all three after %v", time.Since(began).Round(time.Millisecond))

	// Bring every sync stream up to now, so the messages arrive as
	// increments rather than as one limited initial timeline.
	for _, s := range syncers {
		if _, err := s.Next(ctx, 0); err != nil {
			t.Fatal(err)
		}
	}

	// Everyone sends 10 messages at once.
	expected := map[string]bool{}
	var wg sync.WaitGroup
	errs := make(chan error, len(everyone))
	for _, u := range everyone {
		for i := range 10 {
			expected[fmt.Sprintf("%s #%d", u.UserID.Localpart(), i)] = true
		}
		wg.Go(func() {
			for i := range 10 {
				if _, err := u.SendText(ctx, room.RoomID, fmt.Sprintf("%s #%d", u.UserID.Localpart(), i)); err != nil {
					errs <- fmt.Errorf("%s send: %w", u.UserID, err)
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

	for _, u := range everyone {
		got := map[string]bool{}
		syncers[u.UserID].Until(t, 30*time.Second, string(u.UserID)+" to receive all 30 messages", func(r *mautrix.RespSync) bool {
			if jr, ok := r.Rooms.Join[room.RoomID]; ok {
				for _, ev := range jr.Timeline.Events {
					if body, ok := messageBody(ev); ok {
						got[body] = true
					}
				}
			}
			return len(got) >= len(expected)
		})
		if !maps.Equal(got, expected) {
			t.Errorf("%s received through /sync %v, want %v", u.UserID, slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(expected)))
		}

		paged := pageBack(t, ctx, u, room.RoomID)
		if !maps.Equal(paged, expected) {
			t.Errorf("%s read through /messages %v, want %v", u.UserID, slices.Sorted(maps.Keys(paged)), slices.Sorted(maps.Keys(expected)))
		}
		members, err := joinedMembers(ctx, u, room.RoomID)
		if err != nil || !slices.Equal(members, want) {
			t.Errorf("%s members = %v (%v), want %v", u.UserID, members, err, want)
		}
	}
	t.Logf("all messages delivered after %v", time.Since(began).Round(time.Millisecond))

	stopAll(a, b, c)
	for _, p := range []*parleyProc{a, b, c} {
		for line := range strings.Lines(p.stderr.String()) {
			if strings.Contains(line, "level=ERROR") {
				t.Errorf("%s logged an error: %s", p.name, line)
			}
		}
	}
}

// nodeArgs are the flags of a node on loopback with OS-chosen ports.
func nodeArgs(dataDir string) []string {
	return []string{
		"--data", dataDir,
		"--http", "127.0.0.1:0",
		"--listen", "/ip4/127.0.0.1/tcp/0",
		"--no-mdns",
		"--no-port-map",
	}
}

// register creates a user on a node and returns a logged-in client, after
// checking that the user belongs to the server the node said it was.
func register(t *testing.T, ctx context.Context, node startInfo, name string) *mautrix.Client {
	t.Helper()
	c, err := mautrix.NewClient(node.URL, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if node.ClaimCode == "" {
		t.Fatalf("%s printed no claim URL", node.URL)
	}
	// A Matrix client's user-interactive auth: ask, then answer the
	// registration-token stage with the claim code.
	req := &mautrix.ReqRegister[any]{Username: name, Password: "password-" + name}
	_, uia, err := c.Register(ctx, req)
	if uia == nil {
		t.Fatalf("register %s at %s: no user-interactive auth: %v", name, node.URL, err)
	}
	req.Auth = map[string]any{"type": "m.login.registration_token", "token": node.ClaimCode, "session": uia.Session}
	resp, _, err := c.Register(ctx, req)
	if err != nil {
		t.Fatalf("register %s at %s: %v", name, node.URL, err)
	}
	if want := id.NewUserID(name, node.ServerName); resp.UserID != want {
		t.Fatalf("registered %s, want %s", resp.UserID, want)
	}
	c.SetCredentials(resp.UserID, resp.AccessToken)
	c.DeviceID = resp.DeviceID
	return c
}

// pageBack reads the room's history through /messages, 7 events a page,
// and returns the message bodies.
func pageBack(t *testing.T, ctx context.Context, c *mautrix.Client, room id.RoomID) map[string]bool {
	t.Helper()
	bodies := map[string]bool{}
	from := ""
	for range 50 {
		resp, err := c.Messages(ctx, room, from, "", mautrix.DirectionBackward, nil, 7)
		if err != nil {
			t.Fatalf("%s /messages: %v", c.UserID, err)
		}
		for _, ev := range resp.Chunk {
			if body, ok := messageBody(ev); ok {
				bodies[body] = true
			}
		}
		if resp.End == "" {
			return bodies
		}
		from = resp.End
	}
	t.Fatalf("%s: /messages still had more after 50 pages", c.UserID)
	return nil
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

func joinedMembers(ctx context.Context, c *mautrix.Client, room id.RoomID) ([]string, error) {
	resp, err := c.JoinedMembers(ctx, room)
	if err != nil {
		return nil, err
	}
	var ids []string
	for u := range resp.Joined {
		ids = append(ids, u.String())
	}
	slices.Sort(ids)
	return ids, nil
}

func userIDs(cs []*mautrix.Client) []string {
	var ids []string
	for _, c := range cs {
		ids = append(ids, c.UserID.String())
	}
	slices.Sort(ids)
	return ids
}
