package client

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/parley-p2p/parley/errs"
	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/rooms"
	"github.com/parley-p2p/parley/webui"
)

// Clients' own end-to-end encryption keys (webui.Keys): kept on this
// node for its users. What a client can make the node keep is bounded:
// device keys by the user's devices, one-time keys per device, fallback
// keys per device, backups per user and keys per backup.
const (
	maxOneTimeKeys    = 1000  // unclaimed one-time keys per device
	maxFallbackAlgs   = 8     // fallback key algorithms per device
	maxBackupVersions = 16    // backup versions a user keeps
	maxBackupKeys     = 20000 // keys in one backup version (one deletion is one transaction)
)

// UploadKeys implements webui.Keys.
func (api *API) UploadKeys(ctx context.Context, s *webui.Session, up webui.KeysUpload) (map[string]int, error) {
	var counts map[string]int
	var changed bool
	err := api.store.Update(func(t *store.Txn) error {
		changed = false
		if up.DeviceKeys != nil {
			old, err := t.DeviceKey(s.UserID, s.DeviceID)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
			if !bytes.Equal(old, up.DeviceKeys) {
				if err := t.PutDeviceKeys(s.UserID, s.DeviceID, up.DeviceKeys); err != nil {
					return err
				}
				if _, err := t.MarkKeysChanged(s.UserID); err != nil {
					return err
				}
				if _, err := api.announceKeys(t, s.UserID); err != nil {
					return err
				}
				changed = true
			}
		}
		var err error
		if counts, err = t.OneTimeKeyCounts(s.UserID, s.DeviceID); err != nil {
			return err
		}
		if len(up.OneTimeKeys) > 0 {
			total := len(up.OneTimeKeys)
			for _, n := range counts {
				total += n
			}
			if total > maxOneTimeKeys {
				return errs.Invalidf("a device keeps at most %d one-time keys (%d stored, %d sent)", maxOneTimeKeys, total-len(up.OneTimeKeys), len(up.OneTimeKeys))
			}
			keys := make(map[[2]string]json.RawMessage, len(up.OneTimeKeys))
			for _, k := range up.OneTimeKeys {
				keys[[2]string{k.Algorithm, k.KeyID}] = k.Key
			}
			counts, err = t.PutOneTimeKeys(s.UserID, s.DeviceID, keys)
			if errors.Is(err, store.ErrKeyExists) {
				return errs.Invalidf("one-time key %s is already stored with a different key", strings.TrimPrefix(err.Error(), store.ErrKeyExists.Error()+": "))
			}
			if err != nil {
				return err
			}
		}
		if len(up.FallbackKeys) > 0 {
			fb, err := t.FallbackKeys(s.UserID, s.DeviceID)
			if err != nil {
				return err
			}
			for _, k := range up.FallbackKeys {
				fb[k.Algorithm] = store.FallbackKey{KeyID: k.KeyID, Key: k.Key}
			}
			if len(fb) > maxFallbackAlgs {
				return errs.Invalidf("a device keeps fallback keys of at most %d algorithms", maxFallbackAlgs)
			}
			if err := t.PutFallbackKeys(s.UserID, s.DeviceID, fb); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if changed {
		api.notify.wake(api.sharingUsers(s.UserID)...)
		api.peers.KickOutbox()
	}
	withZeroCount(counts)
	return counts, nil
}

// sharingUsers lists the local users who share a joined room with user,
// user included.
func (api *API) sharingUsers(user string) []string {
	set := map[string]bool{user: true}
	for _, r := range api.dag.Rooms() {
		members := api.joinedMembers(r.State())
		if !slices.Contains(members, user) {
			continue
		}
		for _, m := range members {
			if _, local := api.peers.LocalUser(m); local {
				set[m] = true
			}
		}
	}
	out := make([]string, 0, len(set))
	for u := range set {
		out = append(out, u)
	}
	return out
}

// joinedMembers lists the joined members in a room's state.
func (api *API) joinedMembers(state store.StateMap) []string {
	var out []string
	for k, id := range state {
		if k.Type != "m.room.member" {
			continue
		}
		if m, ok := api.dag.MembershipOf(id); ok && m == "join" {
			out = append(out, k.StateKey)
		}
	}
	return out
}

// sharedWith is every user who shares a joined room with user, user
// included.
func (api *API) sharedWith(user string) map[string]bool {
	set := map[string]bool{user: true}
	for _, r := range api.dag.Rooms() {
		members := api.joinedMembers(r.State())
		if !slices.Contains(members, user) {
			continue
		}
		for _, m := range members {
			set[m] = true
		}
	}
	return set
}

// withSignatures adds to a key's JSON the signatures others made of it
// that the viewer may see: the owner's, and the viewer's own (a user's
// signatures of other users' keys are theirs alone).
func withSignatures(raw json.RawMessage, owner, viewer string, sigs map[string]map[string]string) json.RawMessage {
	visible := map[string]map[string]string{}
	for signer, s := range sigs {
		if signer == owner || signer == viewer {
			visible[signer] = s
		}
	}
	if len(visible) == 0 {
		return raw
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(raw, &obj) != nil {
		return raw
	}
	all := map[string]map[string]string{}
	if obj["signatures"] != nil {
		json.Unmarshal(obj["signatures"], &all)
	}
	for signer, s := range visible {
		if all[signer] == nil {
			all[signer] = map[string]string{}
		}
		for k, v := range s {
			all[signer][k] = v
		}
	}
	b, err := json.Marshal(all)
	if err != nil {
		return raw
	}
	obj["signatures"] = b
	out, err := json.Marshal(obj)
	if err != nil {
		return raw
	}
	return out
}

// crossSigningPub is the public key of a cross-signing key's JSON.
func crossSigningPub(raw json.RawMessage) string {
	var k struct {
		Keys map[string]string `json:"keys"`
	}
	if json.Unmarshal(raw, &k) != nil {
		return ""
	}
	for _, pub := range k.Keys {
		return pub
	}
	return ""
}

// QueryKeys implements webui.Keys: this node's users from the store,
// other nodes' users from their node.
func (api *API) QueryKeys(ctx context.Context, s *webui.Session, users map[string][]string) (*webui.KeysQueryResponse, error) {
	resp := &webui.KeysQueryResponse{
		Failures:        map[string]any{},
		DeviceKeys:      map[string]map[string]json.RawMessage{},
		MasterKeys:      map[string]json.RawMessage{},
		SelfSigningKeys: map[string]json.RawMessage{},
		UserSigningKeys: map[string]json.RawMessage{},
	}
	if err := api.store.View(func(t *store.Txn) error { return api.queryLocal(t, users, s.UserID, resp) }); err != nil {
		return nil, err
	}
	api.queryRemote(ctx, users, resp)
	return resp, nil
}

// queryLocal fills a query's answer for this node's users, as viewer
// sees them ("": another node).
func (api *API) queryLocal(t *store.Txn, users map[string][]string, viewer string, resp *webui.KeysQueryResponse) error {
	for user, want := range users {
		if !api.isLocal(user) {
			continue
		}
		devs, err := t.DeviceKeys(user)
		if err != nil {
			return err
		}
		out := map[string]json.RawMessage{}
		for dev, raw := range devs {
			if len(want) > 0 && !slices.Contains(want, dev) {
				continue
			}
			sigs, err := t.KeySignatures(user, dev)
			if err != nil {
				return err
			}
			out[dev] = withSignatures(raw, user, viewer, sigs)
		}
		resp.DeviceKeys[user] = out
		for usage, m := range map[string]map[string]json.RawMessage{"master": resp.MasterKeys, "self_signing": resp.SelfSigningKeys, "user_signing": resp.UserSigningKeys} {
			if usage == "user_signing" && user != viewer {
				continue // only its owner sees a user-signing key
			}
			raw, err := t.CrossSigningKey(user, usage)
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			sigs, err := t.KeySignatures(user, crossSigningPub(raw))
			if err != nil {
				return err
			}
			m[user] = withSignatures(raw, user, viewer, sigs)
		}
	}
	return nil
}

// ClaimKeys implements webui.Keys. This node's users' keys are taken
// in one update: the store's single writer gives each one-time key out
// once, however many claims run at the same time.
func (api *API) ClaimKeys(ctx context.Context, s *webui.Session, want map[string]map[string]string) (*webui.KeysClaimResponse, error) {
	resp := &webui.KeysClaimResponse{Failures: map[string]any{}}
	err := api.store.Update(func(t *store.Txn) error {
		local := map[string]map[string]string{}
		for u, devs := range want {
			if api.isLocal(u) {
				local[u] = devs
			}
		}
		var err error
		resp.OneTimeKeys, err = claimLocal(t, local)
		return err
	})
	if err != nil {
		return nil, err
	}
	api.claimRemote(ctx, want, resp)
	return resp, nil
}

// claimLocal takes one key per device and algorithm asked: a one-time
// key, or the fallback key when none is left (kept, marked used).
func claimLocal(t *store.Txn, want map[string]map[string]string) (map[string]map[string]map[string]json.RawMessage, error) {
	out := map[string]map[string]map[string]json.RawMessage{}
	for user, devs := range want {
		for dev, alg := range devs {
			id, key, err := t.TakeOneTimeKey(user, dev, alg)
			if errors.Is(err, store.ErrNotFound) {
				fb, err := t.FallbackKeys(user, dev)
				if err != nil {
					return nil, err
				}
				k, ok := fb[alg]
				if !ok {
					continue
				}
				id, key = k.KeyID, k.Key
				if !k.Used {
					k.Used = true
					fb[alg] = k
					if err := t.PutFallbackKeys(user, dev, fb); err != nil {
						return nil, err
					}
				}
			} else if err != nil {
				return nil, err
			}
			if out[user] == nil {
				out[user] = map[string]map[string]json.RawMessage{}
			}
			out[user][dev] = map[string]json.RawMessage{alg + ":" + id: key}
		}
	}
	return out, nil
}

// KeyChanges implements webui.Keys. A user's last change is kept, not
// each one: a user whose keys changed after from is listed even if the
// change came after to as well, which costs the client one query more.
func (api *API) KeyChanges(ctx context.Context, s *webui.Session, from, to string) (*webui.KeyChanges, error) {
	f, ok := parseToken(from)
	if !ok {
		return nil, errs.Invalidf("invalid from token %q", from)
	}
	tp, ok := parseToken(to)
	if !ok {
		return nil, errs.Invalidf("invalid to token %q", to)
	}
	resp := &webui.KeyChanges{Changed: []string{}, Left: []string{}}
	err := api.store.View(func(t *store.Txn) error {
		var err error
		if resp.Changed, err = api.changedSince(t, s.UserID, f); err != nil {
			return err
		}
		resp.Left, err = api.leftBetween(t, s.UserID, f, min(tp, api.store.Pos()))
		return err
	})
	return resp, err
}

// leftBetween lists the users who shared a joined room with user at
// stream position from and share none at to: a room's members at a
// position are those of the state after its newest timeline event up
// to it. A room with nothing after from has the same members at both
// and is read once.
func (api *API) leftBetween(t *store.Txn, user string, from, to uint64) ([]string, error) {
	left := []string{}
	if to <= from {
		return left, nil
	}
	before, after := map[string]bool{}, map[string]bool{}
	for _, r := range api.dag.Rooms() {
		atTo := r.State()
		if r.Pos() > to {
			var err error
			if atTo, err = api.stateAtPos(t, r.ID, to); err != nil {
				return nil, err
			}
		}
		if members := api.joinedMembers(atTo); slices.Contains(members, user) {
			for _, m := range members {
				after[m] = true
			}
		}
		if r.Pos() <= from {
			continue
		}
		atFrom, err := api.stateAtPos(t, r.ID, from)
		if err != nil {
			return nil, err
		}
		if members := api.joinedMembers(atFrom); slices.Contains(members, user) {
			for _, m := range members {
				before[m] = true
			}
		}
	}
	for u := range before {
		if !after[u] && u != user {
			left = append(left, u)
		}
	}
	slices.Sort(left)
	return left, nil
}

// stateAtPos is a room's state at a stream position: after the newest
// event of its live timeline up to it that has state here (within a
// bounded look back); nil if there is none (the room came later).
func (api *API) stateAtPos(t *store.Txn, roomID string, pos uint64) (store.StateMap, error) {
	entries, err := t.Timeline(roomID, store.LiveBase, store.LiveBase+pos, false, 64)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		rec, err := t.Event(e.EventID)
		if err != nil || rec.StateAfter == "" {
			continue
		}
		return api.dag.Snapshot(rec.StateAfter)
	}
	return nil, nil
}

// changedSince lists the users sharing a room with user (user included)
// whose keys changed after since.
func (api *API) changedSince(t *store.Txn, user string, since uint64) ([]string, error) {
	out := []string{}
	for u := range api.sharedWith(user) {
		p, err := t.KeysChanged(u)
		if err != nil {
			return nil, err
		}
		if p > since {
			out = append(out, u)
		}
	}
	slices.Sort(out)
	return out, nil
}

// CrossSigningKeys implements webui.Keys.
func (api *API) CrossSigningKeys(s *webui.Session) (map[string]json.RawMessage, error) {
	out := map[string]json.RawMessage{}
	err := api.store.View(func(t *store.Txn) error {
		for _, usage := range []string{"master", "self_signing", "user_signing"} {
			raw, err := t.CrossSigningKey(s.UserID, usage)
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			out[usage] = raw
		}
		return nil
	})
	return out, err
}

// UploadCrossSigning implements webui.Keys. A self-signing or
// user-signing key needs a master key, given with it or stored.
func (api *API) UploadCrossSigning(ctx context.Context, s *webui.Session, keys map[string]json.RawMessage) error {
	err := api.store.Update(func(t *store.Txn) error {
		master, ok := keys["master"]
		if !ok {
			var err error
			master, err = t.CrossSigningKey(s.UserID, "master")
			if errors.Is(err, store.ErrNotFound) {
				return errs.Invalidf("upload a master key first, or with the others")
			}
			if err != nil {
				return err
			}
		}
		mpub := crossSigningPub(master)
		for usage, raw := range keys {
			if usage != "master" && !signedBy(raw, s.UserID, "ed25519:"+mpub) {
				return &webui.Error{Status: http.StatusBadRequest, Code: "M_INVALID_SIGNATURE", Message: "the " + usage + " key carries no signature by the master key"}
			}
			if err := t.PutCrossSigningKey(s.UserID, usage, raw); err != nil {
				return err
			}
		}
		if _, err := t.MarkKeysChanged(s.UserID); err != nil {
			return err
		}
		_, err := api.announceKeys(t, s.UserID)
		return err
	})
	if err != nil {
		return err
	}
	api.notify.wake(api.sharingUsers(s.UserID)...)
	api.peers.KickOutbox()
	return nil
}

// signedBy reports whether a key's JSON carries a valid signature by
// signer's ed25519 key keyID ("ed25519:" and the public key).
func signedBy(raw json.RawMessage, signer, keyID string) bool {
	var k struct {
		Signatures map[string]map[string]string `json:"signatures"`
	}
	if json.Unmarshal(raw, &k) != nil {
		return false
	}
	return verifySig(raw, strings.TrimPrefix(keyID, "ed25519:"), k.Signatures[signer][keyID])
}

// verifySig checks a Matrix signature of a JSON object: ed25519 over its
// canonical form without signatures and unsigned; keys and signatures in
// unpadded base64.
func verifySig(obj json.RawMessage, pub, sig string) bool {
	pk, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(pub, "="))
	if err != nil || len(pk) != ed25519.PublicKeySize {
		return false
	}
	sg, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(sig, "="))
	if err != nil || len(sg) != ed25519.SignatureSize {
		return false
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(obj, &m) != nil {
		return false
	}
	delete(m, "signatures")
	delete(m, "unsigned")
	b, err := json.Marshal(m)
	if err != nil {
		return false
	}
	canon, err := rooms.CanonicalJSON(b)
	return err == nil && ed25519.Verify(pk, canon, sg)
}

// UploadSignatures implements webui.Keys: the user signs their own
// devices (with the self-signing key) and master key (with a device),
// and other users' master keys (with the user-signing key). Each
// signature is checked against the signing key before it is kept.
func (api *API) UploadSignatures(ctx context.Context, s *webui.Session, signed map[string]map[string]json.RawMessage) (map[string]map[string]any, error) {
	var failures map[string]map[string]any
	changed := map[string]bool{}
	err := api.store.Update(func(t *store.Txn) error {
		failures = map[string]map[string]any{}
		clear(changed)
		fail := func(user, keyID, code, msg string) {
			if failures[user] == nil {
				failures[user] = map[string]any{}
			}
			failures[user][keyID] = map[string]string{"errcode": code, "error": msg}
		}
		own := map[string]string{}
		for _, usage := range []string{"master", "self_signing", "user_signing"} {
			raw, err := t.CrossSigningKey(s.UserID, usage)
			if err == nil {
				own[usage] = crossSigningPub(raw)
			} else if !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
		for user, keys := range signed {
			for keyID, raw := range keys {
				var obj struct {
					UserID     string                       `json:"user_id"`
					Keys       map[string]string            `json:"keys"`
					Signatures map[string]map[string]string `json:"signatures"`
				}
				if json.Unmarshal(raw, &obj) != nil || obj.UserID != user {
					fail(user, keyID, "M_INVALID_PARAM", "the signed object is not a key of "+user)
					continue
				}
				mine := obj.Signatures[s.UserID]
				if len(mine) == 0 {
					fail(user, keyID, "M_INVALID_SIGNATURE", "no signature by "+s.UserID)
					continue
				}
				if _, local := api.peers.LocalUser(user); !local {
					fail(user, keyID, "M_NOT_FOUND", "keys of users of other nodes cannot be signed here yet")
					continue
				}
				// The key signed must be the one stored, and signed by
				// the key the spec names for it.
				var stored json.RawMessage
				var signer string
				switch {
				case user == s.UserID && keyID == own["master"]:
					stored, _ = t.CrossSigningKey(user, "master")
					signer = "device"
				case user == s.UserID:
					stored, _ = t.DeviceKey(user, keyID)
					signer = "ed25519:" + own["self_signing"]
				default:
					if raw, err := t.CrossSigningKey(user, "master"); err == nil && crossSigningPub(raw) == keyID {
						stored = raw
					}
					signer = "ed25519:" + own["user_signing"]
				}
				if stored == nil {
					fail(user, keyID, "M_NOT_FOUND", "no such key of "+user)
					continue
				}
				if !sameKeys(stored, obj.Keys) {
					fail(user, keyID, "M_INVALID_PARAM", "the signed key is not the one published")
					continue
				}
				sigs := map[string]string{}
				for id, sig := range mine {
					pub := strings.TrimPrefix(id, "ed25519:")
					switch {
					case signer == "device" && strings.HasPrefix(id, "ed25519:"):
						// The master key signed by one of the user's devices.
						var dk struct {
							Keys map[string]string `json:"keys"`
						}
						dev, _ := t.DeviceKey(s.UserID, pub)
						if dev == nil || json.Unmarshal(dev, &dk) != nil {
							continue
						}
						pub = dk.Keys[id]
					case id != signer || signer == "ed25519:":
						continue
					}
					if verifySig(raw, pub, sig) {
						sigs[id] = sig
					}
				}
				if len(sigs) == 0 {
					fail(user, keyID, "M_INVALID_SIGNATURE", "no valid signature by the key that signs this one")
					continue
				}
				if err := t.PutKeySignatures(user, keyID, s.UserID, sigs); err != nil {
					return err
				}
				changed[s.UserID] = true
				if user == s.UserID {
					changed[user] = true
				}
			}
		}
		for u := range changed {
			if _, err := t.MarkKeysChanged(u); err != nil {
				return err
			}
			if _, err := api.announceKeys(t, u); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for u := range changed {
		api.notify.wake(api.sharingUsers(u)...)
	}
	if len(changed) > 0 {
		api.peers.KickOutbox()
	}
	return failures, nil
}

// sameKeys reports whether a stored key's JSON has exactly these keys.
func sameKeys(stored json.RawMessage, keys map[string]string) bool {
	var k struct {
		Keys map[string]string `json:"keys"`
	}
	if json.Unmarshal(stored, &k) != nil || len(k.Keys) != len(keys) {
		return false
	}
	for id, v := range keys {
		if k.Keys[id] != v {
			return false
		}
	}
	return true
}
