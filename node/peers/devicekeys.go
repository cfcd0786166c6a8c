package peers

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/parley-p2p/parley/node/dag"
	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/rooms"
)

// KeyService is what the client API gives the node-to-node side to
// answer other nodes about local users' own encryption keys (node/client
// implements it). Peers has checked, before any call, that the users
// share a joined room with a user of the asking server.
type KeyService interface {
	LocalUserKeys(users map[string][]string) (UserKeysResp, error)
	ClaimLocalKeys(want map[string]map[string]string) (ClaimKeysResp, error)
	// DeliverToDevice queues a message from a user of server for local
	// devices, once per ID.
	DeliverToDevice(server string, m ToDeviceReq) error
	// RemoteKeysChanged records that a user of another node changed keys.
	RemoteKeysChanged(user string) error
}

// keyState is the key service and the outbox's wake-up.
type keyState struct {
	mu  sync.Mutex
	svc KeyService
	// kick wakes the outbox delivery (capacity 1: a pending wake-up is
	// enough); made by New.
	kick chan struct{}
}

func (ps *Peers) keys() *keyState { return &ps.keyst }

// SetKeyService gives the node-to-node side the client API's keys.
func (ps *Peers) SetKeyService(svc KeyService) {
	k := ps.keys()
	k.mu.Lock()
	k.svc = svc
	k.mu.Unlock()
}

func (ps *Peers) keyService() (KeyService, error) {
	k := ps.keys()
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.svc == nil {
		return nil, remoteErr("M_UNRECOGNIZED", "this node serves no keys")
	}
	return k.svc, nil
}

// SharesRoom reports whether a user and some user of a server are both
// joined to a room this node holds.
func (ps *Peers) SharesRoom(user, server string) bool {
	for _, r := range ps.dag.Rooms() {
		if ps.userJoined(r, user) && ps.serverHas(r.State(), server, func(m string) bool { return m == "join" }) {
			return true
		}
	}
	return false
}

// usersShare reports whether two users are both joined to a room.
func (ps *Peers) usersShare(a, b string) bool {
	for _, r := range ps.dag.Rooms() {
		if ps.userJoined(r, a) && ps.userJoined(r, b) {
			return true
		}
	}
	return false
}

func (ps *Peers) userJoined(r *dag.Room, user string) bool {
	return ps.membershipIn(r, user) == "join"
}

// answerable is the part of a key query or claim that this node
// answers for a server: the asked users that are its own and share a
// room with one of the server's, each with what was asked of them. It
// bounds the users and (by devices) the devices asked at once.
func answerable[V any](ps *Peers, server string, asked map[string]V, devices func(V) int) (map[string]V, error) {
	if len(asked) > MaxKeyUsers {
		return nil, remoteErr("M_TOO_LARGE", "at most %d users at once", MaxKeyUsers)
	}
	n := 0
	for _, v := range asked {
		n += devices(v)
	}
	if n > MaxKeyDevices {
		return nil, remoteErr("M_TOO_LARGE", "at most %d devices at once", MaxKeyDevices)
	}
	out := make(map[string]V, len(asked))
	for u, v := range asked {
		if _, local := ps.LocalUser(u); local && ps.SharesRoom(u, server) {
			out[u] = v
		}
	}
	return out, nil
}

func (ps *Peers) onUserKeys(server string, body []byte) (any, error) {
	var req UserKeysReq
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	asked, err := answerable(ps, server, req.Users, func(devs []string) int { return len(devs) })
	if err != nil {
		return nil, err
	}
	svc, err := ps.keyService()
	if err != nil {
		return nil, err
	}
	return svc.LocalUserKeys(asked)
}

func (ps *Peers) onClaimKeys(server string, body []byte) (any, error) {
	var req ClaimKeysReq
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	asked, err := answerable(ps, server, req.OneTimeKeys, func(devs map[string]string) int { return len(devs) })
	if err != nil {
		return nil, err
	}
	svc, err := ps.keyService()
	if err != nil {
		return nil, err
	}
	return svc.ClaimLocalKeys(asked)
}

func (ps *Peers) onToDevice(server string, body []byte) (any, error) {
	var m ToDeviceReq
	if err := decode(body, &m); err != nil {
		return nil, err
	}
	if s, err := rooms.ServerOf(m.Sender); err != nil || s != server {
		return nil, remoteErr("M_FORBIDDEN", "the sender is not a user of the sending server")
	}
	if m.ID == "" || len(m.ID) > 255 || m.Type == "" || len(m.Type) > 255 || m.DeviceID == "" || len(m.DeviceID) > 255 || len(m.Content) > MaxToDeviceBody {
		return nil, remoteErr("M_INVALID_PARAM", "a to-device message needs an ID, a type, a device and content within bounds")
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(m.Content, &obj) != nil {
		return nil, remoteErr("M_INVALID_PARAM", "content must be an object")
	}
	if _, local := ps.LocalUser(m.UserID); !local || !ps.usersShare(m.Sender, m.UserID) {
		// Acknowledged and dropped: the sender need not keep it.
		return AckResp{}, nil
	}
	svc, err := ps.keyService()
	if err != nil {
		return nil, err
	}
	if err := svc.DeliverToDevice(server, m); err != nil {
		return nil, err
	}
	return AckResp{}, nil
}

func (ps *Peers) onDeviceList(server string, body []byte) (any, error) {
	var req DeviceListReq
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	if s, err := rooms.ServerOf(req.UserID); err != nil || s != server {
		return nil, remoteErr("M_FORBIDDEN", "the user is not of the sending server")
	}
	if !ps.sharesWithLocal(req.UserID) {
		return AckResp{}, nil
	}
	svc, err := ps.keyService()
	if err != nil {
		return nil, err
	}
	if err := svc.RemoteKeysChanged(req.UserID); err != nil {
		return nil, err
	}
	return AckResp{}, nil
}

// sharesWithLocal reports whether a user shares a joined room with a
// local user.
func (ps *Peers) sharesWithLocal(user string) bool {
	return ps.SharesRoom(user, ps.serverName)
}

// QueryUserKeys asks a server's node for its users' published keys.
// What comes back is kept to the users asked, of that server.
func (ps *Peers) QueryUserKeys(ctx context.Context, server string, users map[string][]string) (UserKeysResp, error) {
	var resp UserKeysResp
	p, err := peerOf(server)
	if err != nil {
		return resp, err
	}
	if err := ps.request(ctx, p, MethodUserKeys, UserKeysReq{Users: users}, &resp); err != nil {
		return resp, err
	}
	for u := range resp.DeviceKeys {
		if _, asked := users[u]; !asked {
			delete(resp.DeviceKeys, u)
		}
	}
	for _, m := range []map[string]json.RawMessage{resp.MasterKeys, resp.SelfSigningKeys} {
		for u := range m {
			if _, asked := users[u]; !asked {
				delete(m, u)
			}
		}
	}
	return resp, nil
}

// ClaimUserKeys claims one-time keys of a server's users from its node.
func (ps *Peers) ClaimUserKeys(ctx context.Context, server string, want map[string]map[string]string) (ClaimKeysResp, error) {
	var resp ClaimKeysResp
	p, err := peerOf(server)
	if err != nil {
		return resp, err
	}
	if err := ps.request(ctx, p, MethodClaimKeys, ClaimKeysReq{OneTimeKeys: want}, &resp); err != nil {
		return resp, err
	}
	for u, devs := range resp.OneTimeKeys {
		asked, ok := want[u]
		if !ok {
			delete(resp.OneTimeKeys, u)
			continue
		}
		for d, keys := range devs {
			if _, ok := asked[d]; !ok || len(keys) != 1 {
				delete(devs, d)
			}
		}
	}
	return resp, nil
}

// QueueForServer queues a request (MethodToDevice, MethodDeviceList) for
// a server in t, to be delivered once t commits and then until the
// server acknowledges it; Kick after the commit sends it at once. It
// reports false when the server's outbox is full.
func QueueForServer(t *store.Txn, server, method string, req any) (bool, error) {
	n, err := t.OutboxLen(server)
	if err != nil {
		return false, err
	}
	if n >= MaxOutbox {
		return false, nil
	}
	body, err := json.Marshal(req)
	if err != nil {
		return false, err
	}
	return true, t.PutOutbox(server, store.OutboxItem{Method: method, Body: body})
}

// KickOutbox makes the outbox try its servers now.
func (ps *Peers) KickOutbox() {
	select {
	case ps.keys().kick <- struct{}{}:
	default:
	}
}

// deliverOutbox sends what the outbox holds, server by server and in
// order, at each kick (a queued request, a peer connecting) and every
// reconnect interval, until each server acknowledges.
func (ps *Peers) deliverOutbox(ctx context.Context) {
	every := ps.cfg.ReconnectInterval
	if every <= 0 {
		every = 15 * time.Second
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	kick := ps.keys().kick
	for {
		var servers []string
		err := ps.store.View(func(t *store.Txn) error {
			var err error
			servers, err = t.OutboxServers()
			return err
		})
		if err != nil && !errors.Is(err, store.ErrClosed) {
			ps.log.Warn("outbox", "err", err)
		}
		for _, s := range servers {
			if ctx.Err() != nil {
				return
			}
			ps.deliverTo(ctx, s)
		}
		select {
		case <-ctx.Done():
			return
		case <-kick:
		case <-tick.C:
		}
	}
}

// deliverTo sends a server what it is owed, until one fails.
func (ps *Peers) deliverTo(ctx context.Context, server string) {
	p, err := peerOf(server)
	if err != nil {
		return
	}
	for ctx.Err() == nil {
		var items []store.OutboxItem
		if err := ps.store.View(func(t *store.Txn) error {
			var err error
			items, err = t.Outbox(server, 64)
			return err
		}); err != nil || len(items) == 0 {
			return
		}
		for _, it := range items {
			var ack AckResp
			if err := ps.request(ctx, p, it.Method, json.RawMessage(it.Body), &ack); err != nil {
				ps.log.Debug("outbox: not delivered", "server", shortServer(server), "method", it.Method, "err", err)
				return
			}
			key := it.Key
			if err := ps.store.Update(func(t *store.Txn) error { return t.DeleteOutbox(server, key) }); err != nil {
				return
			}
		}
	}
}

func shortServer(s string) string {
	if len(s) > 8 {
		return s[:8]
	}
	return s
}

// ServersSharing lists the other servers with a user joined to a room
// the user is joined to.
func (ps *Peers) ServersSharing(user string) []string {
	set := map[string]bool{}
	for _, r := range ps.dag.Rooms() {
		if !ps.userJoined(r, user) {
			continue
		}
		for s, id := range dag.MemberEvents(r.State()) {
			if s == ps.serverName || set[s] {
				continue
			}
			if m, ok := ps.dag.MembershipOf(id); ok && m == "join" {
				set[s] = true
			}
		}
	}
	out := make([]string, 0, len(set))
	for s := range set {
		out = append(out, s)
	}
	return out
}
