package client

import (
	"cmp"
	"encoding/json"
	"slices"
	"strings"
	"sync"

	"github.com/parley-p2p/parley/node/peers"
	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/rooms"
	"github.com/parley-p2p/parley/webui"
)

// Lazy-loading room members (client-server API, "Lazy-loading room
// members"). With lazy_load_members in its state filter, a /sync's
// state carries, of the m.room.member events, only those its timeline
// needs: its senders', the syncing user's own when they join or ask for
// full state, and those of the summary's heroes, as of the timeline's
// start. Unless include_redundant_members is set, a member event the
// device already holds is not sent again: each device's record of what
// it was sent (lazySent) counts only what it confirmed holding, by
// coming back with the answer's next_batch, so that an answer lost on
// the way is as if never sent. /messages and /context, with the filter,
// carry the member events of their events' senders, always (the spec
// lets them leave out redundant ones; they are few per page).

// Bounds of the record: a device's record is cleared when it holds
// maxLazyPerDevice event IDs (its client is then sent members again,
// redundant but correct); the least recently used device's goes when
// more than maxLazyDevices have one; an answer's IDs wait for the
// client's confirmation among the device's newest maxLazyPending.
const (
	maxLazyDevices   = 1024
	maxLazyPerDevice = 20000
	maxLazyPending   = 4
)

type lazyKey struct{ user, device string }

// lazyRecord is what one device was sent of member events.
type lazyRecord struct {
	held map[string]bool // confirmed: the client came back with the answer's token
	// pending are the IDs answers sent, by the stream position of their
	// next_batch, until the client comes back with one.
	pending map[uint64][]string
	used    uint64
}

// lazySent is every device's record.
type lazySent struct {
	mu      sync.Mutex
	devices map[lazyKey]*lazyRecord
	clock   uint64
}

// begin is called as a /sync answer is built from since: an initial
// sync (0) starts the device's record anew; any other confirms the
// answer whose next_batch it is.
func (l *lazySent) begin(s *webui.Session, since uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := lazyKey{s.UserID, s.DeviceID}
	if since == 0 {
		delete(l.devices, k)
		return
	}
	r := l.devices[k]
	if r == nil {
		return
	}
	ids, ok := r.pending[since]
	if !ok {
		return
	}
	delete(r.pending, since)
	if len(r.held)+len(ids) > maxLazyPerDevice {
		r.held = map[string]bool{}
	}
	for _, id := range ids {
		r.held[id] = true
	}
}

// holds reports which of ids the device holds.
func (l *lazySent) holds(s *webui.Session, ids []string) map[string]bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.devices[lazyKey{s.UserID, s.DeviceID}]
	out := map[string]bool{}
	if r == nil {
		return out
	}
	for _, id := range ids {
		if r.held[id] {
			out[id] = true
		}
	}
	return out
}

// note records member events sent in an answer built at pos.
func (l *lazySent) note(s *webui.Session, pos uint64, ids []string) {
	if len(ids) == 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.devices == nil {
		l.devices = map[lazyKey]*lazyRecord{}
	}
	k := lazyKey{s.UserID, s.DeviceID}
	r := l.devices[k]
	if r == nil {
		if len(l.devices) >= maxLazyDevices {
			l.evictLocked()
		}
		r = &lazyRecord{held: map[string]bool{}, pending: map[uint64][]string{}}
		l.devices[k] = r
	}
	l.clock++
	r.used = l.clock
	if _, ok := r.pending[pos]; !ok && len(r.pending) >= maxLazyPending {
		delete(r.pending, slices.Min(mapKeys(r.pending)))
	}
	if len(r.pending[pos])+len(ids) > maxLazyPerDevice {
		return // more than a record holds: the client is sent them again
	}
	r.pending[pos] = append(r.pending[pos], ids...)
}

func (l *lazySent) evictLocked() {
	var oldest lazyKey
	var at uint64
	first := true
	for k, r := range l.devices {
		if first || r.used < at {
			oldest, at, first = k, r.used, false
		}
	}
	delete(l.devices, oldest)
}

func mapKeys[K comparable, V any](m map[K]V) []K {
	out := make([]K, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// lazyWants says which member events a lazy-loading /sync room section
// carries besides its timeline senders'.
type lazyWants struct {
	own       bool     // the syncing user's (they joined, or asked for full state)
	heroes    []string // the summary's heroes
	redundant bool     // also those the device holds
	members   bool     // only member events: the section carries no other state
}

// lazyState narrows the state at a timeline's start (start) to what a
// lazy-loading client is sent: the state but m.room.member events (none
// of it if w.members), and the member events of the timeline's senders
// and those w names, but those the device holds (unless w.redundant).
func (api *API) lazyState(s *webui.Session, start store.StateMap, tl []webui.ClientEvent, w lazyWants) store.StateMap {
	want := map[string]bool{}
	for _, ev := range tl {
		want[ev.Sender] = true
	}
	for _, h := range w.heroes {
		want[h] = true
	}
	out := store.StateMap{}
	var ids []string
	for k, id := range start {
		if k.Type != "m.room.member" {
			if !w.members {
				out[k] = id
			}
			continue
		}
		if want[k.StateKey] || (w.own && k.StateKey == s.UserID) {
			out[k] = id
			ids = append(ids, id)
		}
	}
	if w.redundant {
		return out
	}
	held := api.lazy.holds(s, ids)
	for k, id := range out {
		if k.Type == "m.room.member" && held[id] && !(w.own && k.StateKey == s.UserID) {
			delete(out, k)
		}
	}
	return out
}

// sentMembers are the member events a /sync room section carries, in
// its state and its timeline: what the device now holds once it
// confirms the answer.
func sentMembers(state, timeline []webui.ClientEvent) []string {
	var ids []string
	for _, l := range [][]webui.ClientEvent{state, timeline} {
		for _, ev := range l {
			if ev.Type == "m.room.member" {
				ids = append(ids, ev.EventID)
			}
		}
	}
	return ids
}

// pageMembers are the member events of the senders of a page of
// history (/messages, /context), rendered: each sender's as of their
// event nearest the page's end (the state after it), from base if it
// has one for them (/context: the state at its event), else from the
// room's state the user may see for events with no state here
// (history fetched from other nodes).
func (api *API) pageMembers(s *webui.Session, r *peers.Room, base store.StateMap, pages ...[]webui.ClientEvent) []webui.ClientEvent {
	found := store.StateMap{}
	var current store.StateMap
	for _, page := range pages {
		for k := len(page) - 1; k >= 0; k-- {
			sender := page[k].Sender
			key := rooms.StateKey{Type: "m.room.member", StateKey: sender}
			if _, ok := found[key]; ok {
				continue
			}
			if id, ok := base[key]; ok {
				found[key] = id
				continue
			}
			m := api.stateAfter(page[k].EventID)
			if m == nil {
				if current == nil {
					if current, _ = api.roomState(s, r.ID); current == nil {
						current = store.StateMap{}
					}
				}
				m = current
			}
			if id, ok := m[key]; ok {
				found[key] = id
			}
		}
	}
	return api.stateEvents(nil, found, nil, s, true)
}

// stateAfter is the state after an event; nil if it has none here.
func (api *API) stateAfter(eventID string) store.StateMap {
	i, err := api.dag.Event(eventID)
	if err != nil || i.Rec.StateAfter == "" {
		return nil
	}
	m, err := api.dag.Snapshot(i.Rec.StateAfter)
	if err != nil {
		return nil
	}
	return m
}

// hero is a candidate for a room summary's heroes.
type hero struct {
	user  string
	order uint64 // their member event's place in the timeline
}

// firstHeroes are the users of the first n candidates by order.
func firstHeroes(hs []hero, n int) []string {
	slices.SortFunc(hs, func(a, b hero) int {
		if a.order != b.order {
			return cmp.Compare(a.order, b.order)
		}
		return strings.Compare(a.user, b.user)
	})
	out := []string{}
	for _, h := range hs[:min(n, len(hs))] {
		out = append(out, h.user)
	}
	return out
}

// memberOrder is a member event's membership, as membership reads it,
// and its place in the room's timeline (0 if it has none here).
func (api *API) memberOrder(t *store.Txn, id string) (string, uint64) {
	if i, ok := api.dag.Cached(id); ok {
		return i.Event.Membership(), i.Rec.TimelineOrder()
	}
	if t != nil {
		if rec, err := t.Event(id); err == nil {
			if sk, ok := rooms.SkimStored(rec.PDU, rec.Version, id); ok {
				return sk.Membership, rec.TimelineOrder()
			}
		}
	}
	i, err := api.dag.Event(id)
	if err != nil {
		return "", 0
	}
	return i.Event.Membership(), i.Rec.TimelineOrder()
}

// withoutMembers is a state map but its m.room.member events.
func withoutMembers(m store.StateMap) store.StateMap {
	out := make(store.StateMap, len(m))
	for k, id := range m {
		if k.Type != "m.room.member" {
			out[k] = id
		}
	}
	return out
}

// unnamed reports whether a room has neither a name nor a canonical
// alias: its clients name it after the summary's heroes, whose member
// events a lazy-loading client is then sent.
func (api *API) unnamed(t *store.Txn, state store.StateMap) bool {
	for _, k := range []struct{ typ, field string }{{"m.room.name", "name"}, {"m.room.canonical_alias", "alias"}} {
		id, ok := state[rooms.StateKey{Type: k.typ}]
		if !ok {
			continue
		}
		e, err := api.readShown(t, id)
		if err != nil || e.hidden {
			continue
		}
		var c map[string]any
		if json.Unmarshal(e.Content, &c) == nil {
			if v, _ := c[k.field].(string); v != "" {
				return false
			}
		}
	}
	return true
}
