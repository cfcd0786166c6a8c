package node

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"maunium.net/go/mautrix"

	"github.com/parley-p2p/parley/internal/testkit"
	"github.com/parley-p2p/parley/node/peers"
	"github.com/parley-p2p/parley/p2p"
)

// TestMakeJoinAnswersOnlyThoseWhoCouldJoin: a stranger asking for a join
// template of an invite-only room is refused and learns nothing of the
// room; once invited, or for a public room, it gets one.
func TestMakeJoinAnswersOnlyThoseWhoCouldJoin(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a := newTestNode(t, testOpts{})
	evil := newStranger(t, a)
	alice := a.register(ctx, "alice")
	private, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat"})
	if err != nil {
		t.Fatal(err)
	}
	public, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	ask := func(room string) ([]byte, error) {
		body, _ := json.Marshal(peers.MakeJoinReq{RoomID: room, UserID: evil.user})
		return evil.host.Request(ctx, a.PeerID(), peers.MethodMakeJoin, body)
	}

	out, err := ask(private.RoomID.String())
	var re *p2p.RemoteError
	if !errors.As(err, &re) || re.Code != "M_FORBIDDEN" {
		t.Fatalf("make_join of an invite-only room by a stranger: %s, %v; want M_FORBIDDEN", out, err)
	}
	if len(out) != 0 {
		t.Errorf("the refusal carried %d bytes of the room", len(out))
	}
	if _, err := ask(public.RoomID.String()); err != nil {
		t.Errorf("make_join of a public room: %v", err)
	}

	// A real node's user, refused until invited.
	b := newTestNode(t, testOpts{bootstrap: []*testNode{a}})
	bob := b.register(ctx, "bob")
	askAs := func() error {
		body, _ := json.Marshal(peers.MakeJoinReq{RoomID: private.RoomID.String(), UserID: bob.UserID.String()})
		_, err := b.host.Request(ctx, a.PeerID(), peers.MethodMakeJoin, body)
		return err
	}
	if err := askAs(); !errors.As(err, &re) || re.Code != "M_FORBIDDEN" {
		t.Errorf("make_join by bob before his invite: %v, want M_FORBIDDEN", err)
	}
	if _, err := alice.InviteUser(ctx, private.RoomID, &mautrix.ReqInviteUser{UserID: bob.UserID}); err != nil {
		t.Fatal(err)
	}
	if err := askAs(); err != nil {
		t.Errorf("make_join by bob once invited: %v", err)
	}
}

// TestDepartedAndBannedServersCannotReadTheHead: a server whose users left
// or were banned learns from extremities only its users' own membership
// events, not the room's head; while joined it gets the head; a stranger
// is refused.
func TestDepartedAndBannedServersCannotReadTheHead(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, b, alice, bob := twoNodes(t, ctx, testOpts{}, testOpts{})
	room := privateRoom(t, ctx, alice)
	r := a.getRoom(room.String())
	extremities := func() ([]string, error) {
		// Sealed under the room's secret, as b's node asks.
		var resp peers.IDsReq
		err := b.peers.Request(ctx, a.PeerID(), peers.MethodExtremities, peers.IDsReq{RoomID: room.String()}, &resp)
		return resp.EventIDs, err
	}
	// A stranger's server is refused outright.
	evil := newStranger(t, a)
	body, _ := json.Marshal(peers.IDsReq{RoomID: room.String()})
	var re *p2p.RemoteError
	if _, err := evil.host.Request(ctx, a.PeerID(), peers.MethodExtremities, body); !errors.As(err, &re) || re.Code != "M_FORBIDDEN" {
		t.Errorf("extremities for a stranger: %v, want M_FORBIDDEN", err)
	}
	for _, step := range []struct {
		name   string
		do     func() error
		member string
		may    bool
	}{
		{"joined", func() error { joinThrough(t, ctx, room, alice, bob); return nil }, "join", true},
		{"left", func() error { _, err := bob.LeaveRoom(ctx, room); return err }, "leave", false},
		{"banned", func() error {
			_, err := alice.BanUser(ctx, room, &mautrix.ReqBanUser{UserID: bob.UserID})
			return err
		}, "ban", false},
	} {
		t.Run(step.name, func(t *testing.T) {
			if err := step.do(); err != nil {
				t.Fatal(err)
			}
			testkit.WaitFor(t, 20*time.Second, "bob's membership to reach a", func() bool { return a.membership(r, bob.UserID.String()) == step.member })
			// The head moves on past bob's membership.
			sent, err := alice.SendText(ctx, room, "after bob "+step.name)
			if err != nil {
				t.Fatal(err)
			}
			// The head may move while the request is answered (bob's
			// node shares its keys after joining): compare an answer given
			// while it stood still.
			var got, ext []string
			stable := testkit.Eventually(10*time.Second, func() bool {
				before := slices.Clone(r.Head().Ext)
				if got, err = extremities(); err != nil {
					return true
				}
				ext = slices.Clone(r.Head().Ext)
				return slices.Equal(before, ext)
			})
			if err != nil {
				t.Fatalf("extremities: %v", err)
			}
			if !stable {
				t.Fatalf("a's head kept moving for 10 s")
			}
			own := a.peers.MembershipsOf(r, b.serverName)
			switch {
			case step.may && !slices.Equal(got, ext):
				t.Errorf("extremities while joined: %v, want the head %v", got, ext)
			case !step.may && (!slices.Equal(got, own) || slices.Contains(got, sent.EventID.String())):
				t.Errorf("extremities after bob %s: %v, want only bob's membership %v", step.name, got, own)
			}
		})
	}
}
