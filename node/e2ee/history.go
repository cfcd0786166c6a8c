package e2ee

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/parley-p2p/parley/node/dag"
	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/rooms"
)

// History for joiners: when another server joins, this node hands it
// the sessions it may read, each exported at the first index whose
// event the joiner may see (Config.Visible: the room's history
// visibility), sealed to the joiner's KEM key. Sessions never straddle
// a departure or a change of visibility (rotation), so the part of a
// session a joiner may read is a suffix.
//
// A node hands over its own sessions, and those of owners no longer
// joined (who cannot). Duplicates from several members are harmless:
// accept keeps the one that starts lowest and agrees with what it holds.

// handedPerEvent bounds the sessions of one handover event: about 450
// bytes of JSON each, 600 once sealed and in base64, so 80 of them stay
// under 50 KB.
const handedPerEvent = 80

func keyHanded(room, server, joinID string) string {
	return "h/" + room + "\x00" + server + "\x00" + joinID
}

// noteJoin starts a handover for a join of another server's user, sent
// by that server.
func (k *Keeper) noteJoin(r *dag.Room, ev *rooms.Event) {
	sk := ev.StateKey()
	if sk == nil || ev.Membership() != "join" {
		return
	}
	server, err := rooms.ServerOf(*sk)
	if err != nil || server == k.server {
		return
	}
	if s, err := rooms.ServerOf(ev.Sender()); err != nil || s != server {
		return
	}
	k.goJob(func(ctx context.Context) {
		if err := k.handOver(ctx, r, server, ev); err != nil {
			k.log.Info("history handover failed", "room", r.ID, "to", server, "err", err)
		}
	})
}

// handOver sends server the sessions of the events it may read.
func (k *Keeper) handOver(ctx context.Context, r *dag.Room, server string, join *rooms.Event) error {
	// A join after a join is a profile change: the server had its keys.
	for _, id := range join.AuthEvents() {
		if prev, err := k.event(id); err == nil && prev.Type() == "m.room.member" && prev.StateKey() != nil &&
			*prev.StateKey() == *join.StateKey() && prev.Membership() == "join" {
			return nil
		}
	}
	// A join superseded since (a catch-up of old history) calls for
	// nothing: the member left. A membership the join builds on (an
	// invite, among its auth events) is no successor: the join, opened
	// as it is admitted, may not be in the room's state yet when this
	// runs.
	if id, ok := r.Head().State[join.Key()]; ok && id != join.ID() && !slices.Contains(join.AuthEvents(), id) {
		if m, ok := k.engine.MembershipOf(id); !ok || m != "join" {
			return nil
		}
	}
	marker := keyHanded(r.ID, server, join.ID())
	done := false
	k.st.View(func(t *store.Txn) error {
		_, err := t.E2Get(marker)
		done = err == nil
		return nil
	})
	pk := k.memberKEM(join)
	if done || pk.pk == nil {
		return nil
	}
	v := k.view(r)
	if len(v.local) == 0 {
		return nil
	}
	list, err := k.handable(r, server, v)
	if err != nil || len(list) == 0 {
		return err
	}
	// Handing over the session in use makes the joiner one who holds
	// it: its departure must rotate it, as a share's would.
	k.mu.Lock()
	if o := k.outs[r.ID]; o != nil {
		for _, h := range list {
			if h.S == o.id {
				o.users[*join.StateKey()] = true
			}
		}
	}
	k.mu.Unlock()
	for i := 0; i < len(list); i += handedPerEvent {
		chunk := list[i:min(i+handedPerEvent, len(list))]
		pt, _ := json.Marshal(chunk)
		nb := make([]byte, 16)
		rand.Read(nb)
		nonce := b64.EncodeToString(nb)
		ct, err := Seal(pk, historyInfo(r.ID, k.server, server, nonce), pt)
		if err != nil {
			return err
		}
		c, err := rooms.MarshalCanonical(share{
			V: 1, Kind: kindHistory, KEM: KEMAlg, Part: [2]int{i/handedPerEvent + 1, (len(list) + handedPerEvent - 1) / handedPerEvent},
			For: server, Nonce: nonce, Seal: b64.EncodeToString(ct),
		})
		if err != nil {
			return err
		}
		if _, err := k.engine.Send(ctx, r, v.local[0], ShareType, nil, c, "", ""); err != nil {
			return fmt.Errorf("send handover: %w", err)
		}
	}
	return k.st.Update(func(t *store.Txn) error { return t.E2Set(marker, nil) })
}

// handable lists the sessions to hand server, each exported from the
// first index of an event it may see.
func (k *Keeper) handable(r *dag.Room, server string, v view) ([]handed, error) {
	sessions := map[string]*inbound{}
	prefix := "r/" + r.ID + "\x00"
	var sids []string
	k.st.View(func(t *store.Txn) error {
		return t.E2Scan(prefix, func(key string, _ []byte) bool {
			sids = append(sids, strings.TrimPrefix(key, prefix))
			return true
		})
	})
	for _, sid := range sids {
		in := k.inbound(sid)
		if in == nil {
			continue
		}
		if _, joined := v.joined[in.rec.Owner]; in.rec.Owner == k.server || !joined && in.rec.Owner != server {
			sessions[sid] = in
		}
	}
	if len(sessions) == 0 {
		return nil, nil
	}
	first := map[string]uint32{}
	err := k.eachCiphertext(r.ID, func(eventID string, enc encrypted) {
		if sessions[enc.SessionID] == nil {
			return
		}
		idx, ok := messageIndex(enc.Ciphertext)
		if !ok {
			return
		}
		if f, seen := first[enc.SessionID]; seen && f <= idx {
			return
		}
		if k.cfg.Visible == nil || k.cfg.Visible(r.ID, eventID, server) {
			first[enc.SessionID] = idx
		}
	})
	if err != nil {
		return nil, err
	}
	// The current session, even with nothing visible in it yet: the
	// joiner reads what comes next without waiting for a top-up.
	k.mu.Lock()
	if o := k.outs[r.ID]; o != nil && sessions[o.id] != nil {
		if _, ok := first[o.id]; !ok {
			first[o.id] = uint32(o.s.MessageIndex())
		}
	}
	k.mu.Unlock()
	var out []handed
	for sid, idx := range first {
		in := sessions[sid]
		in.mu.Lock()
		idx = max(idx, in.first())
		exp, err := exportAt(in.s, idx)
		in.mu.Unlock()
		if err != nil {
			continue
		}
		out = append(out, handed{S: sid, O: in.rec.Owner, B: in.rec.Binding, I: idx, K: string(exp)})
	}
	return out, nil
}

// eachCiphertext calls fn for every encrypted event of the room's
// timeline, oldest first.
func (k *Keeper) eachCiphertext(roomID string, fn func(eventID string, enc encrypted)) error {
	var after uint64
	for {
		var page []store.TimelineEntry
		type item struct {
			id      string
			content json.RawMessage
		}
		var items []item
		err := k.st.View(func(t *store.Txn) error {
			var err error
			if page, err = t.Timeline(roomID, after, 0, true, 500); err != nil {
				return err
			}
			for _, e := range page {
				rec, err := t.Event(e.EventID)
				if err != nil {
					continue
				}
				if s, ok := rooms.SkimStored(rec.PDU, rec.Version, e.EventID); ok {
					items = append(items, item{e.EventID, s.Content})
				} else if ev, err := rooms.ParseTrusted(rec.PDU, rec.Version, e.EventID); err == nil {
					items = append(items, item{e.EventID, ev.Content()})
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, it := range items {
			if enc, ok := parseEncrypted(it.content); ok {
				fn(it.id, enc)
			}
		}
		if len(page) < 500 {
			return nil
		}
		after = page[len(page)-1].Order
	}
}
