package webui

import (
	"net/http"

	"github.com/parley-p2p/parley/errs"
)

// The third-party lookups (spec: "Third-party Networks") are answered by a
// homeserver's bridges. A parley node runs none, so it knows no protocol:
// the protocol list is empty, and every lookup finds nothing (404, which
// the spec gives for "no portal rooms" and "no users" found).

func (s *Server) thirdPartyProtocols(w http.ResponseWriter, r *http.Request, _ *Session) error {
	writeJSON(w, http.StatusOK, map[string]any{})
	return nil
}

func (s *Server) thirdPartyNone(w http.ResponseWriter, r *http.Request, _ *Session) error {
	if p := r.PathValue("protocol"); p != "" {
		return errs.NotFoundf("this node runs no bridge: protocol %q is unknown", p)
	}
	return errs.NotFoundf("this node runs no bridge: nothing is found on third-party networks")
}
