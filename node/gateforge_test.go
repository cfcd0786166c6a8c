package node

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"maunium.net/go/mautrix"

	"github.com/parley-p2p/parley/p2p"
)

// TestAForgedInviteOpensTheGateToNoOne: a stranger forges an invite of
// its own user in a member's name (the member's server is in the room, so
// the event passes the gate's cheap check, and fails its signature). Its
// own correctly signed messages that follow must still be ignored: only a
// verified membership event may let a new server speak.
func TestAForgedInviteOpensTheGateToNoOne(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a := newTestNode(t, testOpts{})
	evil := newStranger(t, a)
	alice := a.register(ctx, "alice")
	created, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat"})
	if err != nil {
		t.Fatal(err)
	}
	r := a.getRoom(created.RoomID.String())
	validate := a.peers.ValidateGossip(r)
	auth, prevs, depth := roomAuth(r)

	// The stranger signs an invite of its own user, then puts alice's
	// name on it as sender: its signature no longer matches.
	own := evil.event(t, r, "m.room.member", map[string]string{"membership": "invite"}, prevs, auth, depth+1)
	var fields map[string]any
	if err := json.Unmarshal(own.JSON(), &fields); err != nil {
		t.Fatal(err)
	}
	fields["sender"], fields["state_key"] = alice.UserID.String(), evil.user
	forged, err := json.Marshal(fields)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := validate(ctx, evil.host.ID(), forged); v != p2p.Reject {
		t.Fatalf("the forged invite: verdict %v, want Reject", v)
	}
	msg := evil.event(t, r, "m.room.message", map[string]string{"msgtype": "m.text", "body": "let me in"}, prevs, auth, depth+2)
	if v, _ := validate(ctx, evil.host.ID(), msg.JSON()); v != p2p.Ignore {
		t.Fatalf("the stranger's own message after its forged invite: verdict %v, want Ignore", v)
	}
}
