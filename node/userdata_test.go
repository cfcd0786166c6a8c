package node

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	"maunium.net/go/mautrix/pushrules"

	"github.com/parley-p2p/parley/errs"
	"github.com/parley-p2p/parley/internal/testkit"
	"github.com/parley-p2p/parley/node/store"
)

// wantMatrixError fails the test unless err is a Matrix error with this
// status and errcode.
func wantMatrixError(t *testing.T, what string, err error, status int, code string) {
	t.Helper()
	var herr mautrix.HTTPError
	if !errors.As(err, &herr) || herr.Response == nil {
		t.Fatalf("%s: err = %v, want %d %s", what, err, status, code)
	}
	got := ""
	if herr.RespError != nil {
		got = herr.RespError.ErrCode
	}
	if herr.Response.StatusCode != status || got != code {
		t.Fatalf("%s: got %d %s (%v), want %d %s", what, herr.Response.StatusCode, got, err, status, code)
	}
}

// accountDataEvents finds an account data event of a type in a list.
func accountDataEvent(evs []*event.Event, typ string) *event.Event {
	for _, ev := range evs {
		if ev.Type.Type == typ {
			return ev
		}
	}
	return nil
}

func TestAccountData(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a := newTestNode(t, testOpts{})
	alice := a.register(ctx, "alice")
	room := privateRoom(t, ctx, alice)

	t.Run("a value set is read back", func(t *testing.T) {
		if err := alice.SetAccountData(ctx, "org.example.settings", map[string]any{"theme": "dark"}); err != nil {
			t.Fatal(err)
		}
		var got map[string]any
		if err := alice.GetAccountData(ctx, "org.example.settings", &got); err != nil {
			t.Fatal(err)
		}
		if got["theme"] != "dark" {
			t.Fatalf("read back %v", got)
		}
	})
	t.Run("an unset type is 404 M_NOT_FOUND", func(t *testing.T) {
		var got map[string]any
		wantMatrixError(t, "get unset", alice.GetAccountData(ctx, "org.example.unset", &got), 404, "M_NOT_FOUND")
		wantMatrixError(t, "get unset in room", alice.GetRoomAccountData(ctx, room, "org.example.unset", &got), 404, "M_NOT_FOUND")
	})
	t.Run("another user's account data is 403", func(t *testing.T) {
		u := alice.BuildClientURL("v3", "user", "@mallory:elsewhere", "account_data", "org.example.settings")
		_, err := alice.MakeRequest(ctx, http.MethodGet, u, nil, nil)
		wantMatrixError(t, "get other's", err, 403, "M_FORBIDDEN")
		_, err = alice.MakeRequest(ctx, http.MethodPut, u, map[string]any{}, nil)
		wantMatrixError(t, "put other's", err, 403, "M_FORBIDDEN")
	})
	t.Run("server-managed types cannot be set: 405", func(t *testing.T) {
		wantMatrixError(t, "put m.push_rules", alice.SetAccountData(ctx, "m.push_rules", map[string]any{}), 405, "M_BAD_JSON")
		wantMatrixError(t, "put m.fully_read", alice.SetRoomAccountData(ctx, room, "m.fully_read", map[string]any{"event_id": "$x"}), 405, "M_BAD_JSON")
	})
	t.Run("a body that is not an object is 400", func(t *testing.T) {
		u := alice.BuildClientURL("v3", "user", alice.UserID, "account_data", "org.example.bad")
		_, err := alice.MakeRequest(ctx, http.MethodPut, u, []int{1}, nil)
		wantMatrixError(t, "put array", err, 400, "M_BAD_JSON")
	})
	t.Run("a value over 64 KiB is refused", func(t *testing.T) {
		err := alice.SetAccountData(ctx, "org.example.big", map[string]string{"x": strings.Repeat("a", 70<<10)})
		wantMatrixError(t, "put big", err, 413, "M_TOO_LARGE")
	})
	t.Run("room account data needs a room ID and a membership", func(t *testing.T) {
		if err := alice.SetRoomAccountData(ctx, room, "m.tag", map[string]any{"tags": map[string]any{"u.work": map[string]any{}}}); err != nil {
			t.Fatal(err)
		}
		var got map[string]any
		if err := alice.GetRoomAccountData(ctx, room, "m.tag", &got); err != nil || got["tags"] == nil {
			t.Fatalf("read back %v, %v", got, err)
		}
		wantMatrixError(t, "bad room ID", alice.SetRoomAccountData(ctx, "not-a-room", "m.tag", map[string]any{}), 400, "M_INVALID_PARAM")
		wantMatrixError(t, "unknown room", alice.SetRoomAccountData(ctx, "!nope:elsewhere", "m.tag", map[string]any{}), 403, "M_FORBIDDEN")
	})
	t.Run("the number of types is bounded", func(t *testing.T) {
		b := newTestNode(t, testOpts{})
		bob := b.register(ctx, "bob")
		for k := range 256 {
			if err := bob.SetAccountData(ctx, "org.example.n"+string(rune('a'+k%26))+strings.Repeat("x", k/26), map[string]any{}); err != nil {
				t.Fatalf("type %d: %v", k, err)
			}
		}
		wantMatrixError(t, "type 257", bob.SetAccountData(ctx, "org.example.onetoomany", map[string]any{}), 413, "M_TOO_LARGE")
		if err := bob.SetAccountData(ctx, "org.example.na", map[string]any{"again": true}); err != nil {
			t.Fatalf("replacing a type within the bound: %v", err)
		}
	})
	t.Run("an initial sync shows global and room account data and the push rules", func(t *testing.T) {
		resp, err := alice.SyncRequest(ctx, 0, "", "", false, "")
		if err != nil {
			t.Fatal(err)
		}
		if ev := accountDataEvent(resp.AccountData.Events, "org.example.settings"); ev == nil || ev.Content.Raw["theme"] != "dark" {
			t.Errorf("global account data missing from the initial sync: %v", ev)
		}
		if accountDataEvent(resp.AccountData.Events, "m.push_rules") == nil {
			t.Error("m.push_rules missing from the initial sync")
		}
		jr := resp.Rooms.Join[room]
		if jr == nil || accountDataEvent(jr.AccountData.Events, "m.tag") == nil {
			t.Errorf("room account data missing from the initial sync")
		}
	})
	t.Run("a write wakes a waiting sync, which shows only what changed", func(t *testing.T) {
		s := testkit.NewSyncer(t, ctx, alice)
		if _, err := s.Next(ctx, 0); err != nil {
			t.Fatal(err)
		}
		type result struct {
			resp *mautrix.RespSync
			err  error
		}
		builds := a.api.SyncBuilds()
		done := make(chan result, 1)
		wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
		defer wcancel()
		go func() {
			// The server would wait 100 s; the request gives up at 30.
			resp, err := s.Client.SyncRequest(wctx, 100_000, s.Since, "", false, "")
			done <- result{resp, err}
		}()
		testkit.WaitFor(t, 10*time.Second, "the sync to wait", func() bool { return a.api.SyncBuilds() > builds })
		if err := alice.SetRoomAccountData(ctx, room, "org.example.room", map[string]any{"n": 1}); err != nil {
			t.Fatal(err)
		}
		r := <-done
		if r.err != nil {
			t.Fatalf("the waiting sync was not woken: %v", r.err)
		}
		jr := r.resp.Rooms.Join[room]
		if jr == nil || accountDataEvent(jr.AccountData.Events, "org.example.room") == nil {
			t.Fatalf("woken sync lacks the room account data: %+v", r.resp.Rooms.Join)
		}
		if accountDataEvent(r.resp.AccountData.Events, "org.example.settings") != nil || accountDataEvent(jr.AccountData.Events, "m.tag") != nil {
			t.Error("an incremental sync repeated account data that did not change")
		}
	})
}

func ruleIDs(rules []*pushrules.PushRule) []string {
	var out []string
	for _, r := range rules {
		out = append(out, r.RuleID)
	}
	return out
}

func TestPushRules(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a := newTestNode(t, testOpts{})
	alice := a.register(ctx, "alice")
	notify := []*pushrules.PushAction{{Action: pushrules.ActionNotify}}

	t.Run("a new user has the spec's default rules", func(t *testing.T) {
		rs, err := alice.GetPushRules(ctx)
		if err != nil {
			t.Fatal(err)
		}
		override := ruleIDs(rs.Override)
		for _, want := range []string{".m.rule.master", ".m.rule.suppress_notices", ".m.rule.invite_for_me", ".m.rule.member_event",
			".m.rule.is_user_mention", ".m.rule.is_room_mention", ".m.rule.tombstone", ".m.rule.reaction", ".m.rule.room.server_acl", ".m.rule.suppress_edits"} {
			if !slices.Contains(override, want) {
				t.Errorf("override lacks %s: %v", want, override)
			}
		}
		underride := ruleIDs(rs.Underride)
		for _, want := range []string{".m.rule.call", ".m.rule.encrypted_room_one_to_one", ".m.rule.room_one_to_one", ".m.rule.message", ".m.rule.encrypted"} {
			if !slices.Contains(underride, want) {
				t.Errorf("underride lacks %s: %v", want, underride)
			}
		}
		if override[0] != ".m.rule.master" || rs.Override[0].Enabled {
			t.Errorf("the master rule is not first and disabled: %v", override)
		}
	})
	t.Run("user rules are added, placed, read, changed and deleted", func(t *testing.T) {
		cond := []*pushrules.PushCondition{{Kind: pushrules.KindEventMatch, Key: "type", Pattern: "org.example.ping"}}
		for _, id := range []string{"one", "two"} {
			if err := alice.PutPushRule(ctx, "global", pushrules.OverrideRule, id, &mautrix.ReqPutPushRule{Actions: notify, Conditions: cond}); err != nil {
				t.Fatal(err)
			}
		}
		if err := alice.PutPushRule(ctx, "global", pushrules.OverrideRule, "three", &mautrix.ReqPutPushRule{Actions: notify, Conditions: cond, After: "one"}); err != nil {
			t.Fatal(err)
		}
		rs, err := alice.GetPushRules(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got := ruleIDs(rs.Override)[:4]; !slices.Equal(got, []string{".m.rule.master", "two", "one", "three"}) {
			t.Fatalf("override starts %v, want master, then the newest user rule first, three after one", got)
		}
		if err := alice.SetPushRuleEnabled(ctx, "global", pushrules.OverrideRule, "one", false); err != nil {
			t.Fatal(err)
		}
		r, err := alice.GetPushRule(ctx, "global", pushrules.OverrideRule, "one")
		if err != nil || r.Enabled {
			t.Fatalf("rule one after disabling: %+v, %v", r, err)
		}
		if err := alice.DeletePushRule(ctx, "global", pushrules.OverrideRule, "one"); err != nil {
			t.Fatal(err)
		}
		_, err = alice.GetPushRule(ctx, "global", pushrules.OverrideRule, "one")
		wantMatrixError(t, "get deleted", err, 404, "M_NOT_FOUND")
	})
	t.Run("default rules can be disabled and their actions changed, not deleted", func(t *testing.T) {
		if err := alice.SetPushRuleEnabled(ctx, "global", pushrules.OverrideRule, ".m.rule.master", true); err != nil {
			t.Fatal(err)
		}
		if err := alice.PutPushRuleActions(ctx, "global", pushrules.UnderrideRule, ".m.rule.message", []*pushrules.PushAction{}); err != nil {
			t.Fatal(err)
		}
		var enabled struct{ Enabled bool }
		if _, err := alice.MakeRequest(ctx, http.MethodGet, alice.BuildClientURL("v3", "pushrules", "global", "override", ".m.rule.master", "enabled"), nil, &enabled); err != nil || !enabled.Enabled {
			t.Fatalf("master enabled = %v, %v", enabled, err)
		}
		var actions struct{ Actions []any }
		if _, err := alice.MakeRequest(ctx, http.MethodGet, alice.BuildClientURL("v3", "pushrules", "global", "underride", ".m.rule.message", "actions"), nil, &actions); err != nil || actions.Actions == nil || len(actions.Actions) != 0 {
			t.Fatalf("message actions = %v, %v", actions, err)
		}
		wantMatrixError(t, "delete a default", alice.DeletePushRule(ctx, "global", pushrules.OverrideRule, ".m.rule.master"), 400, "M_INVALID_PARAM")
		// Back to the defaults, for the tests that follow.
		_ = alice.SetPushRuleEnabled(ctx, "global", pushrules.OverrideRule, ".m.rule.master", false)
		_ = alice.PutPushRuleActions(ctx, "global", pushrules.UnderrideRule, ".m.rule.message", notify)
	})
	t.Run("bad requests are refused", func(t *testing.T) {
		cond := []*pushrules.PushCondition{}
		wantMatrixError(t, "unknown rule", alice.SetPushRuleEnabled(ctx, "global", pushrules.OverrideRule, "nope", true), 404, "M_NOT_FOUND")
		wantMatrixError(t, "unknown kind", alice.PutPushRule(ctx, "global", "sideways", "x", &mautrix.ReqPutPushRule{Actions: notify}), 400, "M_INVALID_PARAM")
		wantMatrixError(t, "a dotted ID", alice.PutPushRule(ctx, "global", pushrules.OverrideRule, ".mine", &mautrix.ReqPutPushRule{Actions: notify, Conditions: cond}), 400, "M_INVALID_PARAM")
		wantMatrixError(t, "a content rule without pattern", alice.PutPushRule(ctx, "global", pushrules.ContentRule, "c", &mautrix.ReqPutPushRule{Actions: notify}), 400, "M_INVALID_PARAM")
		wantMatrixError(t, "a room rule not named for a room", alice.PutPushRule(ctx, "global", pushrules.RoomRule, "c", &mautrix.ReqPutPushRule{Actions: notify}), 400, "M_INVALID_PARAM")
		wantMatrixError(t, "before a missing rule", alice.PutPushRule(ctx, "global", pushrules.OverrideRule, "x", &mautrix.ReqPutPushRule{Actions: notify, Conditions: cond, Before: "missing"}), 404, "M_NOT_FOUND")
		bad := []*pushrules.PushAction{{Action: "explode"}}
		wantMatrixError(t, "an unknown action", alice.PutPushRule(ctx, "global", pushrules.OverrideRule, "x", &mautrix.ReqPutPushRule{Actions: bad, Conditions: cond}), 400, "M_INVALID_PARAM")
		_, err := alice.MakeRequest(ctx, http.MethodGet, alice.BuildClientURL("v3", "pushrules", "device", "override", "x"), nil, nil)
		wantMatrixError(t, "an unknown scope", err, 400, "M_INVALID_PARAM")
	})
	t.Run("a change shows in /sync as m.push_rules", func(t *testing.T) {
		s := testkit.NewSyncer(t, ctx, alice)
		if _, err := s.Next(ctx, 0); err != nil {
			t.Fatal(err)
		}
		if err := alice.PutPushRule(ctx, "global", pushrules.SenderRule, "@spam:elsewhere", &mautrix.ReqPutPushRule{Actions: []*pushrules.PushAction{}}); err != nil {
			t.Fatal(err)
		}
		s.Until(t, 20*time.Second, "the new rules in account data", func(r *mautrix.RespSync) bool {
			ev := accountDataEvent(r.AccountData.Events, "m.push_rules")
			return ev != nil && strings.Contains(string(ev.Content.VeryRaw), "@spam:elsewhere")
		})
	})
}

// twoLocalUsers starts a node with alice and bob on it, in a room.
func twoLocalUsers(t *testing.T, ctx context.Context) (*testNode, *mautrix.Client, *mautrix.Client, id.RoomID) {
	t.Helper()
	a := newTestNode(t, testOpts{regToken: "let-me-in"})
	alice := a.register(ctx, "alice")
	bob := a.register(ctx, "bob")
	room := privateRoom(t, ctx, alice)
	if _, err := alice.InviteUser(ctx, room, &mautrix.ReqInviteUser{UserID: bob.UserID}); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.JoinRoomByID(ctx, room); err != nil {
		t.Fatal(err)
	}
	return a, alice, bob, room
}

func send(t *testing.T, ctx context.Context, c *mautrix.Client, room id.RoomID, content map[string]any) id.EventID {
	t.Helper()
	resp, err := c.SendMessageEvent(ctx, room, event.EventMessage, content)
	if err != nil {
		t.Fatal(err)
	}
	return resp.EventID
}

func TestReceiptsAndNotificationCounts(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a, alice, bob, room := twoLocalUsers(t, ctx)

	send(t, ctx, alice, room, map[string]any{"msgtype": "m.text", "body": "my own"})
	first := send(t, ctx, bob, room, map[string]any{"msgtype": "m.text", "body": "one"})
	send(t, ctx, bob, room, map[string]any{"msgtype": "m.text", "body": "two"})
	send(t, ctx, bob, room, map[string]any{"msgtype": "m.text", "body": "hey you", "m.mentions": map[string]any{"user_ids": []string{alice.UserID.String()}}})
	send(t, ctx, bob, room, map[string]any{"msgtype": "m.notice", "body": "a bot's notice"})

	counts := func(c *mautrix.Client) *mautrix.UnreadNotificationCounts {
		resp, err := c.SyncRequest(ctx, 0, "", "", false, "")
		if err != nil {
			t.Fatal(err)
		}
		jr := resp.Rooms.Join[room]
		if jr == nil || jr.UnreadNotifications == nil {
			t.Fatalf("no unread_notifications for the room")
		}
		return jr.UnreadNotifications
	}
	t.Run("events after the join count, by the user's rules, not their own", func(t *testing.T) {
		got := counts(alice)
		if got.NotificationCount != 3 || got.HighlightCount != 1 {
			t.Fatalf("alice's counts = %+v, want 3 notifications (not the notice, not her own), 1 highlight", got)
		}
	})
	t.Run("a read receipt moves the read position", func(t *testing.T) {
		if err := alice.SendReceipt(ctx, room, first, event.ReceiptTypeRead, nil); err != nil {
			t.Fatal(err)
		}
		if got := counts(alice); got.NotificationCount != 2 || got.HighlightCount != 1 {
			t.Fatalf("after reading the first: %+v, want 2 and 1", got)
		}
	})
	t.Run("a public receipt reaches the room's other users, a private one does not", func(t *testing.T) {
		bs := testkit.NewSyncer(t, ctx, bob)
		if _, err := bs.Next(ctx, 0); err != nil {
			t.Fatal(err)
		}
		last := send(t, ctx, bob, room, map[string]any{"msgtype": "m.text", "body": "last"})
		if err := alice.SendReceipt(ctx, room, last, event.ReceiptTypeReadPrivate, nil); err != nil {
			t.Fatal(err)
		}
		if got := counts(alice); got.NotificationCount != 0 || got.HighlightCount != 0 {
			t.Fatalf("after a private receipt for the last: %+v, want 0", got)
		}
		if err := alice.SendReceipt(ctx, room, last, event.ReceiptTypeRead, nil); err != nil {
			t.Fatal(err)
		}
		bs.Until(t, 20*time.Second, "alice's receipt in bob's ephemeral", func(r *mautrix.RespSync) bool {
			jr := r.Rooms.Join[room]
			if jr == nil {
				return false
			}
			for _, ev := range jr.Ephemeral.Events {
				raw := string(ev.Content.VeryRaw)
				if ev.Type == event.EphemeralEventReceipt && strings.Contains(raw, "m.read.private") {
					t.Fatalf("bob sees alice's private receipt: %s", raw)
				}
				if ev.Type == event.EphemeralEventReceipt && strings.Contains(raw, string(last)) && strings.Contains(raw, alice.UserID.String()) {
					return true
				}
			}
			return false
		})
		resp, err := alice.SyncRequest(ctx, 0, "", "", false, "")
		if err != nil {
			t.Fatal(err)
		}
		if raw := string(mustJSON(t, resp.Rooms.Join[room].Ephemeral)); !strings.Contains(raw, "m.read.private") {
			t.Errorf("alice does not see her own private receipt: %s", raw)
		}
	})
	t.Run("new events add to the counts already evaluated", func(t *testing.T) {
		if got := counts(alice); got.NotificationCount != 0 {
			t.Fatalf("before: %+v, want 0", got)
		}
		send(t, ctx, bob, room, map[string]any{"msgtype": "m.text", "body": "more"})
		send(t, ctx, bob, room, map[string]any{"msgtype": "m.text", "body": "and more"})
		if got := counts(alice); got.NotificationCount != 2 || got.HighlightCount != 0 {
			t.Fatalf("after two: %+v, want 2 and 0", got)
		}
		send(t, ctx, bob, room, map[string]any{"msgtype": "m.text", "body": "@room look", "m.mentions": map[string]any{"user_ids": []string{alice.UserID.String()}}})
		if got := counts(alice); got.NotificationCount != 3 || got.HighlightCount != 1 {
			t.Fatalf("after a mention: %+v, want 3 and 1", got)
		}
		send(t, ctx, alice, room, map[string]any{"msgtype": "m.text", "body": "I am here"})
		if got := counts(alice); got.NotificationCount != 0 || got.HighlightCount != 0 {
			t.Fatalf("after alice's own message: %+v, want 0: sending reads what came before", got)
		}
	})
	t.Run("the wire's view lists local public receipts only", func(t *testing.T) {
		rs, err := a.api.LocalReceipts(room.String())
		if err != nil {
			t.Fatal(err)
		}
		if len(rs) == 0 || slices.ContainsFunc(rs, func(r store.Receipt) bool { return r.Type != "m.read" }) {
			t.Fatalf("LocalReceipts = %+v, want only m.read receipts", rs)
		}
		err = a.api.RemoteReceipt(room.String(), alice.UserID.String(), string(first), "", 1)
		if errs.KindOf(err) != errs.Forbidden {
			t.Fatalf("a remote receipt for a local user: %v, want forbidden", err)
		}
	})
	t.Run("the wire hears each public receipt that moved, and no private one", func(t *testing.T) {
		heard := make(chan store.Receipt, 4)
		a.api.OnLocalReceipt(func(r store.Receipt) { heard <- r })
		defer a.api.OnLocalReceipt(nil)
		ev := send(t, ctx, bob, room, map[string]any{"msgtype": "m.text", "body": "for the hook"})
		if err := alice.SendReceipt(ctx, room, ev, event.ReceiptTypeReadPrivate, nil); err != nil {
			t.Fatal(err)
		}
		if err := alice.SendReceipt(ctx, room, ev, event.ReceiptTypeRead, nil); err != nil {
			t.Fatal(err)
		}
		if err := alice.SendReceipt(ctx, room, first, event.ReceiptTypeRead, nil); err != nil {
			t.Fatal(err) // backwards: stored nowhere, heard by no one
		}
		if got := len(heard); got != 1 {
			t.Fatalf("the hook heard %d receipts, want 1", got)
		}
		if r := <-heard; r.Type != "m.read" || r.EventID != string(ev) || r.User != alice.UserID.String() || r.TS == 0 {
			t.Fatalf("the hook heard %+v", r)
		}
	})
	t.Run("bad receipts are refused", func(t *testing.T) {
		wantMatrixError(t, "unknown type", alice.SendReceipt(ctx, room, first, "m.seen", nil), 400, "M_INVALID_PARAM")
		wantMatrixError(t, "unknown event", alice.SendReceipt(ctx, room, "$nope", event.ReceiptTypeRead, nil), 404, "M_NOT_FOUND")
		wantMatrixError(t, "fully_read in a thread", alice.SendReceipt(ctx, room, first, event.ReceiptType("m.fully_read"), map[string]any{"thread_id": "main"}), 400, "M_INVALID_PARAM")
		wantMatrixError(t, "an event not in the thread", alice.SendReceipt(ctx, room, first, event.ReceiptTypeRead, map[string]any{"thread_id": "$someroot"}), 400, "M_INVALID_PARAM")
		wantMatrixError(t, "not joined", alice.SendReceipt(ctx, "!elsewhere:nowhere", first, event.ReceiptTypeRead, nil), 403, "M_FORBIDDEN")
	})
	t.Run("read markers set m.fully_read in room account data", func(t *testing.T) {
		if err := alice.SetReadMarkers(ctx, room, &mautrix.ReqSetReadMarkers{FullyRead: first, Read: first}); err != nil {
			t.Fatal(err)
		}
		var got struct {
			EventID string `json:"event_id"`
		}
		if err := alice.GetRoomAccountData(ctx, room, "m.fully_read", &got); err != nil || got.EventID != string(first) {
			t.Fatalf("m.fully_read = %+v, %v", got, err)
		}
		later := send(t, ctx, bob, room, map[string]any{"msgtype": "m.text", "body": "later"})
		if err := alice.SetReadMarkers(ctx, room, &mautrix.ReqSetReadMarkers{FullyRead: later}); err != nil {
			t.Fatal(err)
		}
		if err := alice.SetReadMarkers(ctx, room, &mautrix.ReqSetReadMarkers{FullyRead: first}); err != nil {
			t.Fatal(err)
		}
		if err := alice.GetRoomAccountData(ctx, room, "m.fully_read", &got); err != nil || got.EventID != string(later) {
			t.Fatalf("m.fully_read after moving it back = %+v, %v; want it to stay at %s", got, err, later)
		}
	})
	t.Run("notifications are listed newest first, paged, and marked read", func(t *testing.T) {
		type notif struct {
			Event struct {
				EventID string `json:"event_id"`
				Sender  string `json:"sender"`
			} `json:"event"`
			Read    bool              `json:"read"`
			RoomID  string            `json:"room_id"`
			TS      int64             `json:"ts"`
			Actions []json.RawMessage `json:"actions"`
		}
		var page struct {
			NextToken     string  `json:"next_token"`
			Notifications []notif `json:"notifications"`
		}
		get := func(q map[string]string) {
			page.NextToken, page.Notifications = "", nil
			u := alice.BuildURLWithQuery(mautrix.ClientURLPath{"v3", "notifications"}, q)
			if _, err := alice.MakeRequest(ctx, http.MethodGet, u, nil, &page); err != nil {
				t.Fatal(err)
			}
		}
		unread := send(t, ctx, bob, room, map[string]any{"msgtype": "m.text", "body": "unread one"})
		get(nil)
		if len(page.Notifications) < 3 {
			t.Fatalf("notifications = %+v, want bob's messages", page.Notifications)
		}
		for k, n := range page.Notifications {
			if n.Event.Sender != bob.UserID.String() || n.RoomID != room.String() || len(n.Actions) == 0 {
				t.Fatalf("notification %d = %+v", k, n)
			}
			if k > 0 && n.TS > page.Notifications[k-1].TS {
				t.Fatalf("notifications are not newest first: %+v", page.Notifications)
			}
		}
		if top := page.Notifications[0]; top.Event.EventID != string(unread) || top.Read {
			t.Fatalf("the newest notification = %+v, want %s unread", top, unread)
		}
		if last := page.Notifications[len(page.Notifications)-1]; !last.Read {
			t.Fatalf("the oldest notification = %+v, want it read", last)
		}
		get(map[string]string{"only": "highlight"})
		if len(page.Notifications) == 0 {
			t.Fatal("no highlights listed, want the mentions")
		}
		get(map[string]string{"limit": "1"})
		if len(page.Notifications) != 1 || page.NextToken == "" {
			t.Fatalf("a page of one = %+v, next %q", page.Notifications, page.NextToken)
		}
		first := page.Notifications[0]
		get(map[string]string{"limit": "1", "from": page.NextToken})
		if len(page.Notifications) != 1 || page.Notifications[0].TS >= first.TS {
			t.Fatalf("the next page = %+v, want one older than %+v", page.Notifications, first)
		}
		_, err := alice.MakeRequest(ctx, http.MethodGet, alice.BuildURLWithQuery(mautrix.ClientURLPath{"v3", "notifications"}, map[string]string{"from": "nope"}), nil, nil)
		wantMatrixError(t, "a bad from token", err, 400, "M_INVALID_PARAM")
	})
	t.Run("threaded events count per thread when asked", func(t *testing.T) {
		root := send(t, ctx, alice, room, map[string]any{"msgtype": "m.text", "body": "thread root"})
		if err := alice.SendReceipt(ctx, room, root, event.ReceiptTypeRead, nil); err != nil {
			t.Fatal(err)
		}
		reply := send(t, ctx, bob, room, map[string]any{"msgtype": "m.text", "body": "in thread",
			"m.relates_to": map[string]any{"rel_type": "m.thread", "event_id": root}})
		f, err := alice.CreateFilter(ctx, &mautrix.Filter{Room: &mautrix.RoomFilter{Timeline: &mautrix.FilterPart{UnreadThreadNotifications: true}}})
		if err != nil {
			t.Fatal(err)
		}
		// mautrix does not read unread_thread_notifications: read the JSON.
		var resp struct {
			Rooms struct {
				Join map[id.RoomID]struct {
					UnreadNotifications       mautrix.UnreadNotificationCounts                 `json:"unread_notifications"`
					UnreadThreadNotifications map[id.EventID]*mautrix.UnreadNotificationCounts `json:"unread_thread_notifications"`
				} `json:"join"`
			} `json:"rooms"`
		}
		u := alice.BuildURLWithQuery(mautrix.ClientURLPath{"v3", "sync"}, map[string]string{"filter": f.FilterID})
		if _, err := alice.MakeRequest(ctx, http.MethodGet, u, nil, &resp); err != nil {
			t.Fatal(err)
		}
		jr := resp.Rooms.Join[room]
		if jr.UnreadThreadNotifications[root] == nil || jr.UnreadThreadNotifications[root].NotificationCount != 1 {
			t.Fatalf("thread counts = %+v, want 1 for %s", jr.UnreadThreadNotifications, root)
		}
		if jr.UnreadNotifications.NotificationCount != 0 {
			t.Fatalf("main counts = %+v, want 0: the only new event is in the thread", jr.UnreadNotifications)
		}
		if err := alice.SendReceipt(ctx, room, reply, event.ReceiptTypeRead, map[string]any{"thread_id": root}); err != nil {
			t.Fatal(err)
		}
		resp.Rooms.Join = nil
		if _, err := alice.MakeRequest(ctx, http.MethodGet, u, nil, &resp); err != nil {
			t.Fatal(err)
		}
		if c := resp.Rooms.Join[room].UnreadThreadNotifications[root]; c != nil && c.NotificationCount != 0 {
			t.Fatalf("thread counts after a threaded receipt = %+v, want none", c)
		}
		// A reaction to a message in the thread is in the thread: alice's
		// reaction reads the thread, not the main timeline.
		reply2 := send(t, ctx, bob, room, map[string]any{"msgtype": "m.text", "body": "in thread again",
			"m.relates_to": map[string]any{"rel_type": "m.thread", "event_id": root}})
		send(t, ctx, bob, room, map[string]any{"msgtype": "m.text", "body": "in the main timeline"})
		if _, err := alice.SendMessageEvent(ctx, room, event.EventReaction, map[string]any{
			"m.relates_to": map[string]any{"rel_type": "m.annotation", "event_id": reply2, "key": "+1"}}); err != nil {
			t.Fatal(err)
		}
		resp.Rooms.Join = nil
		if _, err := alice.MakeRequest(ctx, http.MethodGet, u, nil, &resp); err != nil {
			t.Fatal(err)
		}
		jr = resp.Rooms.Join[room]
		if c := jr.UnreadThreadNotifications[root]; c != nil && c.NotificationCount != 0 {
			t.Errorf("thread counts after alice reacted in it = %+v, want none", c)
		}
		if jr.UnreadNotifications.NotificationCount != 1 {
			t.Errorf("main counts after alice reacted in the thread = %+v, want 1", jr.UnreadNotifications)
		}
	})
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPushers(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a := newTestNode(t, testOpts{})
	alice := a.register(ctx, "alice")
	kindHTTP := mautrix.PusherKindHTTP
	pusher := func(key string) *mautrix.Pusher {
		return &mautrix.Pusher{PushKey: key, Kind: &kindHTTP, AppID: "org.example.app", AppDisplayName: "App",
			DeviceDisplayName: "Phone", Language: "en", Data: mautrix.PusherData{"url": "https://push.example.org/_matrix/push/v1/notify"}}
	}
	list := func() []mautrix.Pusher {
		resp, err := alice.GetPushers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return resp.Pushers
	}
	t.Run("a pusher is stored, updated and deleted", func(t *testing.T) {
		if got := list(); len(got) != 0 {
			t.Fatalf("a new user has pushers: %v", got)
		}
		if err := alice.SetPusher(ctx, pusher("k1")); err != nil {
			t.Fatal(err)
		}
		p := pusher("k1")
		p.DeviceDisplayName = "Tablet"
		if err := alice.SetPusher(ctx, p); err != nil {
			t.Fatal(err)
		}
		if got := list(); len(got) != 1 || got[0].DeviceDisplayName != "Tablet" {
			t.Fatalf("pushers = %+v, want one, updated", got)
		}
		p.Kind = nil
		if err := alice.SetPusher(ctx, p); err != nil {
			t.Fatal(err)
		}
		if got := list(); len(got) != 0 {
			t.Fatalf("pushers after delete = %+v", got)
		}
	})
	t.Run("bad pushers are refused", func(t *testing.T) {
		p := pusher("k2")
		p.Data = mautrix.PusherData{"url": "ftp://nope"}
		wantMatrixError(t, "ftp url", alice.SetPusher(ctx, p), 400, "M_INVALID_PARAM")
		p = pusher("k2")
		p.Data = mautrix.PusherData{"url": "http://push.example.org/_matrix/push/v1/notify"}
		wantMatrixError(t, "plain http to another machine", alice.SetPusher(ctx, p), 400, "M_INVALID_PARAM")
		p.Data = mautrix.PusherData{"url": "http://127.0.0.1:5000/_matrix/push/v1/notify"}
		if err := alice.SetPusher(ctx, p); err != nil {
			t.Fatalf("plain http to this machine: %v", err)
		}
		p.Kind = nil
		if err := alice.SetPusher(ctx, p); err != nil {
			t.Fatal(err)
		}
		p = pusher("k2")
		kind := mautrix.PusherKind("carrier-pigeon")
		p.Kind = &kind
		wantMatrixError(t, "unknown kind", alice.SetPusher(ctx, p), 400, "M_INVALID_PARAM")
		p = pusher("")
		wantMatrixError(t, "no pushkey", alice.SetPusher(ctx, p), 400, "M_MISSING_PARAM")
	})
	t.Run("a user's pushers are bounded", func(t *testing.T) {
		for k := range 16 {
			if err := alice.SetPusher(ctx, pusher("key-"+string(rune('a'+k)))); err != nil {
				t.Fatalf("pusher %d: %v", k, err)
			}
		}
		wantMatrixError(t, "the 17th", alice.SetPusher(ctx, pusher("one-too-many")), 413, "M_TOO_LARGE")
	})
}

// TestRemoteReceiptReachesLocalMembers: what a later wire will do with a
// receipt from another node (RemoteReceipt) shows in the local members'
// /sync, and is refused for a user not in the room.
func TestRemoteReceiptReachesLocalMembers(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a, _, alice, bob, room := twoMembers(t, ctx, testOpts{}, testOpts{})
	msg := send(t, ctx, alice, room, map[string]any{"msgtype": "m.text", "body": "read me"})
	s := testkit.NewSyncer(t, ctx, alice)
	if _, err := s.Next(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if err := a.api.RemoteReceipt(room.String(), bob.UserID.String(), string(msg), "", 1234); err != nil {
		t.Fatal(err)
	}
	s.Until(t, 20*time.Second, "bob's receipt in alice's ephemeral", func(r *mautrix.RespSync) bool {
		jr := r.Rooms.Join[room]
		if jr == nil {
			return false
		}
		for _, ev := range jr.Ephemeral.Events {
			raw := string(ev.Content.VeryRaw)
			if ev.Type == event.EphemeralEventReceipt && strings.Contains(raw, string(msg)) && strings.Contains(raw, bob.UserID.String()) {
				return true
			}
		}
		return false
	})
	rs, err := a.api.LocalReceipts(room.String())
	if err != nil {
		t.Fatal(err)
	}
	if slices.ContainsFunc(rs, func(r store.Receipt) bool { return r.User == bob.UserID.String() }) {
		t.Errorf("LocalReceipts lists a remote user's receipt: %+v", rs)
	}
	err = a.api.RemoteReceipt(room.String(), "@stranger:elsewhere", string(msg), "", 1)
	if errs.KindOf(err) != errs.Forbidden {
		t.Errorf("a receipt from a user not in the room: %v, want forbidden", err)
	}
	err = a.api.RemoteReceipt(room.String(), bob.UserID.String(), "$missing", "", 1)
	if errs.KindOf(err) != errs.NotFound {
		t.Errorf("a receipt for an unknown event: %v, want not found", err)
	}
}

// TestSyncFiltersAccountDataAndReceipts: a /sync filter's account_data
// (global and per room) and room ephemeral parts select what user data
// the answer carries.
func TestSyncFiltersAccountDataAndReceipts(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, alice, bob, room := twoLocalUsers(t, ctx)
	for _, typ := range []string{"org.example.keep", "org.example.drop"} {
		if err := alice.SetAccountData(ctx, typ, map[string]any{"v": typ}); err != nil {
			t.Fatal(err)
		}
		if err := alice.SetRoomAccountData(ctx, room, typ, map[string]any{"v": typ}); err != nil {
			t.Fatal(err)
		}
	}
	last := send(t, ctx, bob, room, map[string]any{"msgtype": "m.text", "body": "read me"})
	if err := bob.SendReceipt(ctx, room, last, event.ReceiptTypeRead, nil); err != nil {
		t.Fatal(err)
	}
	types := func(evs []*event.Event) map[string]bool {
		out := map[string]bool{}
		for _, ev := range evs {
			out[ev.Type.Type] = true
		}
		return out
	}
	sync := func(filter string) *mautrix.RespSync {
		resp, err := alice.SyncRequest(ctx, 0, "", filter, false, "")
		if err != nil {
			t.Fatal(err)
		}
		if resp.Rooms.Join[room] == nil {
			t.Fatal("the room is missing from the sync")
		}
		return resp
	}

	all := sync("")
	if g, r := types(all.AccountData.Events), types(all.Rooms.Join[room].AccountData.Events); !g["org.example.drop"] || !r["org.example.drop"] {
		t.Fatalf("without a filter, account data %v and room account data %v, want both types", g, r)
	}
	if !types(all.Rooms.Join[room].Ephemeral.Events)["m.receipt"] {
		t.Fatal("without a filter, no m.receipt in the room's ephemeral events")
	}

	f := sync(`{"account_data":{"not_types":["org.example.drop"]},"room":{"account_data":{"types":["org.example.keep"]},"ephemeral":{"not_types":["m.receipt"]}}}`)
	g, r := types(f.AccountData.Events), types(f.Rooms.Join[room].AccountData.Events)
	if !g["org.example.keep"] || g["org.example.drop"] {
		t.Errorf("filtered account data %v, want keep and not drop", g)
	}
	if !r["org.example.keep"] || r["org.example.drop"] {
		t.Errorf("filtered room account data %v, want keep and not drop", r)
	}
	if types(f.Rooms.Join[room].Ephemeral.Events)["m.receipt"] {
		t.Error("the filter leaves receipts out, yet the room's ephemeral events hold one")
	}
}
