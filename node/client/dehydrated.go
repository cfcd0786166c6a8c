package client

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"

	"github.com/parley-p2p/parley/errs"
	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/webui"
)

// Dehydrated devices (MSC3814): each user has at most one, a device
// record with no access token, its keys and its to-device queue like
// any device's, and its data (opaque) kept with the user. Its messages
// are fetched in one batch (the queue is bounded: todevice.go); the
// batch's next_batch, sent back, acknowledges it.

// PutDehydratedDevice implements webui.DehydratedDevices.
func (api *API) PutDehydratedDevice(ctx context.Context, s *webui.Session, d webui.DehydratedDevice, name string, keys webui.KeysUpload) error {
	if err := checkDeviceID(d.DeviceID); err != nil {
		return err
	}
	var old string
	err := api.store.Update(func(t *store.Txn) error {
		old = ""
		prev, err := t.Dehydrated(s.UserID)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return err
		default:
			old = prev.DeviceID
		}
		if _, err := t.Device(s.UserID, d.DeviceID); err == nil && d.DeviceID != old {
			return errs.Invalidf("device ID %q is in use by another of your devices", d.DeviceID)
		} else if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	if old != "" {
		// The one before goes, with its keys and its messages.
		if err := api.deleteDevices(s.UserID, func(id string) bool { return id == old }); err != nil {
			return err
		}
	}
	err = api.store.Update(func(t *store.Txn) error {
		if err := t.PutDevice(&store.Device{UserID: s.UserID, ID: d.DeviceID, Name: cutName(name), Created: nowMS()}); err != nil {
			return err
		}
		return t.PutDehydrated(s.UserID, &store.Dehydrated{DeviceID: d.DeviceID, Data: d.DeviceData, Created: nowMS()})
	})
	if err != nil {
		return err
	}
	api.devicesChanged(s.UserID, d.DeviceID, false)
	_, err = api.UploadKeys(ctx, &webui.Session{UserID: s.UserID, DeviceID: d.DeviceID}, keys)
	return err
}

// dehydrated is the user's dehydrated device, if its device still
// exists (it may have been deleted as any device is).
func (api *API) dehydrated(t *store.Txn, user string) (*store.Dehydrated, error) {
	d, err := t.Dehydrated(user)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errs.NotFoundf("you have no dehydrated device")
	}
	if err != nil {
		return nil, err
	}
	if _, err := t.Device(user, d.DeviceID); errors.Is(err, store.ErrNotFound) {
		return nil, errs.NotFoundf("you have no dehydrated device")
	} else if err != nil {
		return nil, err
	}
	return d, nil
}

// DehydratedDevice implements webui.DehydratedDevices.
func (api *API) DehydratedDevice(s *webui.Session) (*webui.DehydratedDevice, error) {
	var out *webui.DehydratedDevice
	err := api.store.View(func(t *store.Txn) error {
		d, err := api.dehydrated(t, s.UserID)
		if err == nil {
			out = &webui.DehydratedDevice{DeviceID: d.DeviceID, DeviceData: d.Data}
		}
		return err
	})
	return out, err
}

// DeleteDehydratedDevice implements webui.DehydratedDevices.
func (api *API) DeleteDehydratedDevice(ctx context.Context, s *webui.Session) (string, error) {
	var id string
	err := api.store.Update(func(t *store.Txn) error {
		d, err := api.dehydrated(t, s.UserID)
		if err != nil {
			return err
		}
		id = d.DeviceID
		return t.DeleteDehydrated(s.UserID)
	})
	if err != nil {
		return "", err
	}
	return id, api.deleteDevices(s.UserID, func(d string) bool { return d == id })
}

// DehydratedEvents implements webui.DehydratedDevices.
func (api *API) DehydratedEvents(ctx context.Context, s *webui.Session, deviceID, nextBatch string) (*webui.DehydratedEvents, error) {
	var acked uint64
	if nextBatch != "" {
		p, err := strconv.ParseUint(strings.TrimPrefix(nextBatch, "d"), 10, 64)
		if err != nil || !strings.HasPrefix(nextBatch, "d") {
			return nil, errs.Invalidf("invalid next_batch %q", nextBatch)
		}
		acked = p
	}
	out := &webui.DehydratedEvents{Events: []json.RawMessage{}}
	err := api.store.Update(func(t *store.Txn) error {
		d, err := api.dehydrated(t, s.UserID)
		if err != nil || d.DeviceID != deviceID {
			return errs.Forbiddenf("%q is not your dehydrated device", deviceID)
		}
		if acked > 0 {
			if err := t.AckToDevices(s.UserID, deviceID, acked); err != nil {
				return err
			}
		}
		queued, err := t.ToDevices(s.UserID, deviceID, 2*maxQueueMessages)
		if err != nil {
			return err
		}
		for _, m := range queued {
			out.Events = append(out.Events, m.Message)
		}
		if len(queued) > 0 {
			out.NextBatch = "d" + strconv.FormatUint(queued[len(queued)-1].Pos, 10)
		}
		return nil
	})
	return out, err
}
