package client

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"

	"github.com/parley-p2p/parley/errs"
	"github.com/parley-p2p/parley/node/internal/fulltext"
	"github.com/parley-p2p/parley/node/peers"
	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/rooms"
	"github.com/parley-p2p/parley/webui"
)

// A search reads the index of each room the user may read (readableRoom:
// joined, or up to their leave unless they forgot the room), filtered by
// the request's rooms: every term must match (the last one also as a
// prefix), and every candidate passes the same history visibility as
// /messages before it is shown. The bounds of one request:
const (
	// maxPostingsPerTerm is the most postings of one term (and its
	// expansions) read, over all rooms.
	maxPostingsPerTerm = 100_000
	// maxPostingsPerSearch is the most postings one request reads over
	// all its rooms and terms.
	maxPostingsPerSearch = 200_000
	// probeLimit is how far a term's postings are counted to find the
	// rarest, and the most docs its other terms are looked up in one by
	// one.
	probeLimit = 2_000
	// maxExpansions is the most terms a prefix stands for (the first
	// ones in order: the shortest of each stem).
	maxExpansions = 50
	// maxSearchChecks is the most candidates checked (history
	// visibility, filter) for one page; a page that ends there has a
	// next_batch.
	maxSearchChecks = 2_000
	// maxCountChecks is how many candidates past a full page are still
	// checked, for the count; the rest count unchecked (the spec's
	// count is approximate).
	maxCountChecks = 200
)

// candidate is a doc that holds every term.
type candidate struct {
	room  int // index in the search's rooms
	order uint64
	score float64
	tf    []uint8 // per term
	len   uint8
}

// searchRoom is a room a search reads, with what the user may see of it.
type searchRoom struct {
	r    *peers.Room
	upTo uint64 // readableRoom's: 0, or the stream position of their leave
	v    *viewer
}

// SearchRoomEvents implements webui.Search.
func (api *API) SearchRoomEvents(ctx context.Context, s *webui.Session, req webui.SearchRequest) (*webui.SearchRoomEventsResponse, error) {
	q := fulltext.ParseQuery(req.Term)
	resp := &webui.SearchRoomEventsResponse{}
	fields := searchFields(req.Keys)
	hash := searchHash(req)
	var cur *searchCursor
	if req.NextBatch != "" {
		c, ok := parseSearchCursor(req.NextBatch)
		if !ok || c.Hash != hash || c.By != req.OrderBy {
			return nil, errs.Invalidf("invalid next_batch token for this search")
		}
		cur = &c
	}
	if len(q.Terms) == 0 {
		return resp, nil
	}
	var srs []searchRoom
	for _, r := range api.peers.Rooms() {
		if !req.Filter.AllowsRoom(r.ID) {
			continue
		}
		if _, upTo, err := api.readableRoom(s, r.ID); err == nil {
			srs = append(srs, searchRoom{r: r, upTo: upTo})
		}
	}
	slices.SortFunc(srs, func(a, b searchRoom) int { return strings.Compare(a.r.ID, b.r.ID) })

	cands, corpus, df, highlights, err := api.searchCandidates(ctx, srs, q, fields)
	if err != nil {
		return nil, err
	}
	idf := make([]float64, len(df))
	for i, n := range df {
		idf[i] = corpus.IDF(n)
	}
	for i := range cands {
		c := &cands[i]
		for ti, tf := range c.tf {
			c.score += corpus.Score(idf[ti], tf, c.len)
		}
	}
	// The order results are shown in: by rank (or not), then newest
	// first, then by room.
	cmpAt := func(aScore float64, aOrder uint64, aRoom string, bScore float64, bOrder uint64, bRoom string) int {
		if req.OrderBy == "rank" && aScore != bScore {
			return cmp.Compare(bScore, aScore)
		}
		if aOrder != bOrder {
			return cmp.Compare(bOrder, aOrder)
		}
		return strings.Compare(aRoom, bRoom)
	}
	slices.SortFunc(cands, func(a, b candidate) int {
		return cmpAt(a.score, a.order, srs[a.room].r.ID, b.score, b.order, srs[b.room].r.ID)
	})
	resp.Highlights = highlights

	i := 0 // the first candidate of the page: after the cursor
	if cur != nil {
		for i < len(cands) && cmpAt(cands[i].score, cands[i].order, srs[cands[i].room].r.ID, cur.Score, cur.Order, cur.Room) <= 0 {
			i++
		}
	}
	count := i // shown on earlier pages: counted unchecked
	var last *candidate
	checked, past, more := 0, 0, false
	for ; i < len(cands); i++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		full := len(resp.Results) >= req.Filter.Limit
		if full && past >= maxCountChecks || !full && checked >= maxSearchChecks {
			break
		}
		if full {
			past++
		}
		checked++
		c := &cands[i]
		res, ok := api.searchResult(s, &srs[c.room], c, &req)
		if !full {
			last = c // the page ends here at least
		}
		if !ok {
			continue
		}
		count++
		if full {
			more = true
		} else {
			resp.Results = append(resp.Results, *res)
		}
	}
	resp.Count = count + len(cands) - i
	if last != nil && (more || i < len(cands)) {
		resp.NextBatch = searchCursor{By: req.OrderBy, Score: last.score, Order: last.order, Room: srs[last.room].r.ID, Hash: hash}.token()
	}
	api.searchExtras(s, srs, &req, resp)
	return resp, nil
}

// searchCandidates finds the docs of the search's rooms that hold every
// term, with what BM25 needs: the corpus of the rooms with a match and
// each term's document frequency. Postings are keyed by term, so each
// term is one seek however many rooms there are (store.Postings). The
// terms are first counted, up to probeLimit postings each; the rarest
// is scanned in full, and the others are looked up doc by doc while
// few docs are left (an exact term), or scanned.
func (api *API) searchCandidates(ctx context.Context, srs []searchRoom, q fulltext.Query, fields uint8) ([]candidate, fulltext.Corpus, []int, []string, error) {
	var corpus fulltext.Corpus
	nt := len(q.Terms)
	df := make([]int, nt)
	highlights := append([]string(nil), q.Terms...)
	inScope := make(map[[8]byte]int, len(srs))
	for i, sr := range srs {
		inScope[store.SearchRoomKey(sr.r.ID)] = i
	}
	type doc struct {
		room  int
		order uint64
	}
	type hit struct{ tf, len uint8 }
	var docs map[doc][]hit // one hit per term, by the term's index
	budget := maxPostingsPerSearch
	isPrefix := func(ti int) bool { return q.Prefix && ti == nt-1 }
	err := api.store.View(func(t *store.Txn) error {
		probe := make([]int, nt)
		for ti, term := range q.Terms {
			if err := t.Postings(term, isPrefix(ti), func(store.PostingHit) bool {
				budget--
				probe[ti]++
				return probe[ti] < probeLimit && budget > 0
			}); err != nil {
				return err
			}
			if probe[ti] == 0 {
				return nil // a term found nowhere: no doc holds them all
			}
		}
		byCount := make([]int, nt)
		for i := range byCount {
			byCount[i] = i
		}
		slices.SortStableFunc(byCount, func(a, b int) int { return cmp.Compare(probe[a], probe[b]) })
		for step, ti := range byCount {
			if err := ctx.Err(); err != nil {
				return err
			}
			if step > 0 && len(docs) == 0 {
				return nil // no doc holds the terms so far
			}
			term := q.Terms[ti]
			if step > 0 && !isPrefix(ti) && len(docs) <= probeLimit {
				// Few docs left: look the term up in each.
				df[ti] = probe[ti]
				for d, hs := range docs {
					budget--
					h, ok, err := t.Posting(srs[d.room].r.ID, term, d.order)
					if err != nil {
						return err
					}
					if !ok || h.Fields&fields == 0 {
						delete(docs, d)
						continue
					}
					hs[ti] = hit{h.Count, h.Len}
				}
				continue
			}
			prefix := isPrefix(ti)
			n := 0
			expansions := map[string]bool{}
			found := map[doc]hit{}
			err := t.Postings(term, prefix, func(h store.PostingHit) bool {
				if budget <= 0 || n >= maxPostingsPerTerm {
					return false
				}
				budget--
				n++
				if prefix && !expansions[h.Term] {
					if len(expansions) >= maxExpansions {
						return false // terms come in order: the rest are new ones too
					}
					expansions[h.Term] = true
				}
				ri, ok := inScope[h.Room]
				if !ok || h.Fields&fields == 0 {
					return true
				}
				d := doc{ri, h.Order}
				if step > 0 && docs[d] == nil {
					return true // misses an earlier term
				}
				if old, ok := found[d]; !ok || h.Count > old.tf {
					found[d] = hit{h.Count, h.Len}
				}
				return true
			})
			if err != nil {
				return err
			}
			df[ti] = len(found)
			for e := range expansions {
				if e != term && len(highlights) < maxExpansions+fulltext.MaxQueryTerms {
					highlights = append(highlights, e)
				}
			}
			if step == 0 {
				docs = make(map[doc][]hit, len(found))
				for d, h := range found {
					hs := make([]hit, nt)
					hs[ti] = h
					docs[d] = hs
				}
				continue
			}
			for d, hs := range docs {
				if h, ok := found[d]; ok {
					hs[ti] = h
				} else {
					delete(docs, d)
				}
			}
		}
		// BM25's corpus is the rooms with a match: a room without one
		// costs no read.
		counted := map[int]bool{}
		for d := range docs {
			if counted[d.room] {
				continue
			}
			counted[d.room] = true
			st, err := t.SearchStats(srs[d.room].r.ID)
			if err != nil {
				return err
			}
			corpus.Docs += st.Docs
			corpus.TotalLen += st.TotalLen
		}
		return nil
	})
	cands := make([]candidate, 0, len(docs))
	for d, hs := range docs {
		c := candidate{room: d.room, order: d.order, tf: make([]uint8, nt), len: hs[0].len}
		for i, h := range hs {
			c.tf[i] = h.tf
		}
		cands = append(cands, c)
	}
	return cands, corpus, df, highlights, err
}

// searchResult checks a candidate as /messages would show it to the
// user, and renders it; false if they may not see it or the filter
// leaves it out.
func (api *API) searchResult(s *webui.Session, sr *searchRoom, c *candidate, req *webui.SearchRequest) (*webui.SearchResult, bool) {
	var doc *store.SearchDoc
	if err := api.store.View(func(t *store.Txn) error {
		var err error
		doc, err = t.SearchDoc(sr.r.ID, c.order)
		return err
	}); err != nil {
		return nil, false // deleted since, or another room's (the key's hash collided)
	}
	i, err := api.dag.Event(doc.EventID)
	if err != nil || i.Event.RoomID() != sr.r.ID || timelineOrder(i) != c.order || !i.Usable() || i.Rec.SoftFailed != "" {
		return nil, false
	}
	if sr.upTo != 0 && c.order > store.LiveBase+sr.upTo {
		return nil, false // after the user left
	}
	if sr.v == nil {
		sr.v = api.newViewer(nil, s.UserID, memberID(sr.r, s.UserID))
	}
	sv := sr.v.at(&i.Rec)
	if !sr.v.sees(sv) {
		return nil, false
	}
	e := api.shownInfo(i)
	if e.hidden || e.redactedBy != nil || e.status != "" || !req.Filter.Allows(sr.r.ID, e.Type, e.Sender) {
		return nil, false
	}
	if cu := req.Filter.ContainsURL; cu != nil && *cu != hasURL(e.Content) {
		return nil, false
	}
	ce := api.render(e, s, true)
	ce.Unsigned["membership"] = sv.membership
	res := &webui.SearchResult{Rank: c.score, Result: ce}
	if req.Context != nil {
		res.Context = api.searchContext(s, sr, i.Rec.StateAfter, c.order, ce, req.Context)
	}
	return res, true
}

// hasURL reports whether a content has a url (contains_url).
func hasURL(content json.RawMessage) bool {
	var c struct {
		URL *string `json:"url"`
	}
	return json.Unmarshal(content, &c) == nil && c.URL != nil
}

// searchContext is the events around a result that the user may see,
// and, if asked, the profiles of their senders as of the result.
func (api *API) searchContext(s *webui.Session, sr *searchRoom, stateAfter string, order uint64, ce webui.ClientEvent, cr *webui.SearchContextRequest) *webui.SearchResultContext {
	out := &webui.SearchResultContext{Start: orderToken(order - 1), End: orderToken(order), EventsBefore: []webui.ClientEvent{}, EventsAfter: []webui.ClientEvent{}}
	head := store.LiveBase + api.store.Pos()
	if sr.upTo != 0 {
		head = min(head, store.LiveBase+sr.upTo)
	}
	var older, newer []store.TimelineEntry
	api.store.View(func(t *store.Txn) error {
		if cr.Before > 0 {
			older, _ = t.Timeline(sr.r.ID, 0, order-1, false, cr.Before)
		}
		if cr.After > 0 && order < head {
			newer, _ = t.Timeline(sr.r.ID, order, head, true, cr.After)
		}
		return nil
	})
	show := func(entries []store.TimelineEntry) []webui.ClientEvent {
		out := []webui.ClientEvent{}
		for _, te := range entries {
			if i, err := api.dag.Event(te.EventID); err == nil {
				if ce, ok := api.pageEvent(s, sr.v, i, false, nil); ok {
					out = append(out, ce)
				}
			}
		}
		return out
	}
	if len(older) > 0 {
		out.Start = orderToken(older[len(older)-1].Order - 1)
	}
	if len(newer) > 0 {
		out.End = orderToken(newer[len(newer)-1].Order)
	}
	out.EventsBefore, out.EventsAfter = show(older), show(newer)
	if cr.IncludeProfile {
		out.ProfileInfo = map[string]webui.SearchProfile{}
		state, err := api.stateAt(sr.r, stateAfter)
		for _, e := range append(append([]webui.ClientEvent{ce}, out.EventsBefore...), out.EventsAfter...) {
			if _, ok := out.ProfileInfo[e.Sender]; ok || err != nil {
				continue
			}
			var p webui.SearchProfile
			if id, ok := state[rooms.StateKey{Type: "m.room.member", StateKey: e.Sender}]; ok {
				if me, err := api.readShown(nil, id); err == nil {
					json.Unmarshal(me.Content, &p)
				}
			}
			out.ProfileInfo[e.Sender] = p
		}
	}
	return out
}

// searchExtras adds the rooms' state and the groups a search asked for,
// over the results of its page.
func (api *API) searchExtras(s *webui.Session, srs []searchRoom, req *webui.SearchRequest, resp *webui.SearchRoomEventsResponse) {
	if req.IncludeState {
		resp.State = map[string][]webui.ClientEvent{}
		for _, res := range resp.Results {
			if _, ok := resp.State[res.Result.RoomID]; ok {
				continue
			}
			if m, err := api.roomState(s, res.Result.RoomID); err == nil {
				resp.State[res.Result.RoomID] = api.stateEvents(nil, m, nil, s, true)
			}
		}
	}
	for _, key := range req.GroupBy {
		groups := map[string]*webui.SearchGroup{}
		for _, res := range resp.Results {
			k := res.Result.RoomID
			if key == "sender" {
				k = res.Result.Sender
			}
			g := groups[k]
			if g == nil {
				g = &webui.SearchGroup{Order: len(groups) + 1}
				groups[k] = g
			}
			g.Results = append(g.Results, res.Result.EventID)
		}
		if resp.Groups == nil {
			resp.Groups = map[string]map[string]*webui.SearchGroup{}
		}
		resp.Groups[key] = groups
	}
}

// searchFields is the index's field mask of the keys a search names;
// all of them if none.
func searchFields(keys []string) uint8 {
	if len(keys) == 0 {
		return store.FieldBody | store.FieldName | store.FieldTopic
	}
	var f uint8
	for _, k := range keys {
		switch k {
		case webui.SearchKeyBody:
			f |= store.FieldBody
		case webui.SearchKeyName:
			f |= store.FieldName
		case webui.SearchKeyTopic:
			f |= store.FieldTopic
		}
	}
	return f
}

// searchCursor is a next_batch token: where the last page ended, in
// the order of its search, and a hash of the search it belongs to. It
// holds no state on the node; a page read after new events came may
// show a result again or, under rank, skip one whose score moved.
type searchCursor struct {
	By    string  `json:"b"`
	Score float64 `json:"s,omitempty"`
	Order uint64  `json:"o"`
	Room  string  `json:"r"`
	Hash  string  `json:"h"`
}

func (c searchCursor) token() string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

func parseSearchCursor(tok string) (searchCursor, bool) {
	var c searchCursor
	if len(tok) > 1024 {
		return c, false
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || json.Unmarshal(b, &c) != nil {
		return c, false
	}
	return c, true
}

// searchHash names a search by what it matches and in what order, so
// that a token is only taken by the search it came from.
func searchHash(req webui.SearchRequest) string {
	f := req.Filter
	b, _ := json.Marshal([]any{req.Term, req.Keys, req.OrderBy, f.Rooms, f.NotRooms, f.Senders, f.NotSenders, f.Types, f.NotTypes, f.ContainsURL, f.HasRooms, f.HasSenders, f.HasTypes})
	sum := sha256.Sum256(b)
	return base64.RawURLEncoding.EncodeToString(sum[:9])
}
