package client

import (
	"context"
	"math"
	"slices"

	"github.com/parley-p2p/parley/errs"
	"github.com/parley-p2p/parley/node/peers"
	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/webui"
)

// GET /relations and GET /threads: pages of the relation index
// (relations.go), each event filtered for the user as /messages filters
// it. Their tokens are /messages' ("t" + a timeline order, the point just
// after it), so a /messages or /sync token works as a from too.

// maxRelationsScan bounds the index keys one page reads: a page that
// reaches it ends early, with a next_batch from where it stopped.
const maxRelationsScan = 1000

// relCandidate is a child found for a page, not yet filtered for the user.
type relCandidate struct {
	order   uint64
	relType string
	id      string
	depth   int
}

// Relations implements webui.Relations.
func (api *API) Relations(ctx context.Context, s *webui.Session, req webui.RelationsRequest) (*webui.RelationsResponse, error) {
	notFound := errs.NotFoundf("event %s not found", req.EventID)
	r, upTo, worldOnly, err := api.peekableRoom(s, req.RoomID)
	if err != nil {
		return nil, notFound // the spec's one answer for an event the user may not read
	}
	if _, _, err := api.visibleEvent(s, r, upTo, worldOnly, req.EventID); err != nil {
		return nil, err
	}
	forward := req.Dir == "f"
	// The window of orders: (lower, upper].
	lower, upper := uint64(0), uint64(math.MaxUint64)
	if req.From != "" {
		p, ok := parseOrder(req.From)
		if !ok {
			return nil, errs.Invalidf("invalid from token %q", req.From)
		}
		if forward {
			lower = p
		} else {
			upper = p
		}
	}
	if req.To != "" {
		p, ok := parseOrder(req.To)
		if !ok {
			return nil, errs.Invalidf("invalid to token %q", req.To)
		}
		if forward {
			upper = p
		} else {
			lower = p
		}
	}
	limit := req.Limit
	if limit <= 0 {
		limit = webui.DefaultRelationsLimit
	}
	var cands []relCandidate
	cut := false // the scan stopped at its bound before the window's end
	depth := 0
	err = api.store.View(func(t *store.Txn) error {
		if req.Recurse {
			cands, depth, cut = api.descendants(t, r.ID, req.EventID)
			cands = slices.DeleteFunc(cands, func(c relCandidate) bool { return c.order <= lower || c.order > upper })
			slices.SortFunc(cands, func(a, b relCandidate) int {
				if forward {
					return cmpOrder(a.order, b.order)
				}
				return cmpOrder(b.order, a.order)
			})
			return nil
		}
		start := upper
		if forward {
			start = lower + 1
		}
		n := 0
		_, err := t.Relations(r.ID, req.EventID, start, forward, maxRelationsScan, func(c *store.Relation) bool {
			n++
			if c.Order <= lower || c.Order > upper {
				return false
			}
			cands = append(cands, relCandidate{order: c.Order, relType: c.RelType, id: c.EventID, depth: 1})
			return true
		})
		cut = n == maxRelationsScan
		return err
	})
	if err != nil {
		return nil, err
	}
	resp := &webui.RelationsResponse{PrevBatch: req.From}
	if req.Recurse {
		resp.RecursionDepth = &depth
	}
	v := api.newViewer(nil, s.UserID, memberID(r, s.UserID))
	var last uint64
	for k, c := range cands {
		if len(resp.Chunk) == limit {
			resp.NextBatch = nextToken(forward, cands[k-1].order)
			return resp, nil
		}
		last = c.order
		if req.RelType != "" && c.relType != req.RelType {
			continue
		}
		ce, ok := api.relationEvent(s, r, v, upTo, worldOnly, c.id)
		if ok && (req.EventType == "" || ce.Type == req.EventType) {
			resp.Chunk = append(resp.Chunk, ce)
		}
	}
	if cut && last != 0 {
		resp.NextBatch = nextToken(forward, last)
	}
	return resp, nil
}

// nextToken is the token of the page after the one that ended at order.
func nextToken(forward bool, order uint64) string {
	if forward {
		return orderToken(order)
	}
	return orderToken(order - 1)
}

func cmpOrder(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// descendants are the events relating to parent directly or through up to
// webui.MaxRelationsDepth levels, at most maxRelationsScan of them; depth
// is the deepest level that had any, cut whether the bound was reached.
func (api *API) descendants(t *store.Txn, roomID, parent string) (out []relCandidate, depth int, cut bool) {
	level := []string{parent}
	seen := map[string]bool{parent: true}
	for d := 1; d <= webui.MaxRelationsDepth && len(level) > 0; d++ {
		var next []string
		for _, p := range level {
			_, err := t.Relations(roomID, p, 0, true, maxRelationsScan, func(c *store.Relation) bool {
				if seen[c.EventID] {
					return true
				}
				seen[c.EventID] = true
				out = append(out, relCandidate{order: c.Order, relType: c.RelType, id: c.EventID, depth: d})
				next = append(next, c.EventID)
				depth = d
				cut = len(out) >= maxRelationsScan
				return !cut
			})
			if err != nil || cut {
				return out, depth, cut
			}
		}
		level = next
	}
	return out, depth, false
}

// relationEvent renders a child for a page if the user may see it, as
// /messages would show it.
func (api *API) relationEvent(s *webui.Session, r *peers.Room, v *viewer, upTo uint64, worldOnly bool, id string) (webui.ClientEvent, bool) {
	i, err := api.dag.Event(id)
	if err != nil || i.Event.RoomID() != r.ID || !i.Usable() || i.Rec.SoftFailed != "" {
		return webui.ClientEvent{}, false
	}
	if upTo != 0 && i.Pos() > upTo {
		return webui.ClientEvent{}, false
	}
	return api.pageEvent(s, v, i, worldOnly, nil)
}

// Threads implements webui.Relations.
func (api *API) Threads(ctx context.Context, s *webui.Session, req webui.ThreadsRequest) (*webui.ThreadsResponse, error) {
	r, upTo, worldOnly, err := api.peekableRoom(s, req.RoomID)
	if err != nil {
		return nil, err
	}
	upper := uint64(math.MaxUint64)
	if req.From != "" {
		p, ok := parseOrder(req.From)
		if !ok {
			return nil, errs.Invalidf("invalid from token %q", req.From)
		}
		upper = p
	}
	limit := req.Limit
	if limit <= 0 {
		limit = webui.DefaultRelationsLimit
	}
	type thread struct {
		order        uint64
		root         string
		participated bool
	}
	var threads []thread
	cut := false
	err = api.store.View(func(t *store.Txn) error {
		return t.Threads(r.ID, upper, func(order uint64, root string) bool {
			th := thread{order: order, root: root}
			if req.Participated {
				var err error
				if th.participated, err = t.Participated(r.ID, root, s.UserID); err != nil {
					return false
				}
			}
			threads = append(threads, th)
			cut = len(threads) >= maxRelationsScan
			return !cut
		})
	})
	if err != nil {
		return nil, err
	}
	resp := &webui.ThreadsResponse{}
	v := api.newViewer(nil, s.UserID, memberID(r, s.UserID))
	for k, th := range threads {
		if len(resp.Chunk) == limit {
			resp.NextBatch = orderToken(threads[k-1].order - 1)
			return resp, nil
		}
		ce, ok := api.relationEvent(s, r, v, upTo, worldOnly, th.root)
		if !ok || (req.Participated && !th.participated && ce.Sender != s.UserID) {
			continue
		}
		resp.Chunk = append(resp.Chunk, ce)
	}
	if cut {
		resp.NextBatch = orderToken(threads[len(threads)-1].order - 1)
	}
	return resp, nil
}
