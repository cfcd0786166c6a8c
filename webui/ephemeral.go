package webui

import (
	"context"
	"net/http"
	"time"
)

// Ephemeral is typing and presence: data about users that is not in any
// room's history.
type Ephemeral interface {
	// SetTyping marks the user typing in the room for timeout (0: the
	// node's cap), or not typing. Only the user may set it, and only in
	// a room they are joined to.
	SetTyping(ctx context.Context, s *Session, roomID, userID string, typing bool, timeout time.Duration) error
	// SetPresence sets the user's presence and, if statusMsg is not nil,
	// status message. Only the user may.
	SetPresence(ctx context.Context, s *Session, userID, presence string, statusMsg *string) error
	// Presence is a user's presence as the session's user may see it.
	Presence(ctx context.Context, s *Session, userID string) (*PresenceStatus, error)
}

// PresenceStatus is GET /presence/{userId}/status's answer.
type PresenceStatus struct {
	Presence        string  `json:"presence"`
	LastActiveAgo   int64   `json:"last_active_ago,omitempty"`
	StatusMsg       *string `json:"status_msg,omitempty"`
	CurrentlyActive bool    `json:"currently_active"`
}

func (s *Server) putTyping(w http.ResponseWriter, r *http.Request, sess *Session) error {
	var body struct {
		Typing  *bool  `json:"typing"`
		Timeout *int64 `json:"timeout"`
	}
	if err := readJSON(r, &body); err != nil {
		return err
	}
	if body.Typing == nil {
		return errMissingParam("typing is required")
	}
	var timeout time.Duration
	if body.Timeout != nil {
		if *body.Timeout < 0 {
			return Errorf(http.StatusBadRequest, "M_INVALID_PARAM", "timeout must not be negative")
		}
		// Capped well below what a Duration holds; the node caps it further.
		timeout = time.Duration(min(*body.Timeout, int64(24*time.Hour/time.Millisecond))) * time.Millisecond
	}
	if err := s.ephemeral.SetTyping(r.Context(), sess, r.PathValue("roomId"), r.PathValue("userId"), *body.Typing, timeout); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{})
	return nil
}

func (s *Server) putPresence(w http.ResponseWriter, r *http.Request, sess *Session) error {
	var body struct {
		Presence  string  `json:"presence"`
		StatusMsg *string `json:"status_msg"`
	}
	if err := readJSON(r, &body); err != nil {
		return err
	}
	if body.Presence == "" {
		return errMissingParam("presence is required")
	}
	if err := s.ephemeral.SetPresence(r.Context(), sess, r.PathValue("userId"), body.Presence, body.StatusMsg); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{})
	return nil
}

func (s *Server) getPresence(w http.ResponseWriter, r *http.Request, sess *Session) error {
	st, err := s.ephemeral.Presence(r.Context(), sess, r.PathValue("userId"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}
