package webui

import (
	"net/http"

	"github.com/parley-p2p/parley/errs"
)

// whois answers GET /admin/whois/{userId} for the caller's own account:
// its devices and where each was last seen. The spec lets a server limit
// the lookup to the user themself, and a node has no administrator who
// may watch other users' sessions.
func (s *Server) whois(w http.ResponseWriter, r *http.Request, sess *Session) error {
	user := r.PathValue("userId")
	if user != sess.UserID {
		return errs.Forbiddenf("only your own sessions can be looked up")
	}
	ds, err := s.devices.Devices(user)
	if err != nil {
		return err
	}
	type connection struct {
		IP       string `json:"ip,omitempty"`
		LastSeen int64  `json:"last_seen,omitempty"`
	}
	type session struct {
		Connections []connection `json:"connections"`
	}
	type device struct {
		Sessions []session `json:"sessions"`
	}
	devices := make(map[string]device, len(ds))
	for _, d := range ds {
		conns := []connection{}
		if d.LastSeenIP != "" || d.LastSeenTS != 0 {
			conns = append(conns, connection{IP: d.LastSeenIP, LastSeen: d.LastSeenTS})
		}
		devices[d.DeviceID] = device{Sessions: []session{{Connections: conns}}}
	}
	writeJSON(w, http.StatusOK, map[string]any{"user_id": user, "devices": devices})
	return nil
}
