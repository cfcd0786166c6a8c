package webui

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/parley-p2p/parley/errs"
	"github.com/parley-p2p/parley/rooms"
)

// Rooms is what the API needs to create rooms, read them and send to them.
type Rooms interface {
	CreateRoom(ctx context.Context, s *Session, req *CreateRoomRequest) (string, error)
	JoinedRooms(s *Session) ([]string, error)
	Send(ctx context.Context, s *Session, roomID, evType string, stateKey *string, content json.RawMessage, txnID string) (string, error)
	State(s *Session, roomID string) ([]ClientEvent, error)
	StateEvent(s *Session, roomID, evType, stateKey string) (*ClientEvent, error)
	Members(s *Session, roomID string, q MembersQuery) ([]ClientEvent, error)
	JoinedMembers(s *Session, roomID string) (map[string]JoinedMember, error)
	Event(s *Session, roomID, eventID string) (*ClientEvent, error)
	Messages(ctx context.Context, s *Session, req MessagesRequest) (*MessagesResponse, error)
	// Context is an event with the events around it.
	Context(ctx context.Context, s *Session, req ContextRequest) (*ContextResponse, error)
	// RoomDebug is the node's view of a room's DAG and the events it
	// rejected or soft-failed, with reasons.
	RoomDebug(s *Session, roomID string) (any, error)
}

func (s *Server) createRoom(w http.ResponseWriter, r *http.Request, sess *Session) error {
	var req CreateRoomRequest
	if err := readJSON(r, &req); err != nil {
		return err
	}
	switch req.Preset {
	case "", "private_chat", "public_chat", "trusted_private_chat":
	default:
		return errs.Invalidf("unknown preset %q", req.Preset)
	}
	if req.RoomVersion != "" && !rooms.KnownVersion(req.RoomVersion) {
		return Errorf(http.StatusBadRequest, "M_UNSUPPORTED_ROOM_VERSION", "room version %q is not supported", req.RoomVersion)
	}
	for _, u := range req.Invite {
		if _, err := rooms.ServerOf(u); err != nil {
			return errs.Invalidf("invalid user ID %q", u)
		}
	}
	id, err := s.rooms.CreateRoom(r.Context(), sess, &req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{"room_id": id})
	return nil
}

func (s *Server) joinedRooms(w http.ResponseWriter, r *http.Request, sess *Session) error {
	ids, err := s.rooms.JoinedRooms(sess)
	if err != nil {
		return err
	}
	if ids == nil {
		ids = []string{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"joined_rooms": ids})
	return nil
}

func (s *Server) send(w http.ResponseWriter, r *http.Request, sess *Session) error {
	content, err := readContent(r)
	if err != nil {
		return err
	}
	id, err := s.rooms.Send(r.Context(), sess, r.PathValue("roomId"), r.PathValue("type"), nil, content, r.PathValue("txnId"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{"event_id": id})
	return nil
}

func (s *Server) putState(w http.ResponseWriter, r *http.Request, sess *Session) error {
	content, err := readContent(r)
	if err != nil {
		return err
	}
	key := r.PathValue("stateKey")
	id, err := s.rooms.Send(r.Context(), sess, r.PathValue("roomId"), r.PathValue("type"), &key, content, "")
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{"event_id": id})
	return nil
}

func (s *Server) getState(w http.ResponseWriter, r *http.Request, sess *Session) error {
	evs, err := s.rooms.State(sess, r.PathValue("roomId"))
	if err != nil {
		return err
	}
	if evs == nil {
		evs = []ClientEvent{}
	}
	writeJSON(w, http.StatusOK, evs)
	return nil
}

func (s *Server) getStateEvent(w http.ResponseWriter, r *http.Request, sess *Session) error {
	ev, err := s.rooms.StateEvent(sess, r.PathValue("roomId"), r.PathValue("type"), r.PathValue("stateKey"))
	if err != nil {
		return err
	}
	if r.URL.Query().Get("format") == "event" {
		writeJSON(w, http.StatusOK, ev)
		return nil
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(ev.Content)
	return nil
}

func (s *Server) members(w http.ResponseWriter, r *http.Request, sess *Session) error {
	q := r.URL.Query()
	for _, k := range []string{"membership", "not_membership"} {
		switch q.Get(k) {
		case "", "join", "invite", "knock", "leave", "ban":
		default:
			return errs.Invalidf("%s must be join, invite, knock, leave or ban", k)
		}
	}
	evs, err := s.rooms.Members(sess, r.PathValue("roomId"), MembersQuery{
		Membership:    q.Get("membership"),
		NotMembership: q.Get("not_membership"),
		At:            q.Get("at"),
	})
	if err != nil {
		return err
	}
	if evs == nil {
		evs = []ClientEvent{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"chunk": evs})
	return nil
}

func (s *Server) joinedMembers(w http.ResponseWriter, r *http.Request, sess *Session) error {
	m, err := s.rooms.JoinedMembers(sess, r.PathValue("roomId"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"joined": m})
	return nil
}

func (s *Server) event(w http.ResponseWriter, r *http.Request, sess *Session) error {
	ev, err := s.rooms.Event(sess, r.PathValue("roomId"), r.PathValue("eventId"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, ev)
	return nil
}

func (s *Server) messages(w http.ResponseWriter, r *http.Request, sess *Session) error {
	q := r.URL.Query()
	req := MessagesRequest{RoomID: r.PathValue("roomId"), From: q.Get("from"), To: q.Get("to"), Limit: 10}
	var err error
	if req.Dir, err = queryDir(q); err != nil {
		return err
	}
	if n, ok, err := queryInt(q, "limit", 0); err != nil {
		return err
	} else if ok {
		req.Limit = min(n, 1000)
	}
	if f := q.Get("filter"); f != "" {
		var ef RoomEventFilter
		if err := json.Unmarshal([]byte(f), &ef); err != nil {
			return errs.Invalidf("filter: %v", err)
		}
		req.Filter = &ef
	}
	resp, err := s.rooms.Messages(r.Context(), sess, req)
	if err != nil {
		return err
	}
	if resp.Chunk == nil {
		resp.Chunk = []ClientEvent{}
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// redact sends an m.room.redaction for an event.
func (s *Server) redact(w http.ResponseWriter, r *http.Request, sess *Session) error {
	var body struct {
		Reason string `json:"reason"`
	}
	if err := readJSON(r, &body); err != nil {
		return err
	}
	content := map[string]string{"redacts": r.PathValue("eventId")}
	if body.Reason != "" {
		content["reason"] = body.Reason
	}
	c, err := rooms.MarshalCanonical(content)
	if err != nil {
		return errBadJSON(err)
	}
	id, err := s.rooms.Send(r.Context(), sess, r.PathValue("roomId"), "m.room.redaction", nil, c, r.PathValue("txnId"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{"event_id": id})
	return nil
}

func (s *Server) roomDebug(w http.ResponseWriter, r *http.Request, sess *Session) error {
	v, err := s.rooms.RoomDebug(sess, r.PathValue("roomId"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

// ContextRequest is GET /rooms/{roomId}/context/{eventId}.
type ContextRequest struct {
	RoomID, EventID string
	Limit           int // events before and after, together
	Filter          *RoomEventFilter
}

// ContextResponse is the reply to /context.
type ContextResponse struct {
	Start        string        `json:"start,omitempty"`
	End          string        `json:"end,omitempty"`
	EventsBefore []ClientEvent `json:"events_before"`
	Event        *ClientEvent  `json:"event"`
	EventsAfter  []ClientEvent `json:"events_after"`
	State        []ClientEvent `json:"state"`
}

func (s *Server) eventContext(w http.ResponseWriter, r *http.Request, sess *Session) error {
	q := r.URL.Query()
	req := ContextRequest{RoomID: r.PathValue("roomId"), EventID: r.PathValue("eventId"), Limit: 10}
	if n, ok, err := queryInt(q, "limit", 0); err != nil {
		return err
	} else if ok {
		req.Limit = min(n, 100)
	}
	if f := q.Get("filter"); f != "" {
		var ef RoomEventFilter
		if err := json.Unmarshal([]byte(f), &ef); err != nil {
			return errs.Invalidf("filter: %v", err)
		}
		req.Filter = &ef
	}
	resp, err := s.rooms.Context(r.Context(), sess, req)
	if err != nil {
		return err
	}
	for _, l := range []*[]ClientEvent{&resp.EventsBefore, &resp.EventsAfter, &resp.State} {
		if *l == nil {
			*l = []ClientEvent{}
		}
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}
