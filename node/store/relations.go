package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	badger "github.com/dgraph-io/badger/v4"
)

// Relations: the events that relate to another one (m.relates_to with a
// rel_type: edits, threads, references, reactions), kept in the write of
// the related event, so that GET /relations, GET /threads and the
// aggregations bundled into the events clients see are key reads.
//
//	rl/<room>\0<parent>\0<order 8B>  -> Relation (the child at that timeline order)
//	rlc/<child>                      -> Link (which parent it relates to, to undo it)
//	ra/<room>\0<parent>              -> Aggregate (what is bundled; parents with edits, threads or references only)
//	th/<room>\0<order 8B>            -> thread root ID (keyed by its latest reply's order)
//	thp/<room>\0<root>\0<user>       -> "" (user sent a reply in the thread)
//
// Bound: each event relates to at most one parent, so rl/ and rlc/ hold
// one small key each per stored event at most; ra/ and th/ one per
// parent (thread root) with children; thp/ one per reply at most. All of
// it is removed with the child's redaction.
//
// A Bloom filter of the parents that have an aggregate (built at Open
// from ra/, grown as aggregates are written) answers "none" for almost
// every event shown without a read: bundling costs nothing for events
// nothing relates to.

func prefixRelations(room, parent string) []byte {
	return []byte("rl/" + room + "\x00" + parent + "\x00")
}

func keyRelation(room, parent string, order uint64) []byte {
	return binary.BigEndian.AppendUint64(prefixRelations(room, parent), order)
}

func keyRelationOf(child string) []byte       { return []byte("rlc/" + child) }
func keyAggregate(room, parent string) []byte { return []byte("ra/" + room + "\x00" + parent) }
func prefixThreads(room string) []byte        { return []byte("th/" + room + "\x00") }
func prefixParticipants(room, root string) []byte {
	return []byte("thp/" + room + "\x00" + root + "\x00")
}

func keyThread(room string, order uint64) []byte {
	return binary.BigEndian.AppendUint64(prefixThreads(room), order)
}

// Relation is one child event of a parent, as the relation index keeps
// it.
type Relation struct {
	// Order is the child's timeline order (its key).
	Order uint64 `json:"-"`
	// RelType is the relation's rel_type.
	RelType string `json:"r"`
	// EventID, Type (its plain type), Sender and TS (origin_server_ts)
	// are the child's.
	EventID string `json:"e"`
	Type    string `json:"t"`
	Sender  string `json:"s"`
	TS      int64  `json:"ts"`
	// State marks a child with a state key; NewContent one whose content
	// has m.new_content (what an edit needs to be one).
	State      bool `json:"st,omitempty"`
	NewContent bool `json:"n,omitempty"`
	// Key is an annotation's key (a reaction's emoji).
	Key string `json:"k,omitempty"`
}

// Link is what rlc/ keeps of a child: the parent it relates to, and where
// its rl/ key is.
type Link struct {
	Room    string `json:"room"`
	Parent  string `json:"p"`
	RelType string `json:"r"`
	Order   uint64 `json:"o"`
}

// ParentFacts are what the rules of aggregation read of a parent: an edit
// must come from its sender, have its type, and not replace a state event
// or an edit; a thread's root relates to nothing.
type ParentFacts struct {
	Known   bool   `json:"k,omitempty"`
	Sender  string `json:"s,omitempty"`
	Type    string `json:"t,omitempty"`
	State   bool   `json:"st,omitempty"`
	RelType string `json:"r,omitempty"`
}

// Aggregate is what is bundled into a parent as clients see it
// (unsigned["m.relations"]).
type Aggregate struct {
	Parent ParentFacts `json:"p"`
	// Edit is the latest valid replacement (by origin_server_ts, then
	// event ID); "" if none.
	Edit   string `json:"e,omitempty"`
	EditTS int64  `json:"ets,omitempty"`
	// Threads counts the replies in the thread this parent is the root
	// of; ThreadLatest is the newest by timeline order, at ThreadOrder.
	Threads      int    `json:"n,omitempty"`
	ThreadLatest string `json:"tl,omitempty"`
	ThreadOrder  uint64 `json:"to,omitempty"`
	// References counts the m.reference children.
	References int `json:"rf,omitempty"`
}

// Empty reports whether nothing is aggregated.
func (a *Aggregate) Empty() bool {
	return a.Edit == "" && a.Threads == 0 && a.References == 0
}

// validRelationPart reports whether s may be part of a relation's keys.
func validRelationPart(s string) bool {
	return s != "" && len(s) <= 255 && !strings.ContainsRune(s, 0)
}

// PutRelation keeps a child of parent in room (rl/ and rlc/).
func (t *Txn) PutRelation(room, parent string, r *Relation) error {
	if r.Order == 0 || !validRelationPart(room) || !validRelationPart(parent) || !validRelationPart(r.EventID) || !validRelationPart(r.RelType) {
		return fmt.Errorf("store: bad relation %q of %q in %q", r.EventID, parent, room)
	}
	if err := t.setJSON(keyRelation(room, parent, r.Order), r); err != nil {
		return err
	}
	return t.setJSON(keyRelationOf(r.EventID), &Link{Room: room, Parent: parent, RelType: r.RelType, Order: r.Order})
}

// RelationOf is the link of a child to its parent; ErrNotFound if the
// event relates to nothing kept.
func (t *Txn) RelationOf(child string) (*Link, error) {
	var l Link
	if err := t.getJSON(keyRelationOf(child), &l); err != nil {
		return nil, err
	}
	return &l, nil
}

// DeleteRelation forgets a child (rl/ and rlc/), returning its link; nil
// if it had none.
func (t *Txn) DeleteRelation(child string) (*Link, error) {
	l, err := t.RelationOf(child)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if err := t.txn.Delete(keyRelation(l.Room, l.Parent, l.Order)); err != nil {
		return nil, err
	}
	return l, t.txn.Delete(keyRelationOf(child))
}

// Relations calls fn with the children of parent in room, by timeline
// order: upwards from from (inclusive) if forward, else downwards from
// it; until fn returns false or max keys have been read. It returns the
// order of the last key read (0 if none).
func (t *Txn) Relations(room, parent string, from uint64, forward bool, max int, fn func(*Relation) bool) (last uint64, err error) {
	prefix := prefixRelations(room, parent)
	start := keyRelation(room, parent, from)
	if !forward {
		if ok, err := t.anyAtOrBelow(prefix, start); err != nil || !ok {
			return 0, err
		}
	}
	n := 0
	err = t.scan(prefix, start, !forward, func(k, v []byte) (bool, error) {
		if len(k) != len(prefix)+8 {
			return false, fmt.Errorf("store: bad relation key %q", k)
		}
		var r Relation
		if err := json.Unmarshal(v, &r); err != nil {
			return false, fmt.Errorf("store: decode %q: %w", k, err)
		}
		r.Order = binary.BigEndian.Uint64(k[len(prefix):])
		last = r.Order
		n++
		return fn(&r) && n < max, nil
	})
	return last, err
}

// anyAtOrBelow reports whether a key of prefix sorts at or below upper.
// A reverse seek that finds no key of its prefix there walks on through
// every version of the keys below it (see Notices): a forward seek
// from the prefix's start tells first.
func (t *Txn) anyAtOrBelow(prefix, upper []byte) (bool, error) {
	found := false
	err := t.scan(prefix, nil, false, func(k, _ []byte) (bool, error) {
		found = bytes.Compare(k, upper) <= 0
		return false, nil
	})
	return found, err
}

// PutAggregate keeps a parent's aggregate.
func (t *Txn) PutAggregate(room, parent string, a *Aggregate) error {
	if t.s.relParents != nil {
		// Learnt before the commit: a failed write leaves a false
		// positive, which costs a read, never a wrong answer.
		t.s.relParents.add(parent)
	}
	return t.setJSON(keyAggregate(room, parent), a)
}

// DeleteAggregate forgets a parent's aggregate.
func (t *Txn) DeleteAggregate(room, parent string) error {
	return t.txn.Delete(keyAggregate(room, parent))
}

// Aggregate is a parent's aggregate; ErrNotFound if it has none. For an
// event nothing was ever aggregated into it reads nothing.
func (t *Txn) Aggregate(room, parent string) (*Aggregate, error) {
	if t.s.relParents != nil && !t.s.relParents.mayHave(parent) {
		return nil, ErrNotFound
	}
	var a Aggregate
	if err := t.getJSON(keyAggregate(room, parent), &a); err != nil {
		return nil, err
	}
	return &a, nil
}

// MayHaveAggregate is false when nothing was ever aggregated into parent:
// the filter's answer, with no transaction and no read.
func (s *Store) MayHaveAggregate(parent string) bool {
	return s.relParents == nil || s.relParents.mayHave(parent)
}

// PutThread lists a thread root in room at the order of its latest reply.
func (t *Txn) PutThread(room string, order uint64, root string) error {
	return t.txn.Set(keyThread(room, order), []byte(root))
}

// DeleteThread removes the thread listed at order.
func (t *Txn) DeleteThread(room string, order uint64) error {
	return t.txn.Delete(keyThread(room, order))
}

// Threads calls fn with the thread roots of room, latest activity first,
// from order upTo down, until fn returns false.
func (t *Txn) Threads(room string, upTo uint64, fn func(order uint64, root string) bool) error {
	prefix := prefixThreads(room)
	start := keyThread(room, upTo)
	if ok, err := t.anyAtOrBelow(prefix, start); err != nil || !ok {
		return err
	}
	return t.scan(prefix, start, true, func(k, v []byte) (bool, error) {
		if len(k) != len(prefix)+8 {
			return false, fmt.Errorf("store: bad thread key %q", k)
		}
		return fn(binary.BigEndian.Uint64(k[len(prefix):]), string(v)), nil
	})
}

// PutParticipant records that user replied in the thread of root.
func (t *Txn) PutParticipant(room, root, user string) error {
	return t.txn.Set(append(prefixParticipants(room, root), user...), nil)
}

// Participated reports whether user replied in the thread of root.
func (t *Txn) Participated(room, root, user string) (bool, error) {
	_, err := get(t.txn, append(prefixParticipants(room, root), user...))
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// DeleteParticipants forgets who replied in the thread of root.
func (t *Txn) DeleteParticipants(room, root string) error {
	return t.deletePrefix(prefixParticipants(room, root))
}

// loadRelParents builds the filter of parents with an aggregate from ra/.
func (s *Store) loadRelParents(txn *badger.Txn) error {
	n := 0
	if err := keysWithPrefix(txn, []byte("ra/"), func([]byte) { n++ }); err != nil {
		return err
	}
	s.relParents = newEventFilter(2 * n)
	return keysWithPrefix(txn, []byte("ra/"), func(k []byte) {
		if i := bytes.IndexByte(k, 0); i >= 0 {
			s.relParents.addBytes(k[i+1:])
		}
	})
}
