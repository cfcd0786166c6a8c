package webui

import (
	"context"
	"net/http"
)

// Admin is the node's own business: its status, and the servers its owner
// blocked (their invites are refused, and those pending are dropped).
type Admin interface {
	// Status is the node's health for /_parley/v1/status.
	Status() any
	BlockedServers(s *Session) ([]string, error)
	BlockServer(ctx context.Context, s *Session, server string) error
	UnblockServer(ctx context.Context, s *Session, server string) error
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, s.admin.Status())
	return nil
}

func (s *Server) blockedServers(w http.ResponseWriter, r *http.Request, sess *Session) error {
	servers, err := s.admin.BlockedServers(sess)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"servers": servers})
	return nil
}

func (s *Server) blockServer(w http.ResponseWriter, r *http.Request, sess *Session) error {
	if err := s.admin.BlockServer(r.Context(), sess, r.PathValue("server")); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{})
	return nil
}

func (s *Server) unblockServer(w http.ResponseWriter, r *http.Request, sess *Session) error {
	if err := s.admin.UnblockServer(r.Context(), sess, r.PathValue("server")); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{})
	return nil
}
