package webui

import (
	"context"
	"net/http"
	"slices"

	"github.com/parley-p2p/parley/errs"
	"github.com/parley-p2p/parley/rooms"
)

// Membership is what the API needs to change who is in a room.
type Membership interface {
	Invite(ctx context.Context, s *Session, roomID, userID, reason string) error
	// Join joins a room by ID or alias; via names servers to join through
	// (the request's server_name and via parameters), tried after those
	// the node knows of itself.
	Join(ctx context.Context, s *Session, roomIDOrAlias string, via []string) (string, error)
	Leave(ctx context.Context, s *Session, roomID, reason string) error
	// Moderate sets another user's membership: "leave" (kick or unban) or
	// "ban".
	Moderate(ctx context.Context, s *Session, roomID, target, membership, reason string) error
	// Forget hides a room the user left from their /sync and reads.
	Forget(ctx context.Context, s *Session, roomID string) error
}

func (s *Server) invite(w http.ResponseWriter, r *http.Request, sess *Session) error {
	target, reason, err := readTarget(r)
	if err != nil {
		return err
	}
	if err := s.membership.Invite(r.Context(), sess, r.PathValue("roomId"), target, reason); err != nil {
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
	via, err := viaOf(r)
	if err != nil {
		return err
	}
	id, err := s.membership.Join(r.Context(), sess, target, via)
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
	if err := s.membership.Leave(r.Context(), sess, r.PathValue("roomId"), body.Reason); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{})
	return nil
}

// moderate serves kick, ban and unban: each sets the target's membership.
func (s *Server) moderate(membership string) func(w http.ResponseWriter, r *http.Request, sess *Session) error {
	return func(w http.ResponseWriter, r *http.Request, sess *Session) error {
		target, reason, err := readTarget(r)
		if err != nil {
			return err
		}
		if err := s.membership.Moderate(r.Context(), sess, r.PathValue("roomId"), target, membership, reason); err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]any{})
		return nil
	}
}

// forget forgets a room the user left: 400 while they are still in it.
func (s *Server) forget(w http.ResponseWriter, r *http.Request, sess *Session) error {
	var body map[string]any
	if err := readJSON(r, &body); err != nil {
		return err
	}
	if err := s.membership.Forget(r.Context(), sess, r.PathValue("roomId")); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{})
	return nil
}

// readTarget reads the body of invite, kick, ban and unban: the user they
// are about, which must be a valid user ID, and an optional reason.
func readTarget(r *http.Request) (userID, reason string, err error) {
	var body struct {
		UserID string `json:"user_id"`
		Reason string `json:"reason"`
	}
	if err := readJSON(r, &body); err != nil {
		return "", "", err
	}
	if body.UserID == "" {
		return "", "", errMissingParam("user_id is required")
	}
	if _, err := rooms.ServerOf(body.UserID); err != nil {
		return "", "", errs.Invalidf("invalid user ID %q", body.UserID)
	}
	return body.UserID, body.Reason, nil
}

// maxVia bounds the servers a join request may name.
const maxVia = 20

// viaOf reads a join request's server_name and via parameters (each may
// repeat): the servers to join through.
func viaOf(r *http.Request) ([]string, error) {
	q := r.URL.Query()
	var via []string
	for _, name := range []string{"server_name", "via"} {
		for _, v := range q[name] {
			if v == "" || len(v) > 255 {
				return nil, errs.Invalidf("%s %q is not a server name", name, v)
			}
			if !slices.Contains(via, v) {
				via = append(via, v)
			}
		}
	}
	if len(via) > maxVia {
		return nil, errs.Invalidf("at most %d servers may be named to join through", maxVia)
	}
	return via, nil
}
