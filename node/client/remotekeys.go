package client

import (
	"context"
	"encoding/json"
	"strconv"
	"time"

	"github.com/parley-p2p/parley/node/peers"
	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/rooms"
	"github.com/parley-p2p/parley/webui"
)

// Clients' keys between nodes: the users of other nodes are asked for
// through their node (peers.QueryUserKeys, ClaimUserKeys); to-device
// messages and device list changes for them wait in the outbox until
// their node acknowledges them. This file is also the other side: the
// peers.KeyService that answers other nodes.

const (
	// remoteKeysTimeout bounds a query or claim to another node (the
	// spec's default timeout).
	remoteKeysTimeout = 10 * time.Second
	// receivedTTL is how long a to-device message ID from another node
	// is remembered, so that one sent again after a lost answer is
	// taken once.
	receivedTTL = 7 * 24 * time.Hour
	// maxRemoteKeyBytes bounds one key another node answers with, as
	// this node bounds what its clients upload (16 KiB).
	maxRemoteKeyBytes = 16 << 10
)

// byServer groups the users of other nodes by server.
func byServer[V any](m map[string]V, local func(string) bool) map[string]map[string]V {
	out := map[string]map[string]V{}
	for u, v := range m {
		if local(u) {
			continue
		}
		s, err := rooms.ServerOf(u)
		if err != nil {
			continue
		}
		if out[s] == nil {
			out[s] = map[string]V{}
		}
		out[s][u] = v
	}
	return out
}

func (api *API) isLocal(u string) bool {
	_, ok := api.peers.LocalUser(u)
	return ok
}

// unreachable records a server in a failures map.
func unreachable(failures map[string]any, server string, err error) {
	failures[server] = map[string]any{"errcode": "M_UNAVAILABLE", "error": "the node did not answer: " + err.Error()}
}

// queryRemote adds the keys of users of other nodes to a query answer.
func (api *API) queryRemote(ctx context.Context, users map[string][]string, resp *webui.KeysQueryResponse) {
	for server, asked := range byServer(users, api.isLocal) {
		if !peers.ValidServerName(server) {
			resp.Failures[server] = map[string]any{"errcode": "M_NOT_FOUND", "error": "not a parley server"}
			continue
		}
		qctx, cancel := context.WithTimeout(ctx, remoteKeysTimeout)
		got, err := api.peers.QueryUserKeys(qctx, server, asked)
		cancel()
		if err != nil {
			unreachable(resp.Failures, server, err)
			continue
		}
		for u, devs := range got.DeviceKeys {
			out := map[string]json.RawMessage{}
			for d, raw := range devs {
				var k struct {
					UserID   string `json:"user_id"`
					DeviceID string `json:"device_id"`
				}
				if len(raw) <= maxRemoteKeyBytes && json.Unmarshal(raw, &k) == nil && k.UserID == u && k.DeviceID == d {
					out[d] = raw
				}
			}
			resp.DeviceKeys[u] = out
		}
		for u, raw := range got.MasterKeys {
			if len(raw) <= maxRemoteKeyBytes {
				resp.MasterKeys[u] = raw
			}
		}
		for u, raw := range got.SelfSigningKeys {
			if len(raw) <= maxRemoteKeyBytes {
				resp.SelfSigningKeys[u] = raw
			}
		}
	}
}

// claimRemote adds one-time keys of users of other nodes to a claim.
func (api *API) claimRemote(ctx context.Context, want map[string]map[string]string, resp *webui.KeysClaimResponse) {
	for server, asked := range byServer(want, api.isLocal) {
		if !peers.ValidServerName(server) {
			resp.Failures[server] = map[string]any{"errcode": "M_NOT_FOUND", "error": "not a parley server"}
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, remoteKeysTimeout)
		got, err := api.peers.ClaimUserKeys(cctx, server, asked)
		cancel()
		if err != nil {
			unreachable(resp.Failures, server, err)
			continue
		}
		for u, devs := range got.OneTimeKeys {
			for d, keys := range devs {
				for _, raw := range keys {
					if len(raw) > maxRemoteKeyBytes {
						delete(devs, d)
					}
				}
			}
			resp.OneTimeKeys[u] = devs
		}
	}
}

// queueRemoteToDevice queues, in t, a to-device message for a user of
// another node that shares a room with the sender. It reports whether it
// queued it.
func (api *API) queueRemoteToDevice(t *store.Txn, sender, evType, user, dev string, content json.RawMessage, id string) (bool, error) {
	server, err := rooms.ServerOf(user)
	if err != nil || !peers.ValidServerName(server) || !api.peers.SharesRoom(sender, server) {
		return false, nil
	}
	ok, err := peers.QueueForServer(t, server, peers.MethodToDevice, peers.ToDeviceReq{
		ID: id, Sender: sender, Type: evType, UserID: user, DeviceID: dev, Content: content,
	})
	if err == nil && !ok {
		api.log.Warn("outbox full: to-device message dropped", "server", server)
	}
	return ok, err
}

// announceKeys queues, in t, a device list change of a local user for
// every other server sharing a room with them.
func (api *API) announceKeys(t *store.Txn, user string) (bool, error) {
	queued := false
	for _, server := range api.peers.ServersSharing(user) {
		ok, err := peers.QueueForServer(t, server, peers.MethodDeviceList, peers.DeviceListReq{UserID: user})
		if err != nil {
			return queued, err
		}
		queued = queued || ok
	}
	return queued, nil
}

// LocalUserKeys implements peers.KeyService: another node asks for the
// published keys of users of this node (peers checked they share a room
// with one of its users). It sees no user-signing key, and no signature
// one user made of another's key.
func (api *API) LocalUserKeys(users map[string][]string) (peers.UserKeysResp, error) {
	resp := peers.UserKeysResp{
		DeviceKeys: map[string]map[string]json.RawMessage{}, MasterKeys: map[string]json.RawMessage{},
		SelfSigningKeys: map[string]json.RawMessage{},
	}
	q := &webui.KeysQueryResponse{
		Failures: map[string]any{}, DeviceKeys: resp.DeviceKeys, MasterKeys: resp.MasterKeys,
		SelfSigningKeys: resp.SelfSigningKeys, UserSigningKeys: map[string]json.RawMessage{},
	}
	err := api.store.View(func(t *store.Txn) error { return api.queryLocal(t, users, "", q) })
	return resp, err
}

// ClaimLocalKeys implements peers.KeyService.
func (api *API) ClaimLocalKeys(want map[string]map[string]string) (peers.ClaimKeysResp, error) {
	var out map[string]map[string]map[string]json.RawMessage
	err := api.store.Update(func(t *store.Txn) error {
		var err error
		out, err = claimLocal(t, want)
		return err
	})
	return peers.ClaimKeysResp{OneTimeKeys: out}, err
}

// DeliverToDevice implements peers.KeyService.
func (api *API) DeliverToDevice(server string, m peers.ToDeviceReq) error {
	err := api.store.Update(func(t *store.Txn) error {
		seen, err := t.Received(server, m.ID)
		if err != nil || seen {
			return err
		}
		msg, err := json.Marshal(map[string]any{"type": m.Type, "sender": m.Sender, "content": m.Content})
		if err != nil {
			return err
		}
		devs := []string{m.DeviceID}
		if m.DeviceID == "*" {
			if devs, err = userDevices(t, m.UserID); err != nil {
				return err
			}
		}
		pos := t.NextPos()
		for n, dev := range devs {
			if _, err := api.queueLocal(t, m.UserID, dev, pos, n, msg); err != nil {
				return err
			}
		}
		return t.PutReceived(server, m.ID, receivedTTL)
	})
	if err != nil {
		return err
	}
	api.notify.wake(m.UserID)
	return nil
}

// RemoteKeysChanged implements peers.KeyService.
func (api *API) RemoteKeysChanged(user string) error {
	err := api.store.Update(func(t *store.Txn) error {
		_, err := t.MarkKeysChanged(user)
		return err
	})
	if err != nil {
		return err
	}
	api.notify.wake(api.sharingUsers(user)...)
	return nil
}

// toDeviceID names a message for another node: unique among this
// node's, as stream positions are.
func toDeviceID(pos uint64, n int) string {
	return strconv.FormatUint(pos, 10) + "." + strconv.Itoa(n)
}
