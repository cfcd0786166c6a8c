package node

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/parley-p2p/parley/internal/testkit"
	"github.com/parley-p2p/parley/rooms"
)

// publicRoom has c create a public room.
func publicRoom(t testing.TB, ctx context.Context, c *mautrix.Client) id.RoomID {
	t.Helper()
	resp, err := c.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatalf("%s creates a public room: %v", c.UserID, err)
	}
	return resp.RoomID
}

// joinVia posts /join/{room}?server_name=... as a client that names the
// server with the older parameter does.
func joinVia(ctx context.Context, c *mautrix.Client, room string, servers ...string) (*mautrix.RespJoinRoom, error) {
	u := c.BuildURLWithFullQuery(mautrix.ClientURLPath{"v3", "join", room}, func(q url.Values) {
		q["server_name"] = servers
	})
	var resp *mautrix.RespJoinRoom
	_, err := c.MakeRequest(ctx, http.MethodPost, u, struct{}{}, &resp)
	return resp, err
}

// TestJoinAPublicRoomByIDThroughAServer: bob, on a node never invited,
// joins alice's public room by its ID, naming alice's server; he reads
// what alice sent before as the room's history visibility allows (all
// of it, decrypted, when shared; none when "joined"), and alice reads
// what he sends.
func TestJoinAPublicRoomByIDThroughAServer(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		visibility string
		want       int
	}{{"shared", 3}, {"joined", 0}} {
		t.Run("visibility "+tc.visibility, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			a, _, alice, bob := twoNodes(t, ctx, testOpts{}, testOpts{})
			room := publicRoom(t, ctx, alice)
			setVisibility(t, ctx, alice, room, tc.visibility)
			for i := range 3 {
				sendText(t, ctx, alice, room, fmt.Sprintf("before bob %d", i))
			}

			resp, err := joinVia(ctx, bob, room.String(), a.ServerName())
			if err != nil {
				t.Fatalf("bob joins the public room by ID through a's server: %v", err)
			}
			if resp.RoomID != room {
				t.Fatalf("join answered room %s, want %s", resp.RoomID, room)
			}
			sendText(t, ctx, alice, room, "after bob")
			var got []string
			testkit.WaitFor(t, 60*time.Second, "bob to read alice's message after his join, and all he may before it, decrypted", func() bool {
				var waiting int
				got, waiting = readTimeline(t, ctx, bob, room)
				return waiting == 0 && len(got) > 0 && got[len(got)-1] == "after bob"
			})
			history := got[:len(got)-1]
			if len(history) != tc.want {
				t.Fatalf("bob read %q from before his join, want %d messages", history, tc.want)
			}
			for i, body := range history {
				if want := fmt.Sprintf("before bob %d", i); body != want {
					t.Fatalf("bob read %q as message %d, want %q", body, i, want)
				}
			}
			sendText(t, ctx, bob, room, "hello from bob")
			testkit.WaitFor(t, 30*time.Second, "alice to read bob's message", func() bool {
				got, waiting := readTimeline(t, ctx, alice, room)
				return waiting == 0 && slices.Contains(got, "hello from bob")
			})
		})
	}
}

// TestJoinByIDWithoutAServerNeedsOne: without server_name or via, a room
// this node never held cannot be joined: there is nowhere to ask.
func TestJoinByIDWithoutAServerNeedsOne(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, _, alice, bob := twoNodes(t, ctx, testOpts{}, testOpts{})
	room := publicRoom(t, ctx, alice)
	_, err := bob.JoinRoomByID(ctx, room)
	wantHTTP(t, "bob joins a room his node never held by ID, naming no server", err, 404, "M_NOT_FOUND")
}

// TestJoinRefusalsRevealNothing: joining an invite-only room by its ID
// through a server in it is 403, word for word the answer for a room
// that does not exist: a server that may not join learns nothing of the
// room. A server name that is not one is 400, and a server that cannot be
// reached is an error once the node gives up on it.
func TestJoinRefusalsRevealNothing(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, _, alice, bob := twoNodes(t, ctx, testOpts{}, testOpts{requestTimeout: 3 * time.Second})
	private := privateRoom(t, ctx, alice)

	_, errPrivate := joinVia(ctx, bob, private.String(), a.ServerName())
	wantHTTP(t, "bob joins an invite-only room by ID through a's server", errPrivate, 403, "M_FORBIDDEN")
	_, errUnknown := joinVia(ctx, bob, "!NoSuchRoomOnAnyNode0000000000000000000000", a.ServerName())
	wantHTTP(t, "bob joins a room that does not exist through a's server", errUnknown, 403, "M_FORBIDDEN")
	if p, u := respError(errPrivate), respError(errUnknown); p != u {
		t.Errorf("the refusals differ: invite-only room %q, no such room %q", p, u)
	}
	if m := a.membership(a.getRoom(private.String()), bob.UserID.String()); m != "" {
		t.Errorf("bob's refused join left membership %q in the room", m)
	}

	for _, bad := range []string{"example.org", "zz" + a.ServerName()[2:], a.ServerName()[:10]} {
		_, err := joinVia(ctx, bob, private.String(), bad)
		wantHTTP(t, fmt.Sprintf("join through server %q", bad), err, 400, "M_INVALID_PARAM")
	}
	_, err := joinVia(ctx, bob, private.String(), "")
	wantHTTP(t, "join through an empty server name", err, 400, "M_INVALID_PARAM")

	nobody := newStranger(t, a).server
	nobodyHost := newStranger(t, a)
	nobodyHost.close() // a server that was, and is gone
	for _, gone := range []string{rooms.ServerName(make([]byte, 32)), nobodyHost.server} {
		_, err := joinVia(ctx, bob, private.String(), gone)
		wantHTTP(t, "join through a server that cannot be reached", err, 502, "M_UNKNOWN")
	}
	// A server that answers but is not in the room refuses like the others.
	_, err = joinVia(ctx, bob, private.String(), nobody)
	if err == nil {
		t.Fatal("join through a server not in the room succeeded")
	}
}

// respError is the Matrix error message of a failed request.
func respError(err error) string {
	var he mautrix.HTTPError
	if errors.As(err, &he) && he.RespError != nil {
		return he.RespError.Err
	}
	return err.Error()
}
