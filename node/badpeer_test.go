package node

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-p2p/parley/internal/testkit"
	"github.com/parley-p2p/parley/node/dag"
	"github.com/parley-p2p/parley/node/peers"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/p2p"
	"github.com/parley-p2p/parley/rooms"
)

// TestBadPeersCostTimeNotIntegrity: a member's node that claims to have
// events A lacks, then answers A's fetches with garbage, truncated JSON,
// forged events or nothing at all, costs A at most its request timeout
// per answer and a bounded number of answers, and A's DAG is exactly as
// before. It counts requests instead of timing the catch-up, so it can
// run beside other tests.
func TestBadPeersCostTimeNotIntegrity(t *testing.T) {
	t.Parallel()
	const timeout = time.Second
	const maxFetches = 2 // the fetch, and one retry
	type answer func(ctx context.Context, real []byte) ([]byte, error)
	modes := []struct {
		name   string
		answer answer
		honest bool
	}{
		{name: "an honest answer (the control: the event is fetched)", honest: true, answer: func(_ context.Context, real []byte) ([]byte, error) { return real, nil }},
		{name: "garbage bytes", answer: func(context.Context, []byte) ([]byte, error) { return []byte("\x00\xffnot json at all"), nil }},
		{name: "truncated JSON", answer: func(_ context.Context, real []byte) ([]byte, error) { return real[:len(real)/2], nil }},
		{name: "a forged event", answer: func(_ context.Context, real []byte) ([]byte, error) {
			return bytes.Replace(real, []byte(`"real body"`), []byte(`"forged!!!"`), 1), nil
		}},
		{name: "the wrong JSON shape", answer: func(context.Context, []byte) ([]byte, error) { return []byte(`{"pdus": "nope"}`), nil }},
		{name: "no answer at all", answer: func(ctx context.Context, _ []byte) ([]byte, error) { <-ctx.Done(); return nil, ctx.Err() }},
	}
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			a := newTestNode(t, testOpts{requestTimeout: timeout})
			var m *testNode
			var fetches atomic.Int32 // requests A made of M for events
			// forgedID is this subtest's own: the subtests run in
			// parallel, and one shared ID let one's bad peer claim
			// another's event (the honest control then failed, 1 CI run
			// in 20 or so). Atomic: M's handler reads it.
			var forgedIDv atomic.Value
			forgedIDv.Store("")
			forged := func() string { return forgedIDv.Load().(string) }
			m = newTestNode(t, testOpts{bootstrap: []*testNode{a}, wrap: func(h p2p.Handler) p2p.Handler {
				return func(ctx context.Context, from peer.ID, method string, body []byte) ([]byte, error) {
					out, err := h(ctx, from, method, body)
					switch method {
					case peers.MethodExtremities:
						// Claim an event A has not seen: one M built but never sent.
						var req peers.IDsReq
						json.Unmarshal(out, &req)
						req.EventIDs = append(req.EventIDs, forged())
						return json.Marshal(req)
					case peers.MethodMissingEvents, peers.MethodGetEvent, peers.MethodStateAfter, peers.MethodAuthChain, peers.MethodBackfill:
						fetches.Add(1)
						raw, _ := m.peers.PDU(forged())
						real, _ := json.Marshal(peers.PDUsResp{PDUs: []json.RawMessage{raw}})
						return mode.answer(ctx, real)
					}
					return out, err
				}
			}})
			alice, mallory := a.register(ctx, "alice"), m.register(ctx, "mallory")
			room := privateRoom(t, ctx, alice)
			joinThrough(t, ctx, room, alice, mallory)
			testkit.WaitFor(t, 10*time.Second, "mallory's join to reach a", func() bool {
				return a.membership(a.getRoom(room.String()), mallory.UserID.String()) == "join"
			})
			// And what follows the join (mallory's profile): a holds
			// all m does before the test starts counting.
			// Held means written: the engine knows an event before its
			// group commit reaches the store, and a write landing during
			// the catch-up would move the stream below.
			testkit.WaitFor(t, 10*time.Second, "a to hold m's head, written", func() bool {
				for _, id := range m.getRoom(room.String()).Head().Ext {
					var ok bool
					a.store.View(func(tx *store.Txn) error {
						ok, _ = tx.HasEvent(id)
						return nil
					})
					if !ok {
						return false
					}
				}
				return true
			})
			if err := a.store.Update(func(*store.Txn) error { return nil }); err != nil {
				t.Fatal(err) // writes commit in order: what a holds is written
			}

			// M builds (and stores, unpublished) an event A does not have.
			mr := m.getRoom(room.String())
			content, _ := rooms.MarshalCanonical(map[string]string{"msgtype": "m.text", "body": "real body"})
			p, _ := m.dag.Proto(mr.Room, mallory.UserID.String(), "m.room.message", nil, content)
			ev, err := rooms.Build(p, mr.Version, m.serverName, m.key)
			if err == nil {
				var out *dag.Outcome
				if out, err = m.dag.Admit(mr.Room, ev, dag.Opts{Local: true}); err == nil {
					err = <-out.Committed
				}
			}
			if err != nil {
				t.Fatal(err)
			}
			forgedIDv.Store(ev.ID())
			forgedID := ev.ID()

			ar := a.getRoom(room.String())
			extBefore, stateBefore := slices.Clone(ar.Head().Ext), maps.Clone(ar.State())
			posBefore := a.store.Pos()

			fetches.Store(0)
			a.peers.CatchUp(ctx, ar, m.PeerID())
			// What a bad peer costs is its number of answers A waits for,
			// each bounded by A's request timeout: a catch-up that retried
			// a peer that keeps failing would cost A without bound.
			if n := fetches.Load(); n > maxFetches {
				t.Errorf("the catch-up asked the bad peer %d times (at most %d allowed), each costing up to %v", n, maxFetches, timeout)
			}
			if ctx.Err() != nil {
				t.Fatalf("the catch-up waited for the bad peer until the test's own deadline: its request timeout (%v) did not apply", timeout)
			}
			// Writes commit in order: once this one is done, so is anything
			// the catch-up queued.
			if err := a.store.Update(func(*store.Txn) error { return nil }); err != nil {
				t.Fatal(err)
			}
			extAfter, stateAfter := slices.Clone(ar.Head().Ext), maps.Clone(ar.State())
			if mode.honest {
				if !a.dag.Known(forgedID) || a.store.Pos() == posBefore {
					t.Fatalf("the honest answer was not ingested: the scenario does not trigger a fetch")
				}
				return
			}
			if !slices.Equal(extBefore, extAfter) || !maps.Equal(stateBefore, stateAfter) {
				t.Errorf("the DAG head changed: ext %v -> %v", extBefore, extAfter)
			}
			if a.dag.Known(forgedID) {
				t.Errorf("a stored the event the bad peer served")
			}
			if a.store.Pos() != posBefore {
				// Name what was written, to tell a late honest write
				// from a stored forgery.
				var entries []store.TimelineEntry
				a.store.View(func(tx *store.Txn) error {
					entries, _ = tx.Timeline(room.String(), store.LiveBase+posBefore, 0, true, 10)
					return nil
				})
				for _, e := range entries {
					if i, err := a.dag.Event(e.EventID); err == nil {
						t.Logf("written during the catch-up: %s, %s from %s", e.EventID, i.Event.Type(), i.Event.Sender())
					}
				}
				t.Errorf("the stream moved from %d to %d", posBefore, a.store.Pos())
			}
			// A still works.
			if _, err := alice.SendText(ctx, room, "still here"); err != nil {
				t.Errorf("send after the bad peer: %v", err)
			}
		})
	}
}
