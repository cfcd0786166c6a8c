package client

import (
	"context"
	"encoding/json"
	"sort"
	"strconv"
	"strings"

	"github.com/parley-p2p/parley/errs"
	"github.com/parley-p2p/parley/node/dag"
	"github.com/parley-p2p/parley/node/peers"

	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/rooms"
	"github.com/parley-p2p/parley/webui"
)

// clientEvent renders an event for clients. The sender's own device sees
// its transaction ID, so clients can match their local echo.
func (api *API) clientEvent(i *dag.Info, s *webui.Session, withRoom bool) webui.ClientEvent {
	return api.render(api.shownInfo(i), s, withRoom)
}

// skimmedEvent renders what a client is shown of an event that is not
// redacted, nor a redaction (whose Redacts the caller sets). status, if
// set, says why its content is not decrypted (plain.go).
func (api *API) skimmedEvent(sk rooms.Skim, status, txnID, txnDevice string, s *webui.Session, withRoom bool) webui.ClientEvent {
	ce := webui.ClientEvent{
		Content: sk.Content, EventID: sk.ID, OriginServerTS: sk.OriginServerTS,
		Sender: sk.Sender, StateKey: sk.StateKey, Type: sk.Type,
	}
	if withRoom {
		ce.RoomID = sk.RoomID
	}
	unsigned := map[string]any{"age": max(nowMS()-sk.OriginServerTS, 0)}
	if s != nil && txnID != "" && sk.Sender == s.UserID && txnDevice == s.DeviceID {
		unsigned["transaction_id"] = txnID
	}
	if status != "" {
		unsigned[unsignedE2EE] = status
	}
	ce.Unsigned = unsigned
	return ce
}

// shownEvent is an event read to be shown once: the engine's, when its
// cache holds it, else skimmed from its stored record, which is neither
// parsed nor cached (see dag.Engine.Cached). Its type and content are
// its plain view's (plain.go).
type shownEvent struct {
	rooms.Skim
	info *dag.Info // nil when skimmed
	rec  *store.EventRecord
	// status says why the content shown is not decrypted: "" when it
	// is, or was never encrypted.
	status string
	// hidden: the codec's own event, never shown.
	hidden bool
	// redactedBy is the redaction that applies to the engine's event;
	// nil if none does.
	redactedBy *dag.Info
	// depth is how deep in other events' bundles it is rendered (bundle.go).
	depth int
}

// readShown reads an event to be shown, in t (nil: through the engine).
// What cannot be skimmed (a redaction, an event with a redaction
// recorded against it, bytes the skim does not read) goes through the
// engine as before.
func (api *API) readShown(t *store.Txn, id string) (shownEvent, error) {
	if i, ok := api.dag.Cached(id); ok || t == nil {
		if !ok {
			var err error
			if i, err = api.dag.Event(id); err != nil {
				return shownEvent{}, err
			}
		}
		return api.shownInfo(i), nil
	}
	if red, _ := t.Redaction(id); red == nil {
		if rec, err := t.Event(id); err == nil {
			if sk, ok := rooms.SkimStored(rec.PDU, rec.Version, id); ok {
				e := shownEvent{Skim: sk, rec: rec}
				api.view(&e)
				return e, nil
			}
		}
	}
	i, err := api.dag.Event(id)
	if err != nil {
		return shownEvent{}, err
	}
	return api.shownInfo(i), nil
}

// membership is the membership of a member event, read in t as
// readShown reads it, but without its plain view or its content, which
// carries the KEM key (1.6 KB): a /sync's room summary reads every
// member's. "" if it cannot be read.
func (api *API) membership(t *store.Txn, id string) string {
	m, _ := api.dag.MemberEvent(t, id)
	return m.Membership
}

// shownInfo is an event of the engine's to be shown.
func (api *API) shownInfo(i *dag.Info) shownEvent {
	e := shownEvent{Skim: i.Event.Skim(), info: i, rec: &i.Rec, redactedBy: api.dag.RedactedBy(i.Event)}
	api.view(&e)
	return e
}

// render renders an event read by readShown: a skimmed one as it is;
// one of the engine's with its redaction applied, if it has one (then
// as it is on the wire, with nothing of its plain view), and its Redacts
// if it is a redaction.
func (api *API) render(e shownEvent, s *webui.Session, withRoom bool) webui.ClientEvent {
	ce := api.skimmedEvent(e.Skim, e.status, e.rec.TxnID, e.rec.TxnDevice, s, withRoom)
	api.bundle(e, s, withRoom, ce.Unsigned) // bundle.go
	if e.info == nil {
		return ce
	}
	ev := e.info.Event
	if by := e.redactedBy; by != nil {
		ce.Type, ce.Content = ev.Type(), json.RawMessage(`{}`)
		if red, err := ev.Redacted(); err == nil {
			ce.Content = red.Content()
		}
		delete(ce.Unsigned, unsignedE2EE)
		ce.Unsigned["redacted_because"] = api.clientEvent(by, nil, withRoom)
	}
	ce.Redacts = ev.Redacts()
	return ce
}

// readableRoom returns the room if the user may read it now: joined, or
// having been in it (then up to the moment they left), unless they
// forgot it since.
func (api *API) readableRoom(s *webui.Session, roomID string) (*peers.Room, uint64, error) {
	r := api.peers.Room(roomID)
	if r == nil {
		return nil, 0, errs.Forbiddenf("you are not in room %s", roomID)
	}
	id, ok := r.State()[rooms.StateKey{Type: "m.room.member", StateKey: s.UserID}]
	if !ok {
		return nil, 0, errs.Forbiddenf("you are not in room %s", roomID)
	}
	m, err := api.dag.MemberEvent(nil, id)
	if err != nil {
		return nil, 0, err
	}
	switch m.Membership {
	case "join":
		return r, 0, nil
	case "leave", "ban":
		if api.forgotten(s.UserID, r.ID, id) {
			return nil, 0, errs.Forbiddenf("you forgot room %s", roomID)
		}
		return r, max(m.Pos, 1), nil
	}
	return nil, 0, errs.Forbiddenf("you are not in room %s", roomID)
}

// forgotten reports whether the user forgot the room at their member
// event memberID (their current one: a later join undoes forgetting).
func (api *API) forgotten(user, roomID, memberID string) bool {
	var at string
	api.store.View(func(t *store.Txn) error {
		var err error
		at, err = t.Forgotten(user, roomID)
		return err
	})
	return at != "" && at == memberID
}

// memberID is the user's member event in the room's current state; ""
// if they have none.
func memberID(r *peers.Room, user string) string {
	return r.State()[rooms.StateKey{Type: "m.room.member", StateKey: user}]
}

// timelineOrder is an event's place in its room's timeline; 0 if none.
func timelineOrder(i *dag.Info) uint64 {
	if p := i.Pos(); p != 0 {
		return store.LiveBase + p
	}
	return i.Rec.Order
}

// JoinedRooms implements webui.Backend.
func (api *API) JoinedRooms(s *webui.Session) ([]string, error) {
	var out []string
	for _, r := range api.peers.Rooms() {
		if api.peers.Membership(r, s.UserID) == "join" {
			out = append(out, r.ID)
		}
	}
	sort.Strings(out)
	return out, nil
}

// Send implements webui.Backend for message and state events.
func (api *API) Send(ctx context.Context, s *webui.Session, roomID, evType string, stateKey *string, content json.RawMessage, txnID string) (string, error) {
	if len(evType) == 0 || len(evType) > 255 {
		return "", errs.Invalidf("event type must be 1 to 255 bytes")
	}
	if stateKey != nil && len(*stateKey) > 255 {
		return "", errs.Invalidf("state key over 255 bytes")
	}
	r := api.peers.Room(roomID)
	if r == nil || api.peers.Membership(r, s.UserID) != "join" {
		return "", errs.Forbiddenf("you are not joined to room %s", roomID)
	}
	if evType == "m.room.create" {
		return "", errs.Forbiddenf("a room's create event cannot be replaced")
	}
	if evType == "m.room.canonical_alias" && stateKey != nil && *stateKey == "" {
		if err := api.checkCanonicalAlias(roomID, content, ""); err != nil {
			return "", err
		}
	}
	if stateKey != nil {
		if id := api.sameState(r, s.UserID, evType, *stateKey, content); id != "" {
			return id, nil
		}
	}
	ev, err := api.dag.Send(ctx, r.Room, s.UserID, evType, stateKey, content, txnID, s.DeviceID)
	if err != nil {
		return "", err
	}
	return ev.ID(), nil
}

// sameState is the current state event of (evType, stateKey) if the
// sender sent it with this very content: setting state to what it is
// returns the event that set it, rather than a new one. "" otherwise.
func (api *API) sameState(r *peers.Room, sender, evType, stateKey string, content json.RawMessage) string {
	id, ok := r.State()[rooms.StateKey{Type: evType, StateKey: stateKey}]
	if !ok {
		return ""
	}
	i, err := api.dag.Event(id)
	if err != nil || i.Event.Sender() != sender {
		return ""
	}
	e := api.shownInfo(i) // its plain view: state may be sealed
	if e.hidden || e.status != "" || e.Type != evType || api.dag.RedactedBy(i.Event) != nil {
		return ""
	}
	have, err1 := rooms.CanonicalJSON(e.Content)
	want, err2 := rooms.CanonicalJSON(content)
	if err1 != nil || err2 != nil || string(have) != string(want) {
		return ""
	}
	return id
}

// stateEvents renders a state map but the events in skip, reading them
// in t (nil: through the engine).
func (api *API) stateEvents(t *store.Txn, m store.StateMap, skip map[string]bool, s *webui.Session, withRoom bool) []webui.ClientEvent {
	out := make([]webui.ClientEvent, 0, len(m))
	keys := make([]rooms.StateKey, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(a, b int) bool {
		if keys[a].Type != keys[b].Type {
			return keys[a].Type < keys[b].Type
		}
		return keys[a].StateKey < keys[b].StateKey
	})
	for _, k := range keys {
		if skip[m[k]] {
			continue
		}
		if e, err := api.readShown(t, m[k]); err == nil && !e.hidden {
			out = append(out, api.render(e, s, withRoom))
		}
	}
	return out
}

// roomState is the state a user may see: current, or at their leave.
func (api *API) roomState(s *webui.Session, roomID string) (store.StateMap, error) {
	r, upTo, err := api.readableRoom(s, roomID)
	if err != nil {
		return nil, err
	}
	if upTo != 0 {
		id := r.State()[rooms.StateKey{Type: "m.room.member", StateKey: s.UserID}]
		if i, err := api.dag.Event(id); err == nil && i.Rec.StateAfter != "" {
			return api.dag.Snapshot(i.Rec.StateAfter)
		}
	}
	return dag.WithCreate(r.Room, r.State()), nil
}

// State implements webui.Backend.
func (api *API) State(s *webui.Session, roomID string) ([]webui.ClientEvent, error) {
	m, err := api.roomState(s, roomID)
	if err != nil {
		return nil, err
	}
	return api.stateEvents(nil, m, nil, s, true), nil
}

// StateEvent implements webui.Backend.
func (api *API) StateEvent(s *webui.Session, roomID, evType, stateKey string) (*webui.ClientEvent, error) {
	m, err := api.roomState(s, roomID)
	if err != nil {
		return nil, err
	}
	id, ok := m[rooms.StateKey{Type: evType, StateKey: stateKey}]
	if !ok {
		return nil, errs.NotFoundf("no %s state with key %q", evType, stateKey)
	}
	i, err := api.dag.Event(id)
	if err != nil {
		return nil, err
	}
	e := api.shownInfo(i)
	if e.hidden {
		return nil, errs.NotFoundf("no %s state with key %q", evType, stateKey)
	}
	ce := api.render(e, s, true)
	return &ce, nil
}

// Members implements webui.Backend.
func (api *API) Members(s *webui.Session, roomID string, q webui.MembersQuery) ([]webui.ClientEvent, error) {
	m, err := api.roomState(s, roomID)
	if err != nil {
		return nil, err
	}
	if q.At != "" {
		if m, err = api.membersAt(s, roomID, q.At); err != nil {
			return nil, err
		}
	}
	var out []webui.ClientEvent
	for _, ce := range api.stateEvents(nil, m, nil, s, true) {
		if ce.Type != "m.room.member" {
			continue
		}
		var c struct {
			Membership string `json:"membership"`
		}
		json.Unmarshal(ce.Content, &c)
		if q.Membership != "" && c.Membership != q.Membership {
			continue
		}
		if q.NotMembership != "" && c.Membership == q.NotMembership {
			continue
		}
		out = append(out, ce)
	}
	return out, nil
}

// JoinedMembers implements webui.Backend.
func (api *API) JoinedMembers(s *webui.Session, roomID string) (map[string]webui.JoinedMember, error) {
	evs, err := api.Members(s, roomID, webui.MembersQuery{Membership: "join"})
	if err != nil {
		return nil, err
	}
	out := make(map[string]webui.JoinedMember, len(evs))
	for _, ce := range evs {
		var c struct { // a member event's keys, not the response's
			DisplayName string `json:"displayname"`
			AvatarURL   string `json:"avatar_url"`
		}
		json.Unmarshal(ce.Content, &c)
		out[*ce.StateKey] = webui.JoinedMember{DisplayName: c.DisplayName, AvatarURL: c.AvatarURL}
	}
	return out, nil
}

// Event implements webui.Backend: an event the user may see (history
// visibility), in a room they are or were in, or in a world-readable one.
func (api *API) Event(s *webui.Session, roomID, eventID string) (*webui.ClientEvent, error) {
	r, upTo, worldOnly, err := api.peekableRoom(s, roomID)
	if err != nil {
		// The spec's one answer for an event the user may not read.
		return nil, errs.NotFoundf("event %s not found", eventID)
	}
	i, sv, err := api.visibleEvent(s, r, upTo, worldOnly, eventID)
	if err != nil {
		return nil, err
	}
	e := api.shownInfo(i)
	if e.hidden {
		return nil, errs.NotFoundf("event %s not found", eventID)
	}
	ce := api.render(e, s, true)
	ce.Unsigned["membership"] = sv.membership
	return &ce, nil
}

// peekableRoom is readableRoom, and for a user who may not read the room
// as a member, a world-readable room (worldOnly: only its world-readable
// events are theirs to see).
func (api *API) peekableRoom(s *webui.Session, roomID string) (r *peers.Room, upTo uint64, worldOnly bool, err error) {
	r, upTo, err = api.readableRoom(s, roomID)
	if err == nil {
		return r, upTo, false, nil
	}
	if pr := api.peers.Room(roomID); pr != nil && api.worldReadable(pr.Room) {
		return pr, 0, true, nil
	}
	return nil, 0, false, err
}

// visibleEvent reads an event of the room the user may see, with what
// they see of it (snapView); 404 for any other, as for one that does
// not exist.
func (api *API) visibleEvent(s *webui.Session, r *peers.Room, upTo uint64, worldOnly bool, eventID string) (*dag.Info, snapView, error) {
	notFound := errs.NotFoundf("event %s not found", eventID)
	i, err := api.dag.Event(eventID)
	if err != nil || i.Event.RoomID() != r.ID || !i.Usable() || i.Rec.SoftFailed != "" {
		return nil, snapView{}, notFound
	}
	if upTo != 0 && i.Pos() > upTo {
		return nil, snapView{}, notFound
	}
	v := api.newViewer(nil, s.UserID, memberID(r, s.UserID))
	sv := v.at(&i.Rec)
	if !v.sees(sv) || (worldOnly && sv.visibility != "world_readable") {
		return nil, snapView{}, notFound
	}
	return i, sv, nil
}

// Tokens: /sync's are "s" + a stream position, and since ephemeral data
// "_" + a point of the ephemeral clock (ephemeral.go); /messages' are "t"
// + a timeline order (see store.LiveBase), and it takes either.
func parseToken(tok string) (uint64, bool) {
	if !strings.HasPrefix(tok, "s") {
		return 0, false
	}
	tok, eph, ok := strings.Cut(tok, "_")
	if ok && !validEphPart(eph) {
		return 0, false
	}
	p, err := strconv.ParseUint(tok[1:], 10, 64)
	return p, err == nil && p < store.LiveBase
}

func token(pos uint64) string { return "s" + strconv.FormatUint(pos, 10) }

func orderToken(order uint64) string { return "t" + strconv.FormatUint(order, 10) }

// parseOrder reads a /messages token as a timeline order.
func parseOrder(tok string) (uint64, bool) {
	if p, ok := parseToken(tok); ok {
		return store.LiveBase + p, true
	}
	if !strings.HasPrefix(tok, "t") {
		return 0, false
	}
	o, err := strconv.ParseUint(tok[1:], 10, 64)
	return o, err == nil
}

// Messages implements webui.Backend: pages through the room's timeline on
// this node by timeline order, fetching older history from other members
// (backfill) when the local timeline ends before the room's start. A
// token names the point just after an order: backwards from "tN" starts
// at N, forwards at N+1.
func (api *API) Messages(ctx context.Context, s *webui.Session, req webui.MessagesRequest) (*webui.MessagesResponse, error) {
	r, upTo, worldOnly, err := api.peekableRoom(s, req.RoomID)
	if err != nil {
		return nil, err
	}
	head := store.LiveBase + api.store.Pos()
	if upTo != 0 {
		head = min(head, store.LiveBase+upTo)
	}
	from := head
	if req.Dir == "f" {
		from = 0
	}
	if req.From != "" {
		p, ok := parseOrder(req.From)
		if !ok {
			return nil, errs.Invalidf("invalid from token %q", req.From)
		}
		from = min(p, head)
	}
	var to uint64
	var hasTo bool
	if req.To != "" {
		if to, hasTo = parseOrder(req.To); !hasTo {
			return nil, errs.Invalidf("invalid to token %q", req.To)
		}
	}
	limit := req.Limit
	if limit == 0 {
		limit = 10
	}
	resp := &webui.MessagesResponse{Start: orderToken(from)}
	var entries []store.TimelineEntry
	scan := func() error {
		return api.store.View(func(t *store.Txn) error {
			var err error
			if req.Dir == "b" {
				lower := uint64(0)
				if hasTo {
					lower = to
				}
				entries, err = t.Timeline(r.ID, lower, from, false, limit+1)
			} else {
				upper := head
				if hasTo {
					upper = min(to, head)
				}
				entries, err = t.Timeline(r.ID, from, upper, true, limit+1)
			}
			return err
		})
	}
	if err := scan(); err != nil {
		return nil, err
	}
	if req.Dir == "b" && !hasTo && len(entries) <= limit {
		// The local timeline ends here: fetch older history if there is any.
		for range 3 {
			got, err := api.peers.Backfill(ctx, r, limit+1-len(entries))
			if err != nil {
				api.log.Info("backfill", "room", r.ID, "err", err)
			}
			if got == 0 {
				break
			}
			if err := scan(); err != nil {
				return nil, err
			}
			if len(entries) > limit {
				break
			}
		}
	}
	more := len(entries) > limit
	if more {
		entries = entries[:limit]
	}
	v := api.newViewer(nil, s.UserID, memberID(r, s.UserID))
	for _, e := range entries {
		i, err := api.dag.Event(e.EventID)
		if err != nil {
			return nil, err
		}
		if ce, ok := api.pageEvent(s, v, i, worldOnly, req.Filter); ok {
			resp.Chunk = append(resp.Chunk, ce)
		}
	}
	if req.Filter != nil && req.Filter.LazyLoadMembers {
		resp.State = api.pageMembers(s, r, nil, resp.Chunk) // lazyload.go
	}
	if len(entries) > 0 {
		last := entries[len(entries)-1].Order
		if req.Dir == "b" {
			if more {
				resp.End = orderToken(last - 1)
			}
		} else if more {
			resp.End = orderToken(last)
		}
	}
	return resp, nil
}

// RoomDebug implements webui.Backend: the room's DAG head as this node
// sees it, and every event it rejected or soft-failed, with the reason.
func (api *API) RoomDebug(s *webui.Session, roomID string) (any, error) {
	r, _, err := api.readableRoom(s, roomID)
	if err != nil {
		return nil, err
	}
	ext, state, depth := append([]string(nil), r.Head().Ext...), r.State(), r.Head().Depth
	stateIDs := map[string]string{}
	for k, id := range state {
		stateIDs[k.Type+"|"+k.StateKey] = id
	}
	var verdicts []*store.Verdict
	if err := api.store.View(func(t *store.Txn) error {
		var err error
		verdicts, err = t.Verdicts(r.ID, 1000)
		return err
	}); err != nil {
		return nil, err
	}
	if verdicts == nil {
		verdicts = []*store.Verdict{}
	}
	return map[string]any{
		"room_id":      r.ID,
		"room_version": r.Version,
		"extremities":  ext,
		"depth":        depth,
		"state":        stateIDs,
		"verdicts":     verdicts,
		"servers":      api.peers.RoomServers(r),
	}, nil
}
