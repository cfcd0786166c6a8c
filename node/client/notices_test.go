package client

import (
	"testing"

	"github.com/parley-p2p/parley/node/store"
)

// TestALateKeyChangesTheCountsOnce: an encrypted event whose key comes
// late is counted as the rules read its wire form (m.room.encrypted)
// until its plain view arrives, and then as the rules read the plain
// view: a mention of the user's display name highlights, a notice stops
// counting. A redaction removes its target from the counts.
func TestALateKeyChangesTheCountsOnce(t *testing.T) {
	x := newE2EERoom(t)
	counts := func() map[string]int {
		t.Helper()
		jr := x.sync("").Rooms.Join[x.r.ID]
		if jr == nil || jr.UnreadNotifications == nil {
			t.Fatal("the room has no unread_notifications")
		}
		return jr.UnreadNotifications
	}
	want := func(what string, notes, highlights int) {
		t.Helper()
		if got := counts(); got["notification_count"] != notes || got["highlight_count"] != highlights {
			t.Fatalf("%s: counts %v, want %d notifications, %d highlights", what, got, notes, highlights)
		}
	}
	mention := x.bobSays("withheld hello Alice Secretname")
	notice := x.fromBob("m.room.message", nil, `{"body":"withheld bot says","msgtype":"m.notice"}`)
	want("before the keys came", 2, 0)

	before := x.api.PushEvaluations()
	for _, ev := range []string{mention.ID(), notice.ID()} {
		i, err := x.e.Event(ev)
		if err != nil {
			t.Fatal(err)
		}
		if err := x.e.SetPlain(x.r, ev, fakeOpen(i.Event, true)); err != nil {
			t.Fatal(err)
		}
	}
	want("after the keys came", 1, 1)
	if n := x.api.PushEvaluations() - before; n != 2 {
		t.Errorf("the late plain views were evaluated %d times, want 2 (once each)", n)
	}
	var kept []store.Notice
	if err := x.st.View(func(t *store.Txn) error {
		return t.Notices(x.alice.UserID, x.r.ID, 0, ^uint64(0), func(n store.Notice) bool {
			if !n.Own {
				kept = append(kept, n)
			}
			return true
		})
	}); err != nil {
		t.Fatal(err)
	}
	if len(kept) != 1 || !kept[0].Highlight {
		t.Fatalf("alice's notices = %+v, want the mention's alone, highlighted", kept)
	}

	x.fromBob("m.room.redaction", nil, `{"redacts":"`+mention.ID()+`"}`)
	want("after the mention was redacted", 0, 0)
}
