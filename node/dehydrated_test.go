package node

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto/signatures"
	"maunium.net/go/mautrix/id"
)

// A dehydrated device (MSC3814) is stored on the node, published like a
// device, receives to-device messages, which a new device fetches, and
// is replaced or deleted.
func TestDehydratedDevice(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, alice, bob, _ := oneNode(t, ctx)
	url := func(path ...any) string {
		return alice.BuildClientURL(append([]any{"unstable", "org.matrix.msc3814.v1", "dehydrated_device"}, path...)...)
	}
	put := func(devID string, data any) error {
		body := map[string]any{"device_id": devID, "device_data": data, "initial_device_display_name": "dehydrated", "device_keys": dehydratedKeys(alice, devID)}
		_, err := alice.MakeRequest(ctx, "PUT", url(), body, nil)
		return err
	}
	type device struct {
		DeviceID   string          `json:"device_id"`
		DeviceData json.RawMessage `json:"device_data"`
	}
	get := func() (device, error) {
		var d device
		_, err := alice.MakeRequest(ctx, "GET", url(), nil, &d)
		return d, err
	}
	type batch struct {
		Events    []json.RawMessage `json:"events"`
		NextBatch string            `json:"next_batch"`
	}
	events := func(devID, next string) (batch, error) {
		var b batch
		body := map[string]any{}
		if next != "" {
			body["next_batch"] = next
		}
		_, err := alice.MakeRequest(ctx, "POST", url(devID, "events"), body, &b)
		return b, err
	}

	if err := put("DEHYD1", map[string]any{"algorithm": "m.dehydration.v1.olm", "device_pickle": "p1"}); err != nil {
		t.Fatal(err)
	}
	d, err := get()
	if err != nil || d.DeviceID != "DEHYD1" || string(d.DeviceData) != `{"algorithm":"m.dehydration.v1.olm","device_pickle":"p1"}` {
		t.Fatalf("GET = %+v, %v", d, err)
	}
	devices, err := alice.GetDevicesInfo(ctx)
	if err != nil || len(devices.Devices) != 2 {
		t.Fatalf("alice's devices: %+v, %v; want her login and the dehydrated one", devices, err)
	}
	q, err := bob.QueryKeys(ctx, &mautrix.ReqQueryKeys{DeviceKeys: mautrix.DeviceKeysRequest{alice.UserID: {}}})
	if err != nil || q.DeviceKeys[alice.UserID]["DEHYD1"].DeviceID != "DEHYD1" {
		t.Fatalf("bob's key query: %+v, %v; want the dehydrated device's keys", q, err)
	}

	t.Run("its messages are fetched, then acknowledged", func(t *testing.T) {
		for i, dev := range []string{"*", "DEHYD1"} {
			req := map[string]any{"messages": map[string]any{alice.UserID.String(): map[string]any{dev: map[string]any{"n": i}}}}
			if err := call(ctx, bob, "PUT", req, nil, "sendToDevice", "m.test", fmt.Sprint("t", i)); err != nil {
				t.Fatal(err)
			}
		}
		b, err := events("DEHYD1", "")
		if err != nil || len(b.Events) != 2 || b.NextBatch == "" {
			t.Fatalf("first batch: %+v, %v; want both messages and a next_batch", b, err)
		}
		again, err := events("DEHYD1", "")
		if err != nil || len(again.Events) != 2 {
			t.Fatalf("before the batch is acknowledged it is sent again: %+v, %v", again, err)
		}
		last, err := events("DEHYD1", b.NextBatch)
		if err != nil || len(last.Events) != 0 || last.NextBatch != "" {
			t.Fatalf("after next_batch: %+v, %v; want nothing more", last, err)
		}
	})
	t.Run("a new one replaces the old", func(t *testing.T) {
		if err := put("DEHYD2", map[string]any{"algorithm": "m.dehydration.v1.olm", "device_pickle": "p2"}); err != nil {
			t.Fatal(err)
		}
		if d, err := get(); err != nil || d.DeviceID != "DEHYD2" {
			t.Fatalf("GET = %+v, %v", d, err)
		}
		if _, err := alice.GetDeviceInfo(ctx, "DEHYD1"); err == nil {
			t.Fatal("the old dehydrated device is still a device")
		}
	})
	t.Run("errors", func(t *testing.T) {
		_, err := events("DEHYD1", "")
		wantHTTP(t, "the messages of a device that is not the dehydrated one", err, 403, "M_FORBIDDEN")
		_, err = events("DEHYD2", "nonsense")
		wantHTTP(t, "a bad next_batch", err, 400, "M_INVALID_PARAM")
		_, err = alice.MakeRequest(ctx, "PUT", url(), map[string]any{"device_id": "DEHYD3"}, nil)
		wantHTTP(t, "no device_data", err, 400, "M_MISSING_PARAM")
		_, err = alice.MakeRequest(ctx, "PUT", url(), map[string]any{"device_id": "DEHYD3", "device_data": "x"}, nil)
		wantHTTP(t, "device_data that is not an object", err, 400, "M_BAD_JSON")
		_, err = alice.MakeRequest(ctx, "PUT", url(), map[string]any{"device_id": alice.DeviceID, "device_data": map[string]any{}}, nil)
		wantHTTP(t, "the ID of a device in use", err, 400, "M_INVALID_PARAM")
		if d, err := get(); err != nil || d.DeviceID != "DEHYD2" {
			t.Fatalf("after the errors: %+v, %v; want DEHYD2 unchanged", d, err)
		}
	})
	t.Run("deleted", func(t *testing.T) {
		var resp device
		if _, err := alice.MakeRequest(ctx, "DELETE", url(), nil, &resp); err != nil || resp.DeviceID != "DEHYD2" {
			t.Fatalf("DELETE = %+v, %v", resp, err)
		}
		_, err := get()
		wantHTTP(t, "GET after DELETE", err, 404, "M_NOT_FOUND")
		_, err = alice.MakeRequest(ctx, "DELETE", url(), nil, nil)
		wantHTTP(t, "DELETE again", err, 404, "M_NOT_FOUND")
		if _, err := alice.GetDeviceInfo(ctx, "DEHYD2"); err == nil {
			t.Fatal("the deleted dehydrated device is still a device")
		}
	})
	t.Run("versions says so", func(t *testing.T) {
		var v struct {
			Unstable map[string]bool `json:"unstable_features"`
		}
		if _, err := alice.MakeRequest(ctx, "GET", alice.BuildURL(mautrix.BaseURLPath{"_matrix", "client", "versions"}), nil, &v); err != nil || !v.Unstable["org.matrix.msc3814"] {
			t.Fatalf("versions: %+v, %v", v, err)
		}
	})
}

// dehydratedKeys are the keys of one of c's devices, devID.
func dehydratedKeys(c *mautrix.Client, devID string) *mautrix.DeviceKeys {
	dev := id.DeviceID(devID)
	return &mautrix.DeviceKeys{
		UserID: c.UserID, DeviceID: dev,
		Algorithms: []id.Algorithm{id.AlgorithmOlmV1, id.AlgorithmMegolmV1},
		Keys: mautrix.KeyMap{
			id.NewDeviceKeyID(id.KeyAlgorithmCurve25519, dev): "curve-" + devID,
			id.NewDeviceKeyID(id.KeyAlgorithmEd25519, dev):    "ed-" + devID,
		},
		Signatures: signatures.Signatures{c.UserID: {id.NewKeyID(id.KeyAlgorithmEd25519, devID): "sig-" + devID}},
	}
}
