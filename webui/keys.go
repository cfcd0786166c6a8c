package webui

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/parley-p2p/parley/errs"
)

// Keys serves what clients that run their own Olm/Megolm (Element,
// FluffyChat) need of a homeserver: device and one-time keys,
// cross-signing keys and signatures, to-device messages and room key
// backups. It sits on top of the node's own encryption and knows nothing
// of it. The handlers check the shape of what clients send; Keys keeps
// it and decides who sees what.
type Keys interface {
	// UploadKeys stores the device's keys and answers its one-time key
	// counts by algorithm.
	UploadKeys(ctx context.Context, s *Session, up KeysUpload) (map[string]int, error)
	// QueryKeys answers the published keys of users (each with the
	// devices asked, none: all).
	QueryKeys(ctx context.Context, s *Session, users map[string][]string) (*KeysQueryResponse, error)
	// ClaimKeys takes one one-time key per device and algorithm asked.
	ClaimKeys(ctx context.Context, s *Session, want map[string]map[string]string) (*KeysClaimResponse, error)
	// KeyChanges lists the users sharing a room with the user whose keys
	// changed between two /sync tokens.
	KeyChanges(ctx context.Context, s *Session, from, to string) (*KeyChanges, error)
	// CrossSigningKeys are the user's own cross-signing keys by usage
	// ("master", "self_signing", "user_signing").
	CrossSigningKeys(s *Session) (map[string]json.RawMessage, error)
	// UploadCrossSigning replaces the user's cross-signing keys given.
	UploadCrossSigning(ctx context.Context, s *Session, keys map[string]json.RawMessage) error
	// UploadSignatures stores signatures of keys, by user and key ID; it
	// answers the failures by user and key ID.
	UploadSignatures(ctx context.Context, s *Session, signed map[string]map[string]json.RawMessage) (map[string]map[string]any, error)
	// SendToDevice queues messages for devices (device "*": all of the
	// user's); a transaction ID already used by the device does nothing.
	SendToDevice(ctx context.Context, s *Session, evType, txnID string, messages map[string]map[string]json.RawMessage) error

	CreateBackup(ctx context.Context, s *Session, algorithm string, authData json.RawMessage) (string, error)
	// Backup is a backup version's description; version "" is the latest.
	Backup(s *Session, version string) (*BackupVersion, error)
	UpdateBackup(ctx context.Context, s *Session, version, algorithm string, authData json.RawMessage) error
	DeleteBackup(ctx context.Context, s *Session, version string) error
	// PutBackupKeys stores keys in the latest backup version, keeping the
	// better key of a session already there.
	PutBackupKeys(ctx context.Context, s *Session, version string, keys map[string]map[string]BackupKey) (*BackupKeysResult, error)
	// BackupKeys reads keys by room and session: all, a room's (session
	// ""), or one session's.
	BackupKeys(s *Session, version, room, session string) (map[string]map[string]json.RawMessage, error)
	DeleteBackupKeys(ctx context.Context, s *Session, version, room, session string) (*BackupKeysResult, error)
}

// KeysUpload is the checked body of POST /keys/upload.
type KeysUpload struct {
	// DeviceKeys is nil when not given.
	DeviceKeys  json.RawMessage
	OneTimeKeys []OneTimeKey
	// FallbackKeys replace the device's fallback keys of their
	// algorithms.
	FallbackKeys []OneTimeKey
}

// OneTimeKey is a one-time or fallback key: "algorithm:id" and the key.
type OneTimeKey struct {
	Algorithm string
	KeyID     string
	Key       json.RawMessage
}

// KeysQueryResponse is the answer to POST /keys/query.
type KeysQueryResponse struct {
	Failures        map[string]any                        `json:"failures"`
	DeviceKeys      map[string]map[string]json.RawMessage `json:"device_keys"`
	MasterKeys      map[string]json.RawMessage            `json:"master_keys"`
	SelfSigningKeys map[string]json.RawMessage            `json:"self_signing_keys"`
	UserSigningKeys map[string]json.RawMessage            `json:"user_signing_keys"`
}

// KeysClaimResponse is the answer to POST /keys/claim.
type KeysClaimResponse struct {
	Failures    map[string]any                                   `json:"failures"`
	OneTimeKeys map[string]map[string]map[string]json.RawMessage `json:"one_time_keys"`
}

// KeyChanges is the answer to GET /keys/changes.
type KeyChanges struct {
	Changed []string `json:"changed"`
	Left    []string `json:"left"`
}

// BackupVersion describes a room key backup version.
type BackupVersion struct {
	Algorithm string          `json:"algorithm"`
	AuthData  json.RawMessage `json:"auth_data"`
	Count     int             `json:"count"`
	Etag      string          `json:"etag"`
	Version   string          `json:"version"`
}

// BackupKey is one session's key in a backup.
type BackupKey struct {
	FirstMessageIndex int64           `json:"first_message_index"`
	ForwardedCount    int64           `json:"forwarded_count"`
	IsVerified        bool            `json:"is_verified"`
	SessionData       json.RawMessage `json:"session_data"`
}

// BackupKeysResult is the answer to a change of a backup's keys.
type BackupKeysResult struct {
	Etag  string `json:"etag"`
	Count int    `json:"count"`
}

// Bounds on what a client sends.
const (
	maxKeyName       = 255      // a user, device, algorithm or key ID
	maxDeviceKeys    = 16 << 10 // bytes of a device's keys
	maxOneTimeKey    = 2 << 10  // bytes of one one-time key
	maxUsersAsked    = 1000     // users in one query or claim, targets of one sendToDevice
	maxDevicesAsked  = 10000    // devices in one query or claim
	maxToDeviceBytes = 64 << 10 // bytes of one to-device message's content
)

// okName checks a name that the store joins with NUL bytes.
func okName(what, s string) error {
	if s == "" || len(s) > maxKeyName || strings.ContainsRune(s, 0) {
		return errs.Invalidf("%s must be 1 to %d bytes, without NUL", what, maxKeyName)
	}
	return nil
}

// isObject reports whether raw is a JSON object.
func isObject(raw json.RawMessage) bool {
	t := bytes.TrimLeft(raw, " \t\r\n")
	return len(t) > 0 && t[0] == '{'
}

type deviceKeysShape struct {
	UserID     string                       `json:"user_id"`
	DeviceID   string                       `json:"device_id"`
	Algorithms []string                     `json:"algorithms"`
	Keys       map[string]string            `json:"keys"`
	Signatures map[string]map[string]string `json:"signatures"`
}

// checkDeviceKeys checks a device's keys are the session's, and complete.
func checkDeviceKeys(s *Session, raw json.RawMessage) error {
	if len(raw) > maxDeviceKeys {
		return errs.TooLargef("device_keys over %d bytes", maxDeviceKeys)
	}
	var dk deviceKeysShape
	if !isObject(raw) || json.Unmarshal(raw, &dk) != nil {
		return errBadJSON(errs.Invalidf("device_keys must be an object with user_id, device_id, algorithms, keys and signatures"))
	}
	if dk.UserID != s.UserID || dk.DeviceID != s.DeviceID {
		return errs.Invalidf("device_keys are for %s's device %s, not this session's (%s, %s)", dk.UserID, dk.DeviceID, s.UserID, s.DeviceID)
	}
	if len(dk.Algorithms) == 0 {
		return errs.Invalidf("device_keys.algorithms is empty")
	}
	for _, a := range dk.Algorithms {
		if err := okName("an algorithm", a); err != nil {
			return err
		}
	}
	if len(dk.Keys) == 0 {
		return errs.Invalidf("device_keys.keys is empty")
	}
	for id, k := range dk.Keys {
		alg, dev, ok := strings.Cut(id, ":")
		if !ok || alg == "" || dev != s.DeviceID || k == "" {
			return errs.Invalidf("device_keys.keys: %q is not <algorithm>:%s with a key", id, s.DeviceID)
		}
	}
	if len(dk.Signatures[s.UserID]) == 0 {
		return errs.Invalidf("device_keys carry no signature by %s", s.UserID)
	}
	return nil
}

// oneTimeKeys checks a map of "algorithm:id" to keys (a string, or an
// object with a key).
func oneTimeKeys(field string, m map[string]json.RawMessage) ([]OneTimeKey, error) {
	out := make([]OneTimeKey, 0, len(m))
	for id, raw := range m {
		alg, kid, ok := strings.Cut(id, ":")
		if !ok {
			return nil, errs.Invalidf("%s: %q is not <algorithm>:<key id>", field, id)
		}
		if err := okName(field+" algorithm", alg); err != nil {
			return nil, err
		}
		if err := okName(field+" key ID", kid); err != nil {
			return nil, err
		}
		if len(raw) > maxOneTimeKey {
			return nil, errs.TooLargef("%s: key %s over %d bytes", field, id, maxOneTimeKey)
		}
		var str string
		var obj struct {
			Key string `json:"key"`
		}
		if json.Unmarshal(raw, &str) != nil || str == "" {
			if !isObject(raw) || json.Unmarshal(raw, &obj) != nil || obj.Key == "" {
				return nil, errs.Invalidf("%s: key %s must be a string or an object with a key", field, id)
			}
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, raw); err != nil {
			return nil, errBadJSON(err)
		}
		out = append(out, OneTimeKey{Algorithm: alg, KeyID: kid, Key: compact.Bytes()})
	}
	return out, nil
}

func (s *Server) uploadKeys(w http.ResponseWriter, r *http.Request, sess *Session) error {
	var req struct {
		DeviceKeys   json.RawMessage            `json:"device_keys"`
		OneTimeKeys  map[string]json.RawMessage `json:"one_time_keys"`
		FallbackKeys map[string]json.RawMessage `json:"fallback_keys"`
	}
	if err := readJSON(r, &req); err != nil {
		return err
	}
	up, err := keysUpload(sess, req.DeviceKeys, req.OneTimeKeys, req.FallbackKeys)
	if err != nil {
		return err
	}
	counts, err := s.keys.UploadKeys(r.Context(), sess, up)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"one_time_key_counts": counts})
	return nil
}

func (s *Server) queryKeys(w http.ResponseWriter, r *http.Request, sess *Session) error {
	var req struct {
		DeviceKeys map[string][]string `json:"device_keys"`
	}
	if err := readJSON(r, &req); err != nil {
		return err
	}
	if req.DeviceKeys == nil {
		return errMissingParam("device_keys is required")
	}
	if err := checkAsked(len(req.DeviceKeys), func(yield func(string, int) bool) {
		for u, devs := range req.DeviceKeys {
			if !yield(u, len(devs)) {
				return
			}
		}
	}); err != nil {
		return err
	}
	resp, err := s.keys.QueryKeys(r.Context(), sess, req.DeviceKeys)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// checkAsked bounds the users and devices of a query or claim.
func checkAsked(users int, each func(yield func(string, int) bool)) error {
	if users > maxUsersAsked {
		return errs.TooLargef("at most %d users at once", maxUsersAsked)
	}
	devices := 0
	var err error
	each(func(u string, n int) bool {
		devices += n
		if !strings.HasPrefix(u, "@") || !strings.Contains(u, ":") || len(u) > maxKeyName || strings.ContainsRune(u, 0) {
			err = errs.Invalidf("%q is not a user ID", u)
		}
		return err == nil
	})
	if err == nil && devices > maxDevicesAsked {
		err = errs.TooLargef("at most %d devices at once", maxDevicesAsked)
	}
	return err
}

func (s *Server) claimKeys(w http.ResponseWriter, r *http.Request, sess *Session) error {
	var req struct {
		OneTimeKeys map[string]map[string]string `json:"one_time_keys"`
	}
	if err := readJSON(r, &req); err != nil {
		return err
	}
	if req.OneTimeKeys == nil {
		return errMissingParam("one_time_keys is required")
	}
	if err := checkAsked(len(req.OneTimeKeys), func(yield func(string, int) bool) {
		for u, devs := range req.OneTimeKeys {
			if !yield(u, len(devs)) {
				return
			}
		}
	}); err != nil {
		return err
	}
	for _, devs := range req.OneTimeKeys {
		for dev, alg := range devs {
			if err := okName("a device ID", dev); err != nil {
				return err
			}
			if err := okName("an algorithm", alg); err != nil {
				return err
			}
		}
	}
	resp, err := s.keys.ClaimKeys(r.Context(), sess, req.OneTimeKeys)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

func (s *Server) keyChanges(w http.ResponseWriter, r *http.Request, sess *Session) error {
	q := r.URL.Query()
	from, to := q.Get("from"), q.Get("to")
	if from == "" || to == "" {
		return errMissingParam("from and to are required")
	}
	resp, err := s.keys.KeyChanges(r.Context(), sess, from, to)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// crossSigningUsages maps a body field of /keys/device_signing/upload to
// its usage.
var crossSigningUsages = map[string]string{
	"master_key": "master", "self_signing_key": "self_signing", "user_signing_key": "user_signing",
}

type crossSigningShape struct {
	UserID string            `json:"user_id"`
	Usage  []string          `json:"usage"`
	Keys   map[string]string `json:"keys"`
}

func (s *Server) uploadCrossSigning(w http.ResponseWriter, r *http.Request, sess *Session) error {
	var req map[string]json.RawMessage
	if err := readJSON(r, &req); err != nil {
		return err
	}
	keys := map[string]json.RawMessage{}
	for field, usage := range crossSigningUsages {
		raw, ok := req[field]
		if !ok || string(raw) == "null" {
			continue
		}
		if len(raw) > maxDeviceKeys {
			return errs.TooLargef("%s over %d bytes", field, maxDeviceKeys)
		}
		var k crossSigningShape
		if !isObject(raw) || json.Unmarshal(raw, &k) != nil {
			return errBadJSON(errs.Invalidf("%s must be an object with user_id, usage and keys", field))
		}
		if k.UserID == "" && len(k.Keys) == 0 {
			continue // an empty key stands for none (mautrix-go sends one)
		}
		if k.UserID != sess.UserID {
			return errs.Invalidf("%s is for %s, not %s", field, k.UserID, sess.UserID)
		}
		if len(k.Usage) == 0 || !strings.Contains(","+strings.Join(k.Usage, ",")+",", ","+usage+",") {
			return errs.Invalidf("%s.usage must include %q", field, usage)
		}
		if len(k.Keys) != 1 {
			return errs.Invalidf("%s.keys must hold exactly one key", field)
		}
		for id, pub := range k.Keys {
			if a, p, ok := strings.Cut(id, ":"); !ok || a != "ed25519" || p != pub {
				return errs.Invalidf("%s.keys: %q must be ed25519:<the key> with the key", field, id)
			}
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, raw); err != nil {
			return errBadJSON(err)
		}
		keys[usage] = compact.Bytes()
	}
	current, err := s.keys.CrossSigningKeys(sess)
	if err != nil {
		return err
	}
	// Spec: no user-interactive auth for the first master key, nor for a
	// request that only repeats the keys already stored.
	needAuth := false
	if _, has := current["master"]; has {
		for usage, k := range keys {
			if !bytes.Equal(current[usage], k) {
				needAuth = true
			}
		}
	}
	if needAuth {
		if s.devices == nil {
			return errs.Forbiddenf("replacing cross-signing keys needs the password, and this server has no user-interactive auth")
		}
		if err := s.uia(r, sess, "replace cross-signing keys", req["auth"]); err != nil {
			return err
		}
	}
	if len(keys) > 0 {
		if err := s.keys.UploadCrossSigning(r.Context(), sess, keys); err != nil {
			return err
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{})
	return nil
}

func (s *Server) uploadSignatures(w http.ResponseWriter, r *http.Request, sess *Session) error {
	var req map[string]map[string]json.RawMessage
	if err := readJSON(r, &req); err != nil {
		return err
	}
	n := 0
	for user, keys := range req {
		if err := checkAsked(1, func(yield func(string, int) bool) { yield(user, 0) }); err != nil {
			return err
		}
		for id, raw := range keys {
			n++
			if err := okName("a key ID", id); err != nil {
				return err
			}
			if len(raw) > maxDeviceKeys || !isObject(raw) {
				return errs.Invalidf("the signed key %s of %s must be an object of at most %d bytes", id, user, maxDeviceKeys)
			}
		}
	}
	if n > maxDevicesAsked {
		return errs.TooLargef("at most %d keys at once", maxDevicesAsked)
	}
	failures, err := s.keys.UploadSignatures(r.Context(), sess, req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"failures": failures})
	return nil
}

func (s *Server) sendToDevice(w http.ResponseWriter, r *http.Request, sess *Session) error {
	evType, txn := r.PathValue("type"), r.PathValue("txnId")
	if err := okName("the event type", evType); err != nil {
		return err
	}
	if err := okName("the transaction ID", txn); err != nil {
		return err
	}
	var req struct {
		Messages map[string]map[string]json.RawMessage `json:"messages"`
	}
	if err := readJSON(r, &req); err != nil {
		return err
	}
	if req.Messages == nil {
		return errMissingParam("messages is required")
	}
	targets := 0
	for user, devs := range req.Messages {
		if err := checkAsked(1, func(yield func(string, int) bool) { yield(user, 0) }); err != nil {
			return err
		}
		for dev, content := range devs {
			targets++
			if err := okName("a device ID", dev); err != nil {
				return err
			}
			if !isObject(content) {
				return errs.Invalidf("the message for %s's device %s must be an object", user, dev)
			}
			if len(content) > maxToDeviceBytes {
				return errs.TooLargef("the message for %s's device %s is over %d bytes", user, dev, maxToDeviceBytes)
			}
		}
	}
	if targets > maxUsersAsked {
		return errs.TooLargef("at most %d devices at once", maxUsersAsked)
	}
	if err := s.keys.SendToDevice(r.Context(), sess, evType, txn, req.Messages); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{})
	return nil
}

type backupBody struct {
	Algorithm string          `json:"algorithm"`
	AuthData  json.RawMessage `json:"auth_data"`
	Version   string          `json:"version"`
}

func readBackupBody(r *http.Request) (*backupBody, error) {
	var b backupBody
	if err := readJSON(r, &b); err != nil {
		return nil, err
	}
	if b.Algorithm == "" {
		return nil, errMissingParam("algorithm is required")
	}
	if err := okName("the algorithm", b.Algorithm); err != nil {
		return nil, err
	}
	if !isObject(b.AuthData) {
		return nil, errMissingParam("auth_data must be an object")
	}
	if len(b.AuthData) > maxDeviceKeys {
		return nil, errs.TooLargef("auth_data over %d bytes", maxDeviceKeys)
	}
	return &b, nil
}

func (s *Server) createBackup(w http.ResponseWriter, r *http.Request, sess *Session) error {
	b, err := readBackupBody(r)
	if err != nil {
		return err
	}
	v, err := s.keys.CreateBackup(r.Context(), sess, b.Algorithm, b.AuthData)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{"version": v})
	return nil
}

func (s *Server) getBackup(w http.ResponseWriter, r *http.Request, sess *Session) error {
	b, err := s.keys.Backup(sess, r.PathValue("version"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, b)
	return nil
}

func (s *Server) updateBackup(w http.ResponseWriter, r *http.Request, sess *Session) error {
	b, err := readBackupBody(r)
	if err != nil {
		return err
	}
	v := r.PathValue("version")
	if b.Version != "" && b.Version != v {
		return errs.Invalidf("the body's version %q is not the path's %q", b.Version, v)
	}
	if err := s.keys.UpdateBackup(r.Context(), sess, v, b.Algorithm, b.AuthData); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{})
	return nil
}

func (s *Server) deleteBackup(w http.ResponseWriter, r *http.Request, sess *Session) error {
	if err := s.keys.DeleteBackup(r.Context(), sess, r.PathValue("version")); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{})
	return nil
}

// backupPath reads the version parameter and the room and session of a
// /room_keys/keys path.
func backupPath(r *http.Request) (version, room, session string, err error) {
	version = r.URL.Query().Get("version")
	if version == "" {
		return "", "", "", errMissingParam("version is required")
	}
	room, session = r.PathValue("roomId"), r.PathValue("sessionId")
	for _, n := range []string{version, room, session} {
		if n != "" {
			if err := okName("a backup version, room or session ID", n); err != nil {
				return "", "", "", err
			}
		}
	}
	return version, room, session, nil
}

func checkBackupKey(k BackupKey) error {
	if !isObject(k.SessionData) {
		return errs.Invalidf("session_data must be an object")
	}
	if len(k.SessionData) > maxDeviceKeys {
		return errs.TooLargef("session_data over %d bytes", maxDeviceKeys)
	}
	if k.FirstMessageIndex < 0 || k.ForwardedCount < 0 {
		return errs.Invalidf("first_message_index and forwarded_count must not be negative")
	}
	return nil
}

func (s *Server) putBackupKeys(w http.ResponseWriter, r *http.Request, sess *Session) error {
	version, room, session, err := backupPath(r)
	if err != nil {
		return err
	}
	keys := map[string]map[string]BackupKey{}
	switch {
	case session != "":
		var k BackupKey
		if err := readJSON(r, &k); err != nil {
			return err
		}
		keys[room] = map[string]BackupKey{session: k}
	case room != "":
		var body struct {
			Sessions map[string]BackupKey `json:"sessions"`
		}
		if err := readJSON(r, &body); err != nil {
			return err
		}
		keys[room] = body.Sessions
	default:
		var body struct {
			Rooms map[string]struct {
				Sessions map[string]BackupKey `json:"sessions"`
			} `json:"rooms"`
		}
		if err := readJSON(r, &body); err != nil {
			return err
		}
		for id, rk := range body.Rooms {
			keys[id] = rk.Sessions
		}
	}
	for rid, sessions := range keys {
		if err := okName("a room ID", rid); err != nil {
			return err
		}
		for sid, k := range sessions {
			if err := okName("a session ID", sid); err != nil {
				return err
			}
			if err := checkBackupKey(k); err != nil {
				return err
			}
		}
	}
	res, err := s.keys.PutBackupKeys(r.Context(), sess, version, keys)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

func (s *Server) getBackupKeys(w http.ResponseWriter, r *http.Request, sess *Session) error {
	version, room, session, err := backupPath(r)
	if err != nil {
		return err
	}
	keys, err := s.keys.BackupKeys(sess, version, room, session)
	if err != nil {
		return err
	}
	switch {
	case session != "":
		k, ok := keys[room][session]
		if !ok {
			return errs.NotFoundf("no key of session %s in room %s in backup %s", session, room, version)
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(k)
	case room != "":
		sessions := keys[room]
		if sessions == nil {
			sessions = map[string]json.RawMessage{}
		}
		writeJSON(w, http.StatusOK, map[string]any{"sessions": sessions})
	default:
		rooms := map[string]any{}
		for id, sessions := range keys {
			rooms[id] = map[string]any{"sessions": sessions}
		}
		writeJSON(w, http.StatusOK, map[string]any{"rooms": rooms})
	}
	return nil
}

func (s *Server) deleteBackupKeys(w http.ResponseWriter, r *http.Request, sess *Session) error {
	version, room, session, err := backupPath(r)
	if err != nil {
		return err
	}
	res, err := s.keys.DeleteBackupKeys(r.Context(), sess, version, room, session)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

// keysUpload checks an upload's device keys (they must be the device's
// own), one-time keys and fallback keys, and returns them as stored.
func keysUpload(dev *Session, deviceKeys json.RawMessage, oneTime, fallback map[string]json.RawMessage) (KeysUpload, error) {
	var up KeysUpload
	if len(deviceKeys) > 0 && string(deviceKeys) != "null" {
		if err := checkDeviceKeys(dev, deviceKeys); err != nil {
			return up, err
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, deviceKeys); err != nil {
			return up, errBadJSON(err)
		}
		up.DeviceKeys = compact.Bytes()
	}
	var err error
	if up.OneTimeKeys, err = oneTimeKeys("one_time_keys", oneTime); err != nil {
		return up, err
	}
	if up.FallbackKeys, err = oneTimeKeys("fallback_keys", fallback); err != nil {
		return up, err
	}
	return up, nil
}
