package store

import (
	"fmt"
	"testing"
)

// An incremental sync reads only the invites that changed after its
// token, however many are pending.
func TestInvitesSinceReadsOnlyWhatChanged(t *testing.T) {
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	const user = "@alice:x"
	put := func(room string) {
		t.Helper()
		if err := s.Update(func(t *Txn) error {
			return t.PutInvite(user, &Invite{RoomID: room, Pos: t.NextPos(), Via: "v"})
		}); err != nil {
			t.Fatal(err)
		}
	}
	since := func(pos uint64) (rooms []string) {
		t.Helper()
		if err := s.View(func(t *Txn) error {
			invs, err := t.InvitesSince(user, pos)
			for _, inv := range invs {
				rooms = append(rooms, inv.RoomID)
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return rooms
	}
	for i := range 50 {
		put(fmt.Sprintf("!r%02d", i))
	}
	token := s.Pos()
	if got := since(token); len(got) != 0 {
		t.Fatalf("nothing changed, yet %d invites were read: %v", len(got), got)
	}
	put("!new")
	if got := since(token); len(got) != 1 || got[0] != "!new" {
		t.Fatalf("after one new invite, read %v", got)
	}
	token = s.Pos()
	if err := s.Update(func(t *Txn) error {
		inv, err := t.Invite(user, "!r07")
		if err != nil {
			return err
		}
		inv.Left, inv.State, inv.Event, inv.Pos = true, nil, nil, t.NextPos()
		return t.PutInvite(user, inv)
	}); err != nil {
		t.Fatal(err)
	}
	if got := since(token); len(got) != 1 || got[0] != "!r07" {
		t.Fatalf("after closing one invite, read %v", got)
	}
	if got := since(0); len(got) != 51 {
		t.Fatalf("from the start, read %d invites, want each of the 51 once", len(got))
	}
	if err := s.Update(func(t *Txn) error { return t.DeleteInvite(user, "!r07") }); err != nil {
		t.Fatal(err)
	}
	if got := since(0); len(got) != 50 {
		t.Fatalf("after deleting one, read %d invites, want 50", len(got))
	}
}
