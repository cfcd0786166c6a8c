package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/parley-p2p/parley/node/client"
	"github.com/parley-p2p/parley/node/dag"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"

	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/webui"
)

// dirBytes is the disk space the files under dir take (allocated
// blocks: Badger preallocates its files sparsely).
func dirBytes(t testing.TB, dir string) int64 {
	var total int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return nil
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			total += st.Blocks * 512
		} else {
			total += fi.Size()
		}
		return nil
	})
	return total
}

// TestStateStorageIsLinear: a room whose state grows by one entry per
// state event, 1,000 times, stores its states in bytes that grow
// linearly with the number of state events, not with its square.
func TestStateStorageIsLinear(t *testing.T) {
	t.Parallel()
	count := 1000
	if s := os.Getenv("PARLEY_STATE_EVENTS"); s != "" {
		count, _ = strconv.Atoi(s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	a := newTestNode(t, testOpts{})
	alice := a.register(ctx, "alice")
	room, err := alice.CreateRoom(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := a.getRoom(room.RoomID.String())
	sess := &webui.Session{UserID: alice.UserID.String()}
	_, before, _ := a.store.StateUsage()
	var ms runtime.MemStats
	var peak uint64
	start := time.Now()
	for i := range count {
		key := fmt.Sprintf("entry-%05d", i)
		c, _ := json.Marshal(map[string]string{"value": key})
		if _, err := a.dag.Send(ctx, r.Room, sess.UserID, "org.example.entry", &key, c, "", ""); err != nil {
			t.Fatalf("state event %d: %v", i, err)
		}
		if i%100 == 0 {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
		}
	}
	records, after, err := a.store.StateUsage()
	if err != nil {
		t.Fatal(err)
	}
	perEvent := (after - before) / int64(count)
	t.Logf("%d state events: %d snapshot records, %d bytes (%d per event), heap in use peaked at %d MiB, database dir %d MiB, took %v",
		count, records, after-before, perEvent, peak>>20, dirBytes(t, filepath.Join(a.dir, "db"))>>20, time.Since(start))
	// An entry takes about 90 bytes, a delta record of one entry about
	// 180. Whole snapshots would average count/2 entries per state event
	// (45 kB at 1,000); deltas with a checkpoint every CheckpointEvery
	// average count/(2*CheckpointEvery) entries plus the delta.
	if limit := int64(100*count/(2*store.CheckpointEvery) + 400); perEvent > limit {
		t.Errorf("states take %d bytes per state event, want at most %d", perEvent, limit)
	}
	if b, budget := a.dag.StateCacheBytes(); b > budget+dag.StateBytes(r.State()) {
		limit := budget + dag.StateBytes(r.State())
		t.Errorf("state cache holds %d bytes, budget %d", b, limit)
	}

	// What was written reads back, after a restart too.
	want, wantID := r.State(), r.Head().StateID
	if len(want) < count {
		t.Fatalf("current state has %d entries, want at least %d", len(want), count)
	}
	a.Close()
	a2 := newTestNode(t, testOpts{dir: a.dir})
	r2 := a2.getRoom(room.RoomID.String())
	got, gotID := r2.State(), r2.Head().StateID
	if gotID != wantID || !maps.Equal(got, want) {
		t.Errorf("after a restart the state is %s with %d entries, want %s with %d", gotID, len(got), wantID, len(want))
	}
}

// TestCreateRoomCapsInitialState: createRoom with more initial_state
// entries than client.MaxInitialState is refused with M_INVALID_PARAM before
// anything is stored; at the cap it succeeds.
func TestCreateRoomCapsInitialState(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a := newTestNode(t, testOpts{})
	alice := a.register(ctx, "alice")
	entries := func(n int) []*event.Event {
		var out []*event.Event
		for i := range n {
			key := fmt.Sprintf("k%d", i)
			out = append(out, &event.Event{Type: event.NewEventType("org.example.entry"), StateKey: &key, Content: event.Content{Raw: map[string]any{"v": i}}})
		}
		return out
	}
	posBefore, roomsBefore := a.store.Pos(), a.dag.RoomCount()
	_, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{InitialState: entries(client.MaxInitialState + 1)})
	var herr mautrix.HTTPError
	if !errors.As(err, &herr) || herr.Response == nil || herr.Response.StatusCode != 400 || herr.RespError == nil || herr.RespError.ErrCode != "M_INVALID_PARAM" {
		t.Fatalf("createRoom with %d initial_state entries: %v, want 400 M_INVALID_PARAM", client.MaxInitialState+1, err)
	}
	if a.store.Pos() != posBefore || a.dag.RoomCount() != roomsBefore {
		t.Errorf("the refused createRoom stored something: position %d -> %d, rooms %d -> %d", posBefore, a.store.Pos(), roomsBefore, a.dag.RoomCount())
	}
	room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{InitialState: entries(client.MaxInitialState)})
	if err != nil {
		t.Fatalf("createRoom with %d initial_state entries: %v", client.MaxInitialState, err)
	}
	if got := len(roomState(a, room.RoomID)); got < client.MaxInitialState {
		t.Errorf("room has %d state entries, want at least %d", got, client.MaxInitialState)
	}
}
