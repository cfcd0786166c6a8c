package webui

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/parley-p2p/parley/errs"
)

// Links is what the API needs for invite links (parley's own API).
type Links interface {
	CreateLink(ctx context.Context, s *Session, roomID string, maxUses int, expiresIn time.Duration) (*LinkInfo, error)
	Links(s *Session, roomID string) ([]LinkInfo, error)
	RevokeLink(ctx context.Context, s *Session, roomID, id string) error
	JoinLink(ctx context.Context, s *Session, link string) (string, error)
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
	link, err := s.links.CreateLink(r.Context(), sess, r.PathValue("roomId"), maxUses, expires)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, link)
	return nil
}

func (s *Server) listLinks(w http.ResponseWriter, r *http.Request, sess *Session) error {
	links, err := s.links.Links(sess, r.PathValue("roomId"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"links": links})
	return nil
}

func (s *Server) revokeLink(w http.ResponseWriter, r *http.Request, sess *Session) error {
	if err := s.links.RevokeLink(r.Context(), sess, r.PathValue("roomId"), r.PathValue("linkId")); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{})
	return nil
}

func (s *Server) joinLink(w http.ResponseWriter, r *http.Request, sess *Session) error {
	var body struct {
		Link string `json:"link"`
		// InPerson says the user got the link in person from its maker:
		// the maker's server is then recorded as verified.
		InPerson bool `json:"in_person"`
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
	id, err := s.links.JoinLink(r.Context(), sess, body.Link)
	if err != nil {
		return err
	}
	out := map[string]string{"room_id": id}
	if body.InPerson && s.e2ee != nil {
		// The join stands whether or not the maker can be verified: the
		// answer says which server was (verified_server) or why not.
		server, err := s.e2ee.VerifyLinkMaker(r.Context(), sess, body.Link)
		if err == nil {
			out["verified_server"] = server
		} else {
			me, internal := matrixError(err)
			if internal {
				s.log.Warn("recording a link's maker as verified", "err", err)
			}
			out["verify_error"] = me.Message
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
