package webui

import (
	"context"
	"net/http"

	"github.com/parley-p2p/parley/errs"
	"github.com/parley-p2p/parley/rooms"
)

// MaxAdditionalCreators bounds an upgrade's additional_creators.
const MaxAdditionalCreators = 50

// Upgrader upgrades rooms (POST /rooms/{roomId}/upgrade, the spec's
// "Room Upgrades" module). A Rooms backend may implement it; the route is
// served only if it does.
type Upgrader interface {
	// UpgradeRoom replaces a room the user is joined to by a new room of
	// version newVersion (a KnownVersion) and returns the new room's ID:
	// errs.NotFound for a room unknown here, errs.Forbidden if the user
	// may not send m.room.tombstone in it. additionalCreators are the new
	// room's creators beside the user, for version 12.
	UpgradeRoom(ctx context.Context, s *Session, roomID, newVersion string, additionalCreators []string) (string, error)
}

func (s *Server) upgradeRoom(up Upgrader) func(w http.ResponseWriter, r *http.Request, sess *Session) error {
	return func(w http.ResponseWriter, r *http.Request, sess *Session) error {
		var body struct {
			NewVersion         *string  `json:"new_version"`
			AdditionalCreators []string `json:"additional_creators"`
		}
		if err := readJSON(r, &body); err != nil {
			return err
		}
		if body.NewVersion == nil {
			return errMissingParam("new_version is required")
		}
		if !rooms.KnownVersion(*body.NewVersion) {
			return Errorf(http.StatusBadRequest, "M_UNSUPPORTED_ROOM_VERSION", "room version %q is not supported", *body.NewVersion)
		}
		if len(body.AdditionalCreators) > MaxAdditionalCreators {
			return errs.Invalidf("additional_creators has %d entries; at most %d are allowed", len(body.AdditionalCreators), MaxAdditionalCreators)
		}
		for _, u := range body.AdditionalCreators {
			if _, err := rooms.ServerOf(u); err != nil {
				return errs.Invalidf("additional_creators: invalid user ID %q", u)
			}
		}
		id, err := up.UpgradeRoom(r.Context(), sess, r.PathValue("roomId"), *body.NewVersion, body.AdditionalCreators)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]string{"replacement_room": id})
		return nil
	}
}
