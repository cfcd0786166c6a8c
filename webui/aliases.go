package webui

import (
	"context"
	"net/http"
)

// Aliases is what the API needs for room aliases: this node's own
// (#name:server), kept by the node; others' are resolved by asking their
// server.
type Aliases interface {
	// PutAlias points a new alias of this node at a room.
	PutAlias(ctx context.Context, s *Session, alias, roomID string) error
	// ResolveAlias returns the room an alias points to and servers that
	// can join the user to it.
	ResolveAlias(ctx context.Context, alias string) (roomID string, servers []string, err error)
	// DeleteAlias removes an alias of this node.
	DeleteAlias(ctx context.Context, s *Session, alias string) error
	// RoomAliases lists this node's aliases of a room the user is in.
	RoomAliases(ctx context.Context, s *Session, roomID string) ([]string, error)
}

func (s *Server) putAlias(w http.ResponseWriter, r *http.Request, sess *Session) error {
	var body struct {
		RoomID string `json:"room_id"`
	}
	if err := readJSON(r, &body); err != nil {
		return err
	}
	if body.RoomID == "" {
		return errMissingParam("room_id is required")
	}
	if err := s.aliases.PutAlias(r.Context(), sess, r.PathValue("roomAlias"), body.RoomID); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{})
	return nil
}

func (s *Server) getAlias(w http.ResponseWriter, r *http.Request, _ *Session) error {
	room, servers, err := s.aliases.ResolveAlias(r.Context(), r.PathValue("roomAlias"))
	if err != nil {
		return err
	}
	if servers == nil {
		servers = []string{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"room_id": room, "servers": servers})
	return nil
}

func (s *Server) deleteAlias(w http.ResponseWriter, r *http.Request, sess *Session) error {
	if err := s.aliases.DeleteAlias(r.Context(), sess, r.PathValue("roomAlias")); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{})
	return nil
}

func (s *Server) roomAliases(w http.ResponseWriter, r *http.Request, sess *Session) error {
	list, err := s.aliases.RoomAliases(r.Context(), sess, r.PathValue("roomId"))
	if err != nil {
		return err
	}
	if list == nil {
		list = []string{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"aliases": list})
	return nil
}
