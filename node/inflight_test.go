package node

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-p2p/parley/node/dag"

	"maunium.net/go/mautrix"

	"github.com/parley-p2p/parley/rooms"
)

// TestAnEventAdmittedTwiceIsDurableForBoth: the same event can reach
// process twice (gossip and a join, say) while its first write is still
// in flight. The second admission must not report it committed before the
// write has ended, nor as stored when the write failed: a caller that
// publishes on that report would send peers an event its node lacks.
func TestAnEventAdmittedTwiceIsDurableForBoth(t *testing.T) {
	t.Parallel()
	for _, fail := range []bool{false, true} {
		name := "a write that succeeds"
		if fail {
			name = "a write that fails"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			var target atomic.Value // event ID whose write waits for release
			target.Store("")
			release := make(chan struct{})
			entered := make(chan struct{}, 1)
			errDisk := errors.New("the disk said no")
			a := newTestNode(t, testOpts{failWrite: func(ev *rooms.Event, _ []byte) error {
				if ev.ID() != target.Load().(string) {
					return nil
				}
				entered <- struct{}{}
				<-release
				if fail {
					return errDisk
				}
				return nil
			}})
			var releaseOnce sync.Once
			releaseAll := func() { releaseOnce.Do(func() { close(release) }) }
			t.Cleanup(releaseAll) // before the node closes, should the test fail early
			alice := a.register(ctx, "alice")
			created, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat"})
			if err != nil {
				t.Fatal(err)
			}
			r := a.getRoom(created.RoomID.String())
			content, _ := rooms.MarshalCanonical(map[string]string{"msgtype": "m.text", "body": "twice"})
			p, err := a.dag.Proto(r.Room, alice.UserID.String(), "m.room.message", nil, content)
			if err != nil {
				t.Fatal(err)
			}
			ev, err := rooms.Build(p, r.Version, a.serverName, a.key)
			if err != nil {
				t.Fatal(err)
			}
			target.Store(ev.ID())

			admit := func() *dag.Outcome {
				out, err := a.dag.Admit(r.Room, ev, dag.Opts{})
				if err != nil {
					t.Fatal(err)
				}
				return out
			}
			first := admit()
			<-entered // the write is under way, and waits
			second := admit()
			select {
			case err := <-second.Committed:
				t.Fatalf("the second admission reported %v before the write ended", err)
			default:
			}
			releaseAll()
			for i, out := range []*dag.Outcome{first, second} {
				err := <-out.Committed
				if fail != (err != nil) {
					t.Errorf("admission %d: write result %v, want failure %v", i+1, err, fail)
				}
			}
		})
	}
}
