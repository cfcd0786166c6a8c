package webui

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"

	"github.com/parley-p2p/parley/errs"
)

// Dehydrated devices (MSC3814, under its unstable prefix): a device a
// client stores on the node, encrypted with a key only the user's
// clients know (device_data is opaque here), which receives to-device
// messages while none of the user's devices is running; a new device
// fetches them, then usually replaces it.
const msc3814 = "/_matrix/client/unstable/org.matrix.msc3814.v1"

// MaxDehydratedData bounds a dehydrated device's device_data.
const MaxDehydratedData = 64 << 10

// DehydratedDevices keeps each user's one dehydrated device.
type DehydratedDevices interface {
	// PutDehydratedDevice replaces the user's dehydrated device (and
	// everything queued for the one before) with d, its keys uploaded
	// as by /keys/upload.
	PutDehydratedDevice(ctx context.Context, s *Session, d DehydratedDevice, name string, keys KeysUpload) error
	// DehydratedDevice is the user's; errs.NotFound if none.
	DehydratedDevice(s *Session) (*DehydratedDevice, error)
	// DeleteDehydratedDevice deletes it and returns its ID;
	// errs.NotFound if none.
	DeleteDehydratedDevice(ctx context.Context, s *Session) (string, error)
	// DehydratedEvents are the to-device messages queued for it after
	// nextBatch ("" from the start), those up to nextBatch being then
	// taken as received; errs.Forbidden if deviceID is not the user's
	// dehydrated device.
	DehydratedEvents(ctx context.Context, s *Session, deviceID, nextBatch string) (*DehydratedEvents, error)
}

// DehydratedDevice is a dehydrated device's ID and opaque data.
type DehydratedDevice struct {
	DeviceID   string          `json:"device_id"`
	DeviceData json.RawMessage `json:"device_data"`
}

// DehydratedEvents is a batch of a dehydrated device's messages; no
// NextBatch once there are none left.
type DehydratedEvents struct {
	Events    []json.RawMessage `json:"events"`
	NextBatch string            `json:"next_batch,omitempty"`
}

func (s *Server) putDehydrated(w http.ResponseWriter, r *http.Request, sess *Session) error {
	var req struct {
		DeviceID     *string                    `json:"device_id"`
		DeviceData   json.RawMessage            `json:"device_data"`
		Name         string                     `json:"initial_device_display_name"`
		DeviceKeys   json.RawMessage            `json:"device_keys"`
		OneTimeKeys  map[string]json.RawMessage `json:"one_time_keys"`
		FallbackKeys map[string]json.RawMessage `json:"fallback_keys"`
	}
	if err := readJSON(r, &req); err != nil {
		return err
	}
	if req.DeviceID == nil || *req.DeviceID == "" {
		return errMissingParam("device_id is required")
	}
	if len(req.DeviceData) == 0 || string(req.DeviceData) == "null" {
		return errMissingParam("device_data is required")
	}
	if !isObject(req.DeviceData) {
		return errBadJSON(errs.Invalidf("device_data must be an object"))
	}
	if len(req.DeviceData) > MaxDehydratedData {
		return errs.TooLargef("device_data over %d bytes", MaxDehydratedData)
	}
	dev := &Session{UserID: sess.UserID, DeviceID: *req.DeviceID}
	up, err := keysUpload(dev, req.DeviceKeys, req.OneTimeKeys, req.FallbackKeys)
	if err != nil {
		return err
	}
	var data bytes.Buffer
	if err := json.Compact(&data, req.DeviceData); err != nil {
		return errBadJSON(err)
	}
	d := DehydratedDevice{DeviceID: *req.DeviceID, DeviceData: data.Bytes()}
	if err := s.dehydrated.PutDehydratedDevice(r.Context(), sess, d, req.Name, up); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{"device_id": d.DeviceID})
	return nil
}

func (s *Server) getDehydrated(w http.ResponseWriter, r *http.Request, sess *Session) error {
	d, err := s.dehydrated.DehydratedDevice(sess)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, d)
	return nil
}

func (s *Server) deleteDehydrated(w http.ResponseWriter, r *http.Request, sess *Session) error {
	id, err := s.dehydrated.DeleteDehydratedDevice(r.Context(), sess)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{"device_id": id})
	return nil
}

func (s *Server) dehydratedEvents(w http.ResponseWriter, r *http.Request, sess *Session) error {
	var req struct {
		NextBatch string `json:"next_batch"`
	}
	if err := readJSON(r, &req); err != nil {
		return err
	}
	resp, err := s.dehydrated.DehydratedEvents(r.Context(), sess, r.PathValue("deviceId"), req.NextBatch)
	if err != nil {
		return err
	}
	if resp.Events == nil {
		resp.Events = []json.RawMessage{}
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}
