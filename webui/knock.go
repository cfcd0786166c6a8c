package webui

import (
	"context"
	"net/http"
	"strings"

	"github.com/parley-p2p/parley/errs"
)

// Knocking is what the API needs to knock on a room (room versions 7 and
// up): asking to be let in where the join rule is "knock" or
// "knock_restricted". The Membership backend serves it when it
// implements it; a withdrawal is a leave (Membership.Leave).
type Knocking interface {
	// Knock knocks on a room by ID or alias; via names servers to knock
	// through (the request's server_name and via parameters), tried
	// after those the node knows of itself. It returns the room's ID.
	Knock(ctx context.Context, s *Session, roomIDOrAlias string, via []string, reason string) (string, error)
}

// KnockedRoom is a room the user knocked on, as /sync shows it under
// rooms.knock: the room's stripped state, the knock member event
// included.
type KnockedRoom struct {
	KnockState struct {
		Events []StrippedEvent `json:"events"`
	} `json:"knock_state"`
}

// maxKnockReason bounds a knock's reason, which goes in the member
// event the room's members see.
const maxKnockReason = 1024

func (s *Server) knock(k Knocking) func(w http.ResponseWriter, r *http.Request, sess *Session) error {
	return func(w http.ResponseWriter, r *http.Request, sess *Session) error {
		var body struct {
			Reason string `json:"reason"`
		}
		if err := readJSON(r, &body); err != nil {
			return err
		}
		if len(body.Reason) > maxKnockReason {
			return errs.Invalidf("reason is over %d bytes", maxKnockReason)
		}
		target := r.PathValue("roomIdOrAlias")
		if !strings.HasPrefix(target, "!") && !strings.HasPrefix(target, "#") {
			return errs.Invalidf("%q is neither a room ID nor a room alias", target)
		}
		via, err := viaOf(r)
		if err != nil {
			return err
		}
		id, err := k.Knock(r.Context(), sess, target, via, body.Reason)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]string{"room_id": id})
		return nil
	}
}
