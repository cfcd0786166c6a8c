package client

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/parley-p2p/parley/node/dag"
	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/rooms"
	"github.com/parley-p2p/parley/webui"
)

// relationsOf is what alice's GET /relations/{parent} lists, newest first.
func (x *e2eeRoom) relationsOf(parent string) []string {
	x.t.Helper()
	resp, err := x.api.Relations(x.t.Context(), x.alice, webui.RelationsRequest{RoomID: x.r.ID, EventID: parent, Dir: "b", Limit: 100})
	if err != nil {
		x.t.Fatal(err)
	}
	var out []string
	for _, ce := range resp.Chunk {
		out = append(out, ce.EventID)
	}
	return out
}

// relationsBundled is unsigned["m.relations"] of an event as alice gets it.
func (x *e2eeRoom) relationsBundled(id string) map[string]any {
	x.t.Helper()
	ce, err := x.api.Event(x.alice, x.r.ID, id)
	if err != nil {
		x.t.Fatal(err)
	}
	rel, _ := ce.Unsigned["m.relations"].(map[string]any)
	return rel
}

// bundledEdit is the ID of the edit bundled into an event, "" if none.
func (x *e2eeRoom) bundledEdit(id string) string {
	if ce, ok := x.relationsBundled(id)[relReplace].(webui.ClientEvent); ok {
		return ce.EventID
	}
	return ""
}

// threadCount is the count bundled into a thread root, 0 if none.
func (x *e2eeRoom) threadCount(id string) int {
	th, _ := x.relationsBundled(id)[relThread].(map[string]any)
	n, _ := th["count"].(int)
	return n
}

// hearAgain runs the timeline hook for an event as a reindex would, in a
// write of its own.
func (x *e2eeRoom) hearAgain(ev *rooms.Event, how dag.Arrival) {
	x.t.Helper()
	i, err := x.e.Event(ev.ID())
	if err != nil {
		x.t.Fatal(err)
	}
	w := x.api.OnTimeline(x.r, ev, i.Rec.Plain, how)
	if w == nil {
		return
	}
	if err := x.st.Update(func(t *store.Txn) error { return w(t, storedOrder(t, ev.ID())) }); err != nil {
		x.t.Fatal(err)
	}
}

func editContent(original, body string) string {
	c, _ := json.Marshal(map[string]any{
		"msgtype": "m.text", "body": "* " + body,
		"m.new_content": map[string]any{"msgtype": "m.text", "body": body},
		"m.relates_to":  map[string]any{"rel_type": relReplace, "event_id": original},
	})
	return string(c)
}

func threadContent(root, body string) string {
	c, _ := json.Marshal(map[string]any{
		"msgtype": "m.text", "body": body,
		"m.relates_to": map[string]any{"rel_type": relThread, "event_id": root},
	})
	return string(c)
}

// TestARelationIsReadFromThePlainViewWhenItsKeyComes: an encrypted edit
// relates to nothing until its key comes (its relation is inside the
// ciphertext); then it is listed and bundled. An edit of an original
// whose key has not come is kept but not bundled (its type is not known
// to match) until the original's key comes.
func TestARelationIsReadFromThePlainViewWhenItsKeyComes(t *testing.T) {
	x := newE2EERoom(t)
	original := x.bobSays("hello")
	edit := x.fromBob("m.room.message", nil, editContent(original.ID(), "withheld hello!"))
	if got := x.relationsOf(original.ID()); len(got) != 0 {
		t.Fatalf("before its key the edit relates: %v", got)
	}
	if err := x.e.SetPlain(x.r, edit.ID(), fakeOpen(edit, true)); err != nil {
		t.Fatal(err)
	}
	if got := x.relationsOf(original.ID()); len(got) != 1 || got[0] != edit.ID() {
		t.Fatalf("once its key came, relations %v, want %s", got, edit.ID())
	}
	if got := x.bundledEdit(original.ID()); got != edit.ID() {
		t.Errorf("once its key came, bundled edit %q, want %s", got, edit.ID())
	}

	secret := x.bobSays("withheld secret")
	secretEdit := x.fromBob("m.room.message", nil, editContent(secret.ID(), "secret!"))
	if got := x.relationsOf(secret.ID()); len(got) != 1 {
		t.Fatalf("the edit of a waiting original is not listed: %v", got)
	}
	if got := x.bundledEdit(secret.ID()); got != "" {
		t.Errorf("an edit of an original not decrypted is bundled: %s", got)
	}
	if err := x.e.SetPlain(x.r, secret.ID(), fakeOpen(secret, true)); err != nil {
		t.Fatal(err)
	}
	if got := x.bundledEdit(secret.ID()); got != secretEdit.ID() {
		t.Errorf("once the original's key came, bundled edit %q, want %s", got, secretEdit.ID())
	}
}

// TestHearingAnEventAgainCountsItOnce: the hook run again for events
// already kept (a late plain view, a reindex) changes no aggregate.
func TestHearingAnEventAgainCountsItOnce(t *testing.T) {
	x := newE2EERoom(t)
	root := x.bobSays("root")
	r1 := x.fromBob("m.room.message", nil, threadContent(root.ID(), "one"))
	r2 := x.fromBob("m.room.message", nil, threadContent(root.ID(), "two"))
	if got := x.threadCount(root.ID()); got != 2 {
		t.Fatalf("thread count %d, want 2", got)
	}
	for _, how := range []dag.Arrival{dag.LatePlain, dag.History, dag.LateHistoryPlain} {
		for _, ev := range []*rooms.Event{root, r1, r2, r1} {
			x.hearAgain(ev, how)
		}
	}
	if got := x.threadCount(root.ID()); got != 2 {
		t.Errorf("heard again, thread count %d, want 2", got)
	}
	th, _ := x.relationsBundled(root.ID())[relThread].(map[string]any)
	if latest, _ := th["latest_event"].(webui.ClientEvent); latest.EventID != r2.ID() {
		t.Errorf("latest reply %q, want %s", latest.EventID, r2.ID())
	}
	if p, _ := th["current_user_participated"].(bool); p {
		t.Error("alice, who sent neither root nor reply, is said to have participated")
	}
}

// threads is what alice's GET /threads lists.
func (x *e2eeRoom) threads(participated bool) []string {
	x.t.Helper()
	resp, err := x.api.Threads(x.t.Context(), x.alice, webui.ThreadsRequest{RoomID: x.r.ID, Participated: participated, Limit: 10})
	if err != nil {
		x.t.Fatal(err)
	}
	var out []string
	for _, ce := range resp.Chunk {
		out = append(out, ce.EventID)
	}
	return out
}

// TestRedactingAThreadsRepliesUndoesIt: redacting a thread's latest
// reply makes the one before the latest, and the thread's activity
// moves back with it among the room's threads; redacting the last reply
// ends the thread. A redacted reaction is no longer listed.
func TestRedactingAThreadsRepliesUndoesIt(t *testing.T) {
	x := newE2EERoom(t)
	first := x.bobSays("first root")
	second := x.bobSays("second root")
	r1 := x.fromBob("m.room.message", nil, threadContent(first.ID(), "one"))
	x.fromBob("m.room.message", nil, threadContent(second.ID(), "two"))
	r3 := x.fromBob("m.room.message", nil, threadContent(first.ID(), "three"))
	if got, want := x.threads(false), []string{first.ID(), second.ID()}; !slices.Equal(got, want) {
		t.Fatalf("threads %v, want %v", got, want)
	}
	if got := x.threads(true); len(got) != 0 {
		t.Errorf("alice took part in no thread, yet lists %v", got)
	}
	redact := func(ev *rooms.Event) {
		t.Helper()
		x.fromBob("m.room.redaction", nil, `{"redacts":"`+ev.ID()+`"}`)
	}
	redact(r3)
	th, _ := x.relationsBundled(first.ID())[relThread].(map[string]any)
	if latest, _ := th["latest_event"].(webui.ClientEvent); latest.EventID != r1.ID() || th["count"] != 1 {
		t.Errorf("after redacting the latest reply the thread bundles %v", th)
	}
	if got, want := x.threads(false), []string{second.ID(), first.ID()}; !slices.Equal(got, want) {
		t.Errorf("after redacting the latest reply, threads %v, want %v", got, want)
	}
	redact(r1)
	if _, ok := x.relationsBundled(first.ID())[relThread]; ok {
		t.Error("a thread without replies is still bundled")
	}
	if got, want := x.threads(false), []string{second.ID()}; !slices.Equal(got, want) {
		t.Errorf("after redacting the last reply, threads %v, want %v", got, want)
	}
	if got := x.relationsOf(first.ID()); len(got) != 0 {
		t.Errorf("redacted replies still listed: %v", got)
	}
	react := x.fromBob("m.reaction", nil, `{"m.relates_to":{"rel_type":"m.annotation","event_id":"`+second.ID()+`","key":"👍"}}`)
	if got := x.relationsOf(second.ID()); len(got) != 2 || got[0] != react.ID() {
		t.Fatalf("the reaction is not listed first: %v", got)
	}
	redact(react)
	if got := x.relationsOf(second.ID()); len(got) != 1 || slices.Contains(got, react.ID()) {
		t.Errorf("a redacted reaction is still listed: %v", got)
	}
	if th, _ := x.relationsBundled(second.ID())[relThread].(map[string]any); th["count"] != 1 {
		t.Errorf("redacting a reaction changed the thread: %v", th)
	}
}
