package node

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"

	"github.com/parley-p2p/parley/internal/testkit"
	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/rooms"
)

// BenchmarkCatchUp: C is shut down while A's user sends N messages; the
// clock runs from C's restart until all N are in C's timeline. Also
// reported: events ingested per second during the catch-up.
func BenchmarkCatchUp(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			for range b.N {
				benchCatchUp(b, n)
			}
		})
	}
}

func benchCatchUp(b *testing.B, count int) {
	b.StopTimer()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	a := newTestNode(b, testOpts{})
	cdir := b.TempDir()
	c := newTestNode(b, testOpts{dir: cdir, bootstrap: []*testNode{a}})
	alice, carol := a.register(ctx, "alice"), c.register(ctx, "carol")
	room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat"})
	if err != nil {
		b.Fatal(err)
	}
	joinThrough(b, ctx, room.RoomID, alice, carol)
	c.Close()

	// Send straight through the node (no HTTP), 16 at a time.
	r := a.getRoom(room.RoomID.String())
	var wg sync.WaitGroup
	work := make(chan int)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				content, _ := rooms.MarshalCanonical(map[string]string{"msgtype": "m.text", "body": fmt.Sprint("missed ", i)})
				if _, err := a.dag.Send(ctx, r.Room, alice.UserID.String(), "m.room.message", nil, content, "", ""); err != nil {
					b.Error(err)
				}
			}
		}()
	}
	for i := range count {
		work <- i
	}
	close(work)
	wg.Wait()
	last := r.Head().Ext

	b.StartTimer()
	start := time.Now()
	c = newTestNode(b, testOpts{dir: cdir, bootstrap: []*testNode{a}})
	cr := c.getRoom(room.RoomID.String())
	testkit.WaitFor(b, 5*time.Minute, "c to catch up", func() bool {
		for _, id := range last {
			if !c.dag.Known(id) {
				return false
			}
		}
		return true
	})
	// Everything queued is committed once a later write is.
	c.store.Update(func(*store.Txn) error { return nil })
	took := time.Since(start)
	b.StopTimer()
	var n int
	c.store.View(func(t *store.Txn) error {
		entries, err := t.Timeline(cr.ID, 0, 0, true, 0)
		for _, e := range entries {
			if i, err := c.dag.Event(e.EventID); err == nil && i.Event.Type() == "m.room.message" {
				n++
			}
		}
		return err
	})
	if n != count {
		b.Fatalf("c has %d of %d messages in its timeline", n, count)
	}
	b.ReportMetric(took.Seconds()*1000, "catchup-ms")
	b.ReportMetric(float64(count)/took.Seconds(), "events/s")
	a.Close()
	c.Close()
}
