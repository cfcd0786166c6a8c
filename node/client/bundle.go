package client

import (
	"errors"

	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/webui"
)

// Bundled aggregations (client-server API, "Aggregations of child
// events"): every event rendered for a user carries in
// unsigned["m.relations"] what relates to it, from its aggregate
// (relations.go):
//
//   - "m.replace": the latest valid edit, the whole event (since v1.7 the
//     server does not rewrite the original; the client shows the edit's
//     m.new_content). Not for a redacted original: redacting it hides its
//     edits.
//   - "m.thread": the thread's latest reply (itself with its bundle), the
//     count of replies, and whether the user sent the root or a reply.
//   - "m.reference": the IDs of the first maxBundledReferences references.
//
// The events bundled are only those the user may see. The cost for an
// event nothing relates to is a probe of an in-memory filter; for one
// with an aggregate, one read, and the reads of the events bundled.

// maxBundledReferences bounds the references bundled into one event.
const maxBundledReferences = 100

// maxBundleDepth bounds the nesting of bundles (a thread's latest reply
// bundles its own edit); the rules of aggregation already stop at two.
const maxBundleDepth = 2

// bundle adds the aggregations of e to unsigned, as s sees them; nothing
// for a render for no one (s nil) or too deep in another's bundle.
func (api *API) bundle(e shownEvent, s *webui.Session, withRoom bool, unsigned map[string]any) {
	if s == nil || e.depth > maxBundleDepth || e.RoomID == "" || !api.store.MayHaveAggregate(e.ID) {
		return
	}
	var a *store.Aggregate
	var refs []map[string]string
	participated := false
	err := api.store.View(func(t *store.Txn) error {
		var err error
		if a, err = t.Aggregate(e.RoomID, e.ID); err != nil {
			return err
		}
		if a.Threads > 0 && e.Sender != s.UserID {
			if participated, err = t.Participated(e.RoomID, e.ID, s.UserID); err != nil {
				return err
			}
		}
		if a.References > 0 {
			_, err = t.Relations(e.RoomID, e.ID, 0, true, maxRecompute, func(c *store.Relation) bool {
				if c.RelType == relReference {
					refs = append(refs, map[string]string{"event_id": c.EventID})
				}
				return len(refs) < maxBundledReferences
			})
		}
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return
	}
	if err != nil {
		api.log.Warn("aggregations not read", "event", e.ID, "err", err)
		return
	}
	rel := map[string]any{}
	if a.Edit != "" && e.redactedBy == nil {
		if ce, ok := api.bundled(s, e, a.Edit, withRoom); ok {
			rel[relReplace] = ce
		}
	}
	if a.Threads > 0 && a.ThreadLatest != "" {
		if ce, ok := api.bundled(s, e, a.ThreadLatest, withRoom); ok {
			rel[relThread] = map[string]any{
				"latest_event":              ce,
				"count":                     a.Threads,
				"current_user_participated": participated || e.Sender == s.UserID,
			}
		}
	}
	if len(refs) > 0 {
		rel[relReference] = map[string]any{"chunk": refs}
	}
	if len(rel) > 0 {
		unsigned["m.relations"] = rel
	}
}

// bundled renders a child of parent for its bundle, if s may see it.
func (api *API) bundled(s *webui.Session, parent shownEvent, id string, withRoom bool) (webui.ClientEvent, bool) {
	r, upTo, worldOnly, err := api.peekableRoom(s, parent.RoomID)
	if err != nil {
		return webui.ClientEvent{}, false
	}
	i, sv, err := api.visibleEvent(s, r, upTo, worldOnly, id)
	if err != nil {
		return webui.ClientEvent{}, false
	}
	e := api.shownInfo(i)
	if e.hidden || api.dag.RedactedBy(i.Event) != nil {
		return webui.ClientEvent{}, false
	}
	e.depth = parent.depth + 1
	ce := api.render(e, s, withRoom)
	ce.Unsigned["membership"] = sv.membership
	return ce, true
}
