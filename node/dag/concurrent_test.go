package dag_test

import (
	"encoding/json"
	"maps"
	"slices"
	"sync"
	"testing"

	"github.com/parley-p2p/parley/node/dag"
	"github.com/parley-p2p/parley/rooms"
)

// TestConcurrentPeersAndLocalSendsKeepTheHeadConsistent: four peers each
// send a chain of messages off the same event while a local user sends
// too. Whatever the interleaving, every event is accepted, the room's
// extremities are exactly the events no other names as a prev event, and
// the stored head is the head in memory, also after reopening.
func TestConcurrentPeersAndLocalSendsKeepTheHeadConsistent(t *testing.T) {
	const chains, perChain, sends = 4, 25, 25
	f := newFixture(t, nil)
	b, evs := setupRoom(t, rooms.V12)
	local := serverL.user("local")
	evs = append(evs, b.member(alice, local, "invite"), b.member(local, local, "join"))
	r := f.room(b)
	f.admit(r, evs...)
	state := maps.Clone(r.State())

	senders := []string{bob, carol, carol2, dave}
	var all [][]*rooms.Event
	for c := range chains {
		br := b.fork()
		var chain []*rooms.Event
		for range perChain {
			chain = append(chain, br.msg(senders[c], "chain"))
		}
		all = append(all, chain)
	}

	var wg sync.WaitGroup
	var mu sync.Mutex
	var sent []*rooms.Event
	for _, chain := range all {
		wg.Go(func() {
			// Errorf, not Fatalf: this is not the test's goroutine.
			for _, ev := range chain {
				out, err := f.e.Admit(r, ev, dag.Opts{})
				if err == nil && out.Rejected == nil {
					err = <-out.Committed
				}
				if err != nil || out.Rejected != nil {
					t.Errorf("%s: %v %v", ev.ID(), err, out)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for range sends {
			ev, err := f.e.Send(t.Context(), r, local, "m.room.message", nil, json.RawMessage(`{"body":"local"}`), "", "")
			if err != nil {
				t.Errorf("send: %v", err)
				return
			}
			mu.Lock()
			sent = append(sent, ev)
			mu.Unlock()
		}
	})
	wg.Wait()
	if t.Failed() {
		return
	}

	named := map[string]bool{}
	var every []*rooms.Event
	for _, chain := range all {
		every = append(every, chain...)
	}
	every = append(every, sent...)
	for _, ev := range every {
		for _, p := range ev.PrevEvents() {
			named[p] = true
		}
	}
	var want []string
	for _, ev := range every {
		if !named[ev.ID()] {
			want = append(want, ev.ID())
		}
	}
	h := r.Head()
	if !sameSet(h.Ext, want) {
		t.Errorf("extremities %v, want %v", h.Ext, want)
	}
	if !maps.Equal(h.State, state) {
		t.Errorf("messages changed the state:%s", stateDiff(h.State, state))
	}
	for _, ev := range every {
		if rec, ok := f.stored(ev.ID()); !ok || rec.Pos == 0 {
			t.Errorf("%s stored %v, want in the timeline", ev.ID(), ok)
		}
	}
	ext := slices.Clone(h.Ext)
	f.reopen()
	if got := f.e.Room(r.ID).Head(); !slices.Equal(got.Ext, ext) || !maps.Equal(got.State, state) {
		t.Errorf("after reopening: extremities %v, want %v", got.Ext, ext)
	}
}
