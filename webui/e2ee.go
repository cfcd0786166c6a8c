package webui

import (
	"context"
	"net/http"

	"github.com/parley-p2p/parley/errs"
	"github.com/parley-p2p/parley/rooms"
)

// E2EE is what the API needs to show a room's end-to-end encryption and
// let a user check who they talk to (parley's own API).
type E2EE interface {
	// RoomE2EE describes a room's encryption and, for each member, the
	// safety number the user compares with them. Only a joined member
	// may ask.
	RoomE2EE(s *Session, roomID string) (*RoomE2EE, error)
	// SetVerified records (verified) or withdraws the user's check of a
	// server with a member in the room; via is "qr" or "manual".
	SetVerified(ctx context.Context, s *Session, roomID, server, via string, verified bool) error
	// VerifyLinkMaker records the server of the user who made an invite
	// link as verified "via link": the user says they got the link in
	// person. The user must have joined the link's room, where the maker
	// is a member. It returns the server it recorded.
	VerifyLinkMaker(ctx context.Context, s *Session, link string) (string, error)
}

// RoomE2EE is GET /_parley/v1/rooms/{roomId}/e2ee.
type RoomE2EE struct {
	Encrypted bool         `json:"encrypted"`
	Algorithm string       `json:"algorithm"`
	KEM       string       `json:"kem"`
	Members   []E2EEMember `json:"members"`
}

// E2EEMember is one member of a room as the encryption panel shows it.
type E2EEMember struct {
	UserID     string `json:"user_id"`
	Membership string `json:"membership"`
	Server     string `json:"server"`
	// ThisDevice is set for members on this node: there is no number to
	// compare with oneself.
	ThisDevice bool `json:"this_device,omitempty"`
	// SafetyNumber is 60 digits in 12 groups of 5, the same on both sides.
	SafetyNumber string        `json:"safety_number,omitempty"`
	Verified     *Verification `json:"verified"`
}

// Verification is how and when (ms since the epoch) the user verified a
// member's server.
type Verification struct {
	Via string `json:"via"`
	TS  int64  `json:"ts"`
}

// Ways a user verifies a server.
const (
	ViaQR     = "qr"
	ViaManual = "manual"
	ViaLink   = "link"
)

func (s *Server) roomE2EE(w http.ResponseWriter, r *http.Request, sess *Session) error {
	info, err := s.e2ee.RoomE2EE(sess, r.PathValue("roomId"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, info)
	return nil
}

// verify marks a member's server verified, or with "verified": false
// unmarks it.
func (s *Server) verify(w http.ResponseWriter, r *http.Request, sess *Session) error {
	var body struct {
		Server   string `json:"server"`
		Via      string `json:"via"`
		Verified *bool  `json:"verified"`
	}
	if err := readJSON(r, &body); err != nil {
		return err
	}
	if body.Server == "" {
		return errMissingParam("server is required")
	}
	if _, err := rooms.ServerKey(body.Server); err != nil {
		return errs.Invalidf("%q is not a server name (64 lowercase hex digits)", body.Server)
	}
	on := body.Verified == nil || *body.Verified
	if on && body.Via != ViaQR && body.Via != ViaManual {
		return errs.Invalidf("via must be %q or %q", ViaQR, ViaManual)
	}
	if err := s.e2ee.SetVerified(r.Context(), sess, r.PathValue("roomId"), body.Server, body.Via, on); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{})
	return nil
}

func (s *Server) unverify(w http.ResponseWriter, r *http.Request, sess *Session) error {
	server := r.PathValue("server")
	if _, err := rooms.ServerKey(server); err != nil {
		return errs.Invalidf("%q is not a server name (64 lowercase hex digits)", server)
	}
	if err := s.e2ee.SetVerified(r.Context(), sess, r.PathValue("roomId"), server, "", false); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{})
	return nil
}
