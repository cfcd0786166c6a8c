package client

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"

	"github.com/parley-p2p/parley/node/dag"
	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/rooms"
)

// Relations (client-server API, "Forming relationships between events"):
// an event whose shown content has m.relates_to with a rel_type is a
// child of the event it names, kept in the relation index (store.Relation)
// in the child's own write, whichever way it came: live, as history, or
// with its plain view late (the relation of an encrypted event is inside
// its ciphertext). What is bundled into the parent (store.Aggregate: the
// latest valid edit, the thread's count and latest reply, references) is
// kept with it, added to as children come, recomputed from the index
// when one goes (its redaction) or when the parent comes after its
// children (history is fetched newest first), so hearing an event twice
// counts it once.

// maxRecompute bounds the children read to recompute an aggregate.
const maxRecompute = 10000

// Aggregated relation types.
const (
	relReplace    = "m.replace"
	relThread     = "m.thread"
	relReference  = "m.reference"
	relAnnotation = "m.annotation"
)

// relate returns the write that keeps an event's relation (m.relates_to)
// indexed and its parent's aggregate up to date, and the event's own
// aggregate if it is a parent whose children came first; nil if there is
// nothing to do.
func (api *API) relate(te *timelineEvent) func(*store.Txn, uint64) error {
	r, ev := te.Room, te.Event
	if ev.Type() == "m.room.redaction" && ev.Redacts() != "" {
		return api.unrelate(r, ev)
	}
	if api.dag.RedactedBy(ev) != nil {
		return nil // redacted before it came: nothing to relate
	}
	e := te.shown(api)
	if e.hidden || e.status == e2eeForged {
		return nil // the codec's own, or no plaintext to trust
	}
	c := te.content(api)
	self := factsOf(e, c)
	var child *store.Relation
	var parent string
	var pf store.ParentFacts
	if rt := c.RelatesTo; rt != nil && validRelation(rt.RelType, rt.EventID) && rt.EventID != ev.ID() {
		parent = rt.EventID
		child = &store.Relation{
			RelType: rt.RelType, EventID: ev.ID(), Type: e.Type, Sender: e.Sender,
			TS: e.OriginServerTS, State: e.StateKey != nil, NewContent: c.NewContent != nil,
		}
		if rt.RelType == relAnnotation && len(rt.Key) <= 255 {
			child.Key = rt.Key
		}
		var other bool
		pf, other = api.parentFacts(r.ID, parent)
		if other {
			child = nil // a parent in another room: no relation
		}
	}
	return func(t *store.Txn, order uint64) error {
		if err := refreshParent(t, r.ID, ev.ID(), self); err != nil {
			return err
		}
		if child == nil {
			return nil
		}
		child.Order = order
		return addChild(t, r.ID, parent, pf, child)
	}
}

// validRelation reports whether a relation read from content can be
// kept: a rel_type and an event ID of sane size.
func validRelation(relType, eventID string) bool {
	return relType != "" && len(relType) <= 255 && !strings.ContainsRune(relType, 0) &&
		strings.HasPrefix(eventID, "$") && len(eventID) <= 255 && !strings.ContainsRune(eventID, 0)
}

// factsOf is what the aggregation rules read of an event as a parent.
func factsOf(e shownEvent, c *timelineContent) store.ParentFacts {
	f := store.ParentFacts{Known: true, Sender: e.Sender, Type: e.Type, State: e.StateKey != nil}
	if c.RelatesTo != nil {
		f.RelType = c.RelatesTo.RelType
	}
	return f
}

// parentFacts reads the parent of a relation as it is shown; the zero
// facts if this node does not have it (yet). other is true for an event
// of another room.
func (api *API) parentFacts(roomID, id string) (f store.ParentFacts, other bool) {
	i, err := api.dag.Event(id)
	if err != nil {
		return store.ParentFacts{}, false
	}
	return api.parentFactsOf(roomID, i)
}

// parentFactsOf is parentFacts of an event read already.
func (api *API) parentFactsOf(roomID string, i *dag.Info) (f store.ParentFacts, other bool) {
	if i.Event.RoomID() != roomID {
		return store.ParentFacts{}, true
	}
	e := api.shownInfo(i)
	if e.hidden {
		return store.ParentFacts{}, true
	}
	var c timelineContent
	if len(e.Content) > 0 && bytes.Contains(e.Content, []byte(`"m.relates_to"`)) {
		_ = json.Unmarshal(e.Content, &c) // not this shape: relates to nothing
	}
	return factsOf(e, &c), false
}

// refreshParent recomputes the aggregate of an event that children came
// before (it has one already), now that the event is known or shown.
func refreshParent(t *store.Txn, roomID, id string, self store.ParentFacts) error {
	a, err := t.Aggregate(roomID, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if a.Parent == self {
		return nil // the same facts: the aggregate already holds them
	}
	return recompute(t, roomID, id, self, a)
}

// addChild keeps a child and adds it to its parent's aggregate; a child
// kept already (heard again) has its parent's aggregate recomputed
// instead, so nothing counts twice.
func addChild(t *store.Txn, roomID, parent string, pf store.ParentFacts, c *store.Relation) error {
	l, err := t.RelationOf(c.EventID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		l = nil
	case err != nil:
		return err
	}
	if l != nil && (l.Room != roomID || l.Parent != parent || l.Order != c.Order) {
		// Related otherwise before: undo that first.
		if _, err := t.DeleteRelation(c.EventID); err != nil {
			return err
		}
		if aggregated(l.RelType) {
			if err := recomputeKept(t, l.Room, l.Parent); err != nil {
				return err
			}
		}
		l = nil
	}
	if err := t.PutRelation(roomID, parent, c); err != nil {
		return err
	}
	if !aggregated(c.RelType) {
		return nil
	}
	a, err := t.Aggregate(roomID, parent)
	switch {
	case errors.Is(err, store.ErrNotFound):
		a = &store.Aggregate{Parent: pf} // the first child to count
	case err != nil:
		return err
	}
	if l != nil || (pf.Known && pf != a.Parent) {
		// Heard again, or the parent shows otherwise than when its
		// children were counted (its plain view came since): count
		// them all again.
		if pf.Known {
			return recompute(t, roomID, parent, pf, a)
		}
		return recompute(t, roomID, parent, a.Parent, a)
	}
	old := *a
	addTo(a, c)
	if c.RelType == relThread && a.Threads != old.Threads {
		if err := t.PutParticipant(roomID, parent, c.Sender); err != nil {
			return err
		}
	}
	return putAggregate(t, roomID, parent, &old, a, true)
}

// aggregated reports whether children of the relation type change the
// parent's aggregate.
func aggregated(relType string) bool {
	return relType == relReplace || relType == relThread || relType == relReference
}

// validEdit reports whether c replaces a parent with facts p (the spec's
// rules for m.replace: same sender and type, neither a state event, the
// original not itself an edit, and new content to show; an encrypted
// edit's new content is inside its ciphertext).
func validEdit(p store.ParentFacts, c *store.Relation) bool {
	return p.Known && c.Sender == p.Sender && c.Type == p.Type && !p.State && !c.State &&
		p.RelType != relReplace && (c.NewContent || c.Type == "m.room.encrypted")
}

// validRoot reports whether a parent with facts p can be a thread's root:
// one that relates to nothing itself (or not known yet).
func validRoot(p store.ParentFacts) bool { return !p.Known || p.RelType == "" }

// newerEdit reports whether c is a later edit than the one at (ts, id).
func newerEdit(c *store.Relation, id string, ts int64) bool {
	if id == "" {
		return true
	}
	if c.TS != ts {
		return c.TS > ts
	}
	return c.EventID > id
}

// addTo counts c into a, the aggregate of a parent with facts a.Parent.
func addTo(a *store.Aggregate, c *store.Relation) {
	switch c.RelType {
	case relReplace:
		if validEdit(a.Parent, c) && newerEdit(c, a.Edit, a.EditTS) {
			a.Edit, a.EditTS = c.EventID, c.TS
		}
	case relThread:
		if validRoot(a.Parent) {
			a.Threads++
			if c.Order > a.ThreadOrder {
				a.ThreadLatest, a.ThreadOrder = c.EventID, c.Order
			}
		}
	case relReference:
		a.References++
	}
}

// putAggregate writes a parent's aggregate, moving its thread in the
// room's list of threads if its latest reply changed from old's. Unless
// keep, it deletes one with nothing aggregated: keep it while the parent
// has children that could be (an edit whose original's type is not yet
// known to match), so that the parent's plain view, come late, finds it
// to recompute.
func putAggregate(t *store.Txn, roomID, parent string, old, a *store.Aggregate, keep bool) error {
	if old.ThreadOrder != a.ThreadOrder || (old.Threads > 0) != (a.Threads > 0) {
		if old.Threads > 0 && old.ThreadOrder != 0 {
			if err := t.DeleteThread(roomID, old.ThreadOrder); err != nil {
				return err
			}
		}
		if a.Threads > 0 {
			if err := t.PutThread(roomID, a.ThreadOrder, parent); err != nil {
				return err
			}
		}
	}
	if a.Empty() && !keep {
		return t.DeleteAggregate(roomID, parent)
	}
	return t.PutAggregate(roomID, parent, a)
}

// recomputeKept recomputes a parent's aggregate with the facts it holds.
func recomputeKept(t *store.Txn, roomID, parent string) error {
	a, err := t.Aggregate(roomID, parent)
	switch {
	case errors.Is(err, store.ErrNotFound):
		a = &store.Aggregate{}
	case err != nil:
		return err
	}
	return recompute(t, roomID, parent, a.Parent, a)
}

// recompute rebuilds a parent's aggregate (old: as kept) from its
// children in the index, with the parent's facts p, and who replied in
// its thread.
func recompute(t *store.Txn, roomID, parent string, p store.ParentFacts, old *store.Aggregate) error {
	a := &store.Aggregate{Parent: p}
	var senders []string
	seen := map[string]bool{}
	keep := false
	if _, err := t.Relations(roomID, parent, 0, true, maxRecompute, func(c *store.Relation) bool {
		keep = keep || aggregated(c.RelType)
		before := a.Threads
		addTo(a, c)
		if a.Threads != before && !seen[c.Sender] {
			seen[c.Sender] = true
			senders = append(senders, c.Sender)
		}
		return true
	}); err != nil {
		return err
	}
	if err := t.DeleteParticipants(roomID, parent); err != nil {
		return err
	}
	for _, s := range senders {
		if err := t.PutParticipant(roomID, parent, s); err != nil {
			return err
		}
	}
	return putAggregate(t, roomID, parent, old, a, keep)
}

// unrelate is the write that removes a redacted event's relation and
// recomputes its parent's aggregate, once the engine has recorded that
// the redaction applies (in the same write, before this runs).
func (api *API) unrelate(r *dag.Room, ev *rooms.Event) func(*store.Txn, uint64) error {
	target := ev.Redacts()
	return func(t *store.Txn, _ uint64) error {
		red, err := t.Redaction(target)
		if err != nil || red == nil || red.RedactionID != ev.ID() {
			return nil // does not apply (or not recorded): kept as it was
		}
		l, err := t.DeleteRelation(target)
		if err != nil || l == nil || !aggregated(l.RelType) {
			return err // a reaction's redaction costs no recount
		}
		return recomputeKept(t, l.Room, l.Parent)
	}
}
