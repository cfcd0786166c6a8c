package webui

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/parley-p2p/parley/errs"
	"github.com/parley-p2p/parley/rooms"
)

// maxBody bounds request bodies; events themselves are limited to 64 KiB.
const maxBody = 1 << 20

// readBody reads a request body of at most maxBody bytes.
func readBody(r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return nil, Errorf(http.StatusRequestTimeout, "M_UNKNOWN", "the request body took too long to arrive")
	}
	if err != nil {
		return nil, errBadJSON(err)
	}
	if len(body) > maxBody {
		return nil, Errorf(http.StatusRequestEntityTooLarge, "M_TOO_LARGE", "request body over %d bytes", maxBody)
	}
	return body, nil
}

// readJSON decodes a JSON object body into v, with Matrix errors for
// malformed or oversized input.
func readJSON(r *http.Request, v any) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		body = []byte("{}")
	}
	if err := json.Unmarshal(body, v); err != nil {
		return errBadJSON(err)
	}
	return nil
}

// readContent reads an event content body: a JSON object in canonical form.
func readContent(r *http.Request) (json.RawMessage, error) {
	body, err := readBody(r)
	if err != nil {
		return nil, err
	}
	if len(body) > rooms.MaxEventSize {
		return nil, Errorf(http.StatusRequestEntityTooLarge, "M_TOO_LARGE", "event content over %d bytes", rooms.MaxEventSize)
	}
	c, err := rooms.CanonicalJSON(body)
	if err != nil {
		return nil, Errorf(http.StatusBadRequest, "M_BAD_JSON", "event content: %v", err)
	}
	if len(c) == 0 || c[0] != '{' {
		return nil, Errorf(http.StatusBadRequest, "M_BAD_JSON", "event content must be a JSON object")
	}
	return c, nil
}

func (s *Server) versions(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]any{
		"versions":          []string{"v1.1", "v1.2", "v1.3", "v1.4", "v1.5", "v1.6", "v1.7", "v1.8", "v1.9", "v1.10"},
		"unstable_features": map[string]bool{},
	})
	return nil
}

func (s *Server) capabilities(w http.ResponseWriter, r *http.Request, _ *Session) error {
	writeJSON(w, http.StatusOK, map[string]any{"capabilities": map[string]any{
		"m.room_versions": map[string]any{
			"default":   rooms.DefaultVersion,
			"available": map[string]string{rooms.V11: "stable", rooms.V12: "stable"},
		},
		"m.change_password": map[string]bool{"enabled": false},
		"m.set_displayname": map[string]bool{"enabled": true},
		"m.set_avatar_url":  map[string]bool{"enabled": true},
		"m.3pid_changes":    map[string]bool{"enabled": false},
		"m.get_login_token": map[string]bool{"enabled": false},
		"m.profile_fields":  map[string]any{"enabled": false},
		"org.parley.p2p":    map[string]bool{"enabled": true},
	}})
	return nil
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, s.backend.Status())
	return nil
}

func (s *Server) pushRules(w http.ResponseWriter, r *http.Request, sess *Session) error {
	writeJSON(w, http.StatusOK, map[string]any{"global": defaultPushRules(sess.UserID)})
	return nil
}

func (s *Server) putFilter(w http.ResponseWriter, r *http.Request, sess *Session) error {
	if r.PathValue("userId") != sess.UserID {
		return errs.Forbiddenf("cannot create filters for other users")
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	// The filter is stored as sent, so that GET returns it unchanged; it
	// must still be an object parley can read.
	var f Filter
	if err := json.Unmarshal(body, &f); err != nil {
		return errBadJSON(err)
	}
	if !strings.HasPrefix(strings.TrimLeft(string(body), " \t\r\n"), "{") {
		return errBadJSON(fmt.Errorf("a filter must be a JSON object"))
	}
	id, err := s.backend.PutFilter(sess.UserID, body)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{"filter_id": id})
	return nil
}

func (s *Server) getFilter(w http.ResponseWriter, r *http.Request, sess *Session) error {
	if r.PathValue("userId") != sess.UserID {
		return errs.Forbiddenf("cannot read filters of other users")
	}
	f, err := s.backend.Filter(sess.UserID, r.PathValue("filterId"))
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(f)
	return nil
}

// profile looks a user up. Without a token only this node's users are
// answered: a remote user's profile would tell who the node shares rooms
// with.
func (s *Server) profile(r *http.Request, sess *Session) (map[string]any, error) {
	user := r.PathValue("userId")
	if sess == nil && !strings.HasSuffix(user, ":"+s.backend.ServerName()) {
		return nil, Errorf(http.StatusUnauthorized, "M_MISSING_TOKEN", "profiles of users on other nodes need an access token")
	}
	return s.backend.Profile(user)
}

func (s *Server) getProfile(w http.ResponseWriter, r *http.Request, sess *Session) error {
	p, err := s.profile(r, sess)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, p)
	return nil
}

func (s *Server) getProfileField(w http.ResponseWriter, r *http.Request, sess *Session) error {
	p, err := s.profile(r, sess)
	if err != nil {
		return err
	}
	field := r.PathValue("field")
	v, ok := p[field]
	if !ok {
		return errs.NotFoundf("profile field %s not found", field)
	}
	writeJSON(w, http.StatusOK, map[string]any{field: v})
	return nil
}

func (s *Server) putProfileField(w http.ResponseWriter, r *http.Request, sess *Session) error {
	if r.PathValue("userId") != sess.UserID {
		return errs.Forbiddenf("cannot change the profile of another user")
	}
	field := r.PathValue("field")
	if field != "displayname" && field != "avatar_url" {
		return errs.Invalidf("unsupported profile field %q", field)
	}
	var body map[string]any
	if err := readJSON(r, &body); err != nil {
		return err
	}
	v, ok := body[field].(string)
	if !ok && body[field] != nil {
		return errs.Invalidf("%s must be a string", field)
	}
	if len(v) > 256 {
		return errs.Invalidf("%s is longer than 256 bytes", field)
	}
	if err := s.backend.SetProfile(r.Context(), sess.UserID, field, v); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{})
	return nil
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
	id, err := s.backend.CreateRoom(r.Context(), sess, &req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{"room_id": id})
	return nil
}

func (s *Server) joinedRooms(w http.ResponseWriter, r *http.Request, sess *Session) error {
	ids, err := s.backend.JoinedRooms(sess)
	if err != nil {
		return err
	}
	if ids == nil {
		ids = []string{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"joined_rooms": ids})
	return nil
}

func (s *Server) invite(w http.ResponseWriter, r *http.Request, sess *Session) error {
	var body struct {
		UserID string `json:"user_id"`
		Reason string `json:"reason"`
	}
	if err := readJSON(r, &body); err != nil {
		return err
	}
	if body.UserID == "" {
		return errMissingParam("user_id is required")
	}
	if _, err := rooms.ServerOf(body.UserID); err != nil {
		return errs.Invalidf("invalid user ID %q", body.UserID)
	}
	if err := s.backend.Invite(r.Context(), sess, r.PathValue("roomId"), body.UserID, body.Reason); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{})
	return nil
}

func (s *Server) join(w http.ResponseWriter, r *http.Request, sess *Session) error {
	var body map[string]any
	if err := readJSON(r, &body); err != nil {
		return err
	}
	target := r.PathValue("roomIdOrAlias")
	if target == "" {
		target = r.PathValue("roomId")
	}
	id, err := s.backend.Join(r.Context(), sess, target)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{"room_id": id})
	return nil
}

func (s *Server) leave(w http.ResponseWriter, r *http.Request, sess *Session) error {
	var body struct {
		Reason string `json:"reason"`
	}
	if err := readJSON(r, &body); err != nil {
		return err
	}
	if err := s.backend.Leave(r.Context(), sess, r.PathValue("roomId"), body.Reason); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{})
	return nil
}

func (s *Server) send(w http.ResponseWriter, r *http.Request, sess *Session) error {
	content, err := readContent(r)
	if err != nil {
		return err
	}
	id, err := s.backend.Send(r.Context(), sess, r.PathValue("roomId"), r.PathValue("type"), nil, content, r.PathValue("txnId"))
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
	id, err := s.backend.Send(r.Context(), sess, r.PathValue("roomId"), r.PathValue("type"), &key, content, "")
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{"event_id": id})
	return nil
}

func (s *Server) getState(w http.ResponseWriter, r *http.Request, sess *Session) error {
	evs, err := s.backend.State(sess, r.PathValue("roomId"))
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
	ev, err := s.backend.StateEvent(sess, r.PathValue("roomId"), r.PathValue("type"), r.PathValue("stateKey"))
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
	evs, err := s.backend.Members(sess, r.PathValue("roomId"), MembersQuery{
		Membership:    q.Get("membership"),
		NotMembership: q.Get("not_membership"),
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
	m, err := s.backend.JoinedMembers(sess, r.PathValue("roomId"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"joined": m})
	return nil
}

func (s *Server) event(w http.ResponseWriter, r *http.Request, sess *Session) error {
	ev, err := s.backend.Event(sess, r.PathValue("roomId"), r.PathValue("eventId"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, ev)
	return nil
}

func (s *Server) messages(w http.ResponseWriter, r *http.Request, sess *Session) error {
	q := r.URL.Query()
	req := MessagesRequest{RoomID: r.PathValue("roomId"), From: q.Get("from"), To: q.Get("to"), Dir: q.Get("dir"), Limit: 10}
	if req.Dir == "" {
		req.Dir = "b"
	}
	if req.Dir != "b" && req.Dir != "f" {
		return errs.Invalidf("dir must be b or f")
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 0 {
			return errs.Invalidf("limit must be a non-negative integer")
		}
		req.Limit = min(n, 1000)
	}
	if f := q.Get("filter"); f != "" {
		var ef RoomEventFilter
		if err := json.Unmarshal([]byte(f), &ef); err != nil {
			return errs.Invalidf("filter: %v", err)
		}
		req.Filter = &ef
	}
	resp, err := s.backend.Messages(r.Context(), sess, req)
	if err != nil {
		return err
	}
	if resp.Chunk == nil {
		resp.Chunk = []ClientEvent{}
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

func (s *Server) sync(w http.ResponseWriter, r *http.Request, sess *Session) error {
	q := r.URL.Query()
	req := SyncRequest{Since: q.Get("since"), FullState: q.Get("full_state") == "true"}
	if t := q.Get("timeout"); t != "" {
		n, err := strconv.ParseInt(t, 10, 64)
		if err != nil || n < 0 {
			return errs.Invalidf("timeout must be a non-negative integer")
		}
		req.Timeout = min(n, 5*60*1000)
	}
	if f := q.Get("filter"); f != "" {
		var raw json.RawMessage
		if strings.HasPrefix(strings.TrimSpace(f), "{") {
			raw = json.RawMessage(f)
		} else {
			stored, err := s.backend.Filter(sess.UserID, f)
			if err != nil {
				return err
			}
			raw = stored
		}
		var filter Filter
		if err := json.Unmarshal(raw, &filter); err != nil {
			return errs.Invalidf("filter: %v", err)
		}
		req.Filter = &filter
	}
	resp, err := s.backend.Sync(r.Context(), sess, req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// moderate serves kick, ban and unban: each sets the target's membership.
func (s *Server) moderate(membership string) func(w http.ResponseWriter, r *http.Request, sess *Session) error {
	return func(w http.ResponseWriter, r *http.Request, sess *Session) error {
		var body struct {
			UserID string `json:"user_id"`
			Reason string `json:"reason"`
		}
		if err := readJSON(r, &body); err != nil {
			return err
		}
		if body.UserID == "" {
			return errMissingParam("user_id is required")
		}
		if _, err := rooms.ServerOf(body.UserID); err != nil {
			return errs.Invalidf("invalid user ID %q", body.UserID)
		}
		if err := s.backend.Moderate(r.Context(), sess, r.PathValue("roomId"), body.UserID, membership, body.Reason); err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]any{})
		return nil
	}
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
	id, err := s.backend.Send(r.Context(), sess, r.PathValue("roomId"), "m.room.redaction", nil, c, r.PathValue("txnId"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{"event_id": id})
	return nil
}

// forget is accepted and does nothing yet: a left room stays in storage.
func (s *Server) forget(w http.ResponseWriter, r *http.Request, _ *Session) error {
	writeJSON(w, http.StatusOK, map[string]any{})
	return nil
}

func (s *Server) roomDebug(w http.ResponseWriter, r *http.Request, sess *Session) error {
	v, err := s.backend.RoomDebug(sess, r.PathValue("roomId"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

func (s *Server) createLink(w http.ResponseWriter, r *http.Request, sess *Session) error {
	var body struct {
		MaxUses     *int   `json:"max_uses"`
		ExpiresInMS *int64 `json:"expires_in_ms"`
	}
	if err := readJSON(r, &body); err != nil {
		return err
	}
	var maxUses int
	var expires time.Duration
	if body.MaxUses != nil {
		if *body.MaxUses < 1 || *body.MaxUses > 1_000_000 {
			return errs.Invalidf("max_uses must be between 1 and 1000000")
		}
		maxUses = *body.MaxUses
	}
	if body.ExpiresInMS != nil {
		if *body.ExpiresInMS < 1 || *body.ExpiresInMS > 10*365*24*3600*1000 {
			return errs.Invalidf("expires_in_ms must be positive and at most ten years")
		}
		expires = time.Duration(*body.ExpiresInMS) * time.Millisecond
	}
	link, err := s.backend.CreateLink(r.Context(), sess, r.PathValue("roomId"), maxUses, expires)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, link)
	return nil
}

func (s *Server) listLinks(w http.ResponseWriter, r *http.Request, sess *Session) error {
	links, err := s.backend.Links(sess, r.PathValue("roomId"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"links": links})
	return nil
}

func (s *Server) revokeLink(w http.ResponseWriter, r *http.Request, sess *Session) error {
	if err := s.backend.RevokeLink(r.Context(), sess, r.PathValue("roomId"), r.PathValue("linkId")); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{})
	return nil
}

func (s *Server) joinLink(w http.ResponseWriter, r *http.Request, sess *Session) error {
	var body struct {
		Link string `json:"link"`
	}
	if err := readJSON(r, &body); err != nil {
		return err
	}
	if strings.TrimSpace(body.Link) == "" {
		return errMissingParam("link is required")
	}
	if len(body.Link) > 8192 {
		return errs.Invalidf("that is too long to be an invite link")
	}
	id, err := s.backend.JoinLink(r.Context(), sess, body.Link)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{"room_id": id})
	return nil
}

func (s *Server) blockedServers(w http.ResponseWriter, r *http.Request, sess *Session) error {
	servers, err := s.backend.BlockedServers(sess)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"servers": servers})
	return nil
}

func (s *Server) blockServer(w http.ResponseWriter, r *http.Request, sess *Session) error {
	if err := s.backend.BlockServer(r.Context(), sess, r.PathValue("server")); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{})
	return nil
}

func (s *Server) unblockServer(w http.ResponseWriter, r *http.Request, sess *Session) error {
	if err := s.backend.UnblockServer(r.Context(), sess, r.PathValue("server")); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{})
	return nil
}
