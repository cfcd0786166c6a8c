package client

import (
	"encoding/json"
	"errors"

	"github.com/parley-p2p/parley/node/dag"
	"github.com/parley-p2p/parley/node/internal/fulltext"
	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/rooms"
)

// The search index holds the text of the events this node shows its
// users, decrypted: an event's body (and a file's name), a room's name
// and topic. It is written in each event's own transaction
// (OnTimeline), live or backfilled, and again when an event's plain view
// comes late; writing an event again rewrites the same entry. A valid
// edit (m.replace by the original's sender, with m.new_content) puts its
// new text in place of the original's, under the original's timeline
// order, so a search finds the original by its latest text and not its
// old one; the edit itself is not indexed. A redaction that applies
// removes its target's entry; redacting the edit whose text an original
// holds puts the original's own text back. The query is in
// searchquery.go; existing nodes fill the index with reindex.go.

// indexText returns the write that keeps an event's text in the search
// index, or nil if it has none to index.
func (api *API) indexText(te *timelineEvent) func(*store.Txn, uint64) error {
	ev := te.Event
	if ev.Type() == "m.room.redaction" {
		if ev.Redacts() == "" {
			return nil
		}
		return api.unindexText(te.Room, ev)
	}
	e := te.shown(api)
	if e.hidden || e.status != "" {
		return nil // the codec's own, or not decrypted (yet): nothing readable
	}
	c := te.content(api)
	if rel := c.RelatesTo; rel != nil && rel.RelType == "m.replace" {
		return api.indexEdit(te, e, c)
	}
	doc := searchDocOf(e, c)
	if doc == nil || api.dag.RedactedBy(ev) != nil {
		return nil
	}
	roomID, id := te.Room.ID, ev.ID()
	doc.EventID, doc.Source, doc.SourceTS = id, id, e.OriginServerTS
	if te.How == dag.Live || te.How == dag.History {
		// Placed in this write, at an order that had no event: no doc
		// is there to read or replace.
		return func(t *store.Txn, order uint64) error { return t.PutNewSearchDoc(roomID, order, doc) }
	}
	return func(t *store.Txn, order uint64) error {
		if old, err := t.SearchDoc(roomID, order); err == nil && old.Source != id {
			return nil // an edit's text stands in its place
		}
		return t.PutSearchDoc(roomID, order, doc)
	}
}

// indexEdit is indexText for an edit: the write that indexes its new
// text as the original's, if the edit is valid and no later one is
// indexed already.
func (api *API) indexEdit(te *timelineEvent, e shownEvent, c *timelineContent) func(*store.Txn, uint64) error {
	origID := c.RelatesTo.EventID
	if c.NewContent == nil || e.StateKey != nil || origID == "" || origID == te.Event.ID() {
		return nil
	}
	orig, err := api.dag.Event(origID)
	if err != nil {
		return nil
	}
	order := timelineOrder(orig)
	if order == 0 || api.dag.RedactedBy(orig.Event) != nil || api.dag.RedactedBy(te.Event) != nil {
		return nil
	}
	// The rules the bundled edit follows (relations.go): same room,
	// sender and type, no state event, the original not itself an edit.
	pf, other := api.parentFactsOf(te.Room.ID, orig)
	if other || !validEdit(pf, &store.Relation{Sender: e.Sender, Type: e.Type, State: e.StateKey != nil, NewContent: true}) {
		return nil
	}
	doc := analyzeFields(store.FieldBody, c.NewContent.Body)
	if doc == nil {
		doc = &store.SearchDoc{} // edited to no text: nothing is found by the old one
	}
	roomID, id, ts := te.Room.ID, te.Event.ID(), e.OriginServerTS
	doc.EventID, doc.Source, doc.SourceTS = origID, id, ts
	return func(t *store.Txn, _ uint64) error {
		if red, _ := t.Redaction(origID); red != nil {
			return nil
		}
		old, err := t.SearchDoc(roomID, order)
		if err == nil && old.Source != origID && old.Source != id && old.SourceTS > ts {
			return nil // a later edit is indexed
		}
		return t.PutSearchDoc(roomID, order, doc)
	}
}

// unindexText is the write that removes a redaction's target from the
// index once the engine has recorded that the redaction applies (in the
// same write, before this runs); if the target is an edit whose text
// its original holds, the original's own text goes back.
func (api *API) unindexText(r *dag.Room, ev *rooms.Event) func(*store.Txn, uint64) error {
	target := ev.Redacts()
	var origID string
	var origOrder uint64
	var origDoc *store.SearchDoc
	if ti, err := api.dag.Event(target); err == nil {
		var c timelineContent
		if te := api.plainShown(ti); json.Unmarshal(te.Content, &c) == nil && c.RelatesTo != nil && c.RelatesTo.RelType == relReplace {
			if oi, err := api.dag.Event(c.RelatesTo.EventID); err == nil && oi.Event.RoomID() == r.ID {
				origID, origOrder = oi.Event.ID(), timelineOrder(oi)
				oe := api.plainShown(oi)
				var oc timelineContent
				json.Unmarshal(oe.Content, &oc)
				if origDoc = searchDocOf(oe, &oc); origDoc != nil {
					origDoc.EventID, origDoc.Source, origDoc.SourceTS = origID, origID, oe.OriginServerTS
				}
			}
		}
	}
	return func(t *store.Txn, _ uint64) error {
		red, err := t.Redaction(target)
		if err != nil || red == nil || red.RedactionID != ev.ID() {
			return nil // does not apply (or not recorded: kept as it was)
		}
		if order := storedOrder(t, target); order != 0 {
			if err := t.DeleteSearchDoc(r.ID, order); err != nil {
				return err
			}
		}
		if origOrder == 0 {
			return nil
		}
		old, err := t.SearchDoc(r.ID, origOrder)
		if errors.Is(err, store.ErrNotFound) || (err == nil && old.Source != target) {
			return nil
		}
		if err != nil {
			return err
		}
		if origDoc == nil {
			return t.DeleteSearchDoc(r.ID, origOrder)
		}
		return t.PutSearchDoc(r.ID, origOrder, origDoc)
	}
}

// maxDropKeys bounds the keys of a forgotten room's index deleted in
// one write.
const maxDropKeys = 10_000

// dropForgottenIndex deletes a room's search index once no local user
// may read it any more: none is joined, invited or knocking, and every
// one who left forgot it. Otherwise the index stays, and a search skips
// the room for those who forgot it (readableRoom).
func (api *API) dropForgottenIndex(roomID string) error {
	if !api.forgottenByAll(roomID) {
		return nil
	}
	for done := false; !done; {
		if err := api.store.Update(func(t *store.Txn) error {
			var err error
			done, err = t.DeleteSearchRoom(roomID, maxDropKeys)
			return err
		}); err != nil {
			return err
		}
	}
	return api.store.Update(func(t *store.Txn) error { return t.DeleteIndexProgress(roomID) })
}

// forgottenByAll reports whether no local user may read the room: each
// one with a membership in it left and forgot it.
func (api *API) forgottenByAll(roomID string) bool {
	r := api.peers.Room(roomID)
	if r == nil {
		return false
	}
	for k, id := range r.State() {
		if k.Type != "m.room.member" {
			continue
		}
		if _, local := api.peers.LocalUser(k.StateKey); !local {
			continue
		}
		switch api.membership(nil, id) {
		case "leave", "ban":
			if !api.forgotten(k.StateKey, roomID, id) {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// plainShown is an event as clients see it, before any redaction: its
// plain type and content.
func (api *API) plainShown(i *dag.Info) shownEvent {
	e := shownEvent{Skim: i.Event.Skim(), rec: &i.Rec}
	api.view(&e)
	return e
}

// searchDocOf is what the index keeps of an event's text: a message's
// body (and a file's name), a room's name or topic; nil if it has none.
func searchDocOf(e shownEvent, c *timelineContent) *store.SearchDoc {
	if e.StateKey != nil {
		switch {
		case e.Type == "m.room.name" && *e.StateKey == "":
			return analyzeFields(store.FieldName, c.Name)
		case e.Type == "m.room.topic" && *e.StateKey == "":
			return analyzeFields(store.FieldTopic, c.Topic)
		}
		return nil
	}
	if c.Filename != "" && c.Filename != c.Body {
		return analyzeFields(store.FieldBody, c.Body, c.Filename)
	}
	return analyzeFields(store.FieldBody, c.Body)
}

// analyzeFields is the doc of texts of one field (its postings, length),
// within fulltext's bounds; nil if they have no term.
func analyzeFields(field uint8, texts ...string) *store.SearchDoc {
	var doc store.SearchDoc
	var n int
	at := map[string]int{}
	for _, text := range texts {
		d := fulltext.Analyze(text)
		n += int(d.Len)
		for _, term := range d.Terms {
			if i, ok := at[term.Text]; ok {
				doc.Postings[i].Count = uint8(min(int(doc.Postings[i].Count)+int(term.Count), 255))
				continue
			}
			if len(doc.Postings) == fulltext.MaxTerms {
				continue
			}
			at[term.Text] = len(doc.Postings)
			doc.Postings = append(doc.Postings, store.Posting{Term: term.Text, Fields: field, Count: term.Count})
		}
	}
	if len(doc.Postings) == 0 {
		return nil
	}
	doc.Len = uint8(min(n, 255))
	return &doc
}
