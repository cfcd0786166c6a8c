package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// The keys of clients' own end-to-end encryption (Olm/Megolm run by
// Element and the like, on top of the node's): what each device publishes,
// the one-time keys others claim, cross-signing keys and signatures,
// messages queued for a device, and key backups. The store keeps them as
// the client sent them (JSON); the client API decides what is valid.
//
// Every name below is a user ID, device ID, algorithm or key ID that the
// client API has checked holds no NUL byte, which separates them.
func keyDeviceKeys(user, dev string) []byte { return []byte("ckd/" + user + "\x00" + dev) }
func prefixDeviceKeys(user string) []byte   { return []byte("ckd/" + user + "\x00") }
func keyKeysChanged(user string) []byte     { return []byte("ckc/" + user) }
func keyOTK(user, dev, alg, id string) []byte {
	return []byte("cko/" + user + "\x00" + dev + "\x00" + alg + "\x00" + id)
}
func prefixOTKAlg(user, dev, alg string) []byte {
	return []byte("cko/" + user + "\x00" + dev + "\x00" + alg + "\x00")
}
func keyOTKCounts(user, dev string) []byte { return []byte("ckn/" + user + "\x00" + dev) }
func keyFallback(user, dev string) []byte  { return []byte("ckf/" + user + "\x00" + dev) }
func keyCrossSigning(user, usage string) []byte {
	return []byte("ckx/" + user + "\x00" + usage)
}
func prefixKeySigs(target, keyID string) []byte {
	return []byte("cks/" + target + "\x00" + keyID + "\x00")
}
func prefixToDevice(user, dev string) []byte { return []byte("ckt/" + user + "\x00" + dev + "\x00") }
func keyToDevice(user, dev string, pos uint64, n int) []byte {
	k := binary.BigEndian.AppendUint64(prefixToDevice(user, dev), pos)
	return binary.BigEndian.AppendUint32(k, uint32(n))
}
func keyToDeviceQueue(user, dev string) []byte { return []byte("ckq/" + user + "\x00" + dev) }
func keyToDeviceTxn(user, dev, txn string) []byte {
	return []byte("cktx/" + user + "\x00" + dev + "\x00" + txn)
}
func keyBackupLatest(user string) []byte { return []byte("ckbl/" + user) }
func keyBackup(user, version string) []byte {
	return []byte("ckbv/" + user + "\x00" + version)
}
func prefixBackups(user string) []byte { return []byte("ckbv/" + user + "\x00") }
func prefixBackupKeys(user, version string) []byte {
	return []byte("ckbk/" + user + "\x00" + version + "\x00")
}
func keyBackupKey(user, version, room, session string) []byte {
	return []byte("ckbk/" + user + "\x00" + version + "\x00" + room + "\x00" + session)
}

// DeviceKeys are the keys each device of a user published, by device ID.
func (t *Txn) DeviceKeys(user string) (map[string]json.RawMessage, error) {
	out := map[string]json.RawMessage{}
	prefix := prefixDeviceKeys(user)
	err := t.scan(prefix, nil, false, func(k, v []byte) (bool, error) {
		out[string(k[len(prefix):])] = v
		return true, nil
	})
	return out, err
}

// DeviceKey is one device's published keys.
func (t *Txn) DeviceKey(user, dev string) (json.RawMessage, error) {
	return get(t.txn, keyDeviceKeys(user, dev))
}

// PutDeviceKeys stores a device's published keys.
func (t *Txn) PutDeviceKeys(user, dev string, keys json.RawMessage) error {
	return t.txn.Set(keyDeviceKeys(user, dev), keys)
}

// KeysChanged is the stream position of the last change to a user's
// published keys (device or cross-signing); 0 if they never had any.
func (t *Txn) KeysChanged(user string) (uint64, error) {
	v, err := get(t.txn, keyKeysChanged(user))
	if errors.Is(err, ErrNotFound) {
		return 0, nil
	}
	if err != nil || len(v) != 8 {
		return 0, errors.Join(err, errors.New("store: corrupt key change position"))
	}
	return binary.BigEndian.Uint64(v), nil
}

// keyLastKeysChange holds the position of the last change of anyone's
// keys: a /sync with a later token has no device list to work out.
var keyLastKeysChange = []byte("ckcl")

// MarkKeysChanged records that a user's published keys change at a new
// stream position, which it returns. Only valid inside Update.
func (t *Txn) MarkKeysChanged(user string) (uint64, error) {
	pos := t.NextPos()
	b := binary.BigEndian.AppendUint64(nil, pos)
	if err := t.txn.Set(keyLastKeysChange, b); err != nil {
		return 0, err
	}
	return pos, t.txn.Set(keyKeysChanged(user), b)
}

// LastKeysChange is the position of the last change of anyone's keys.
func (t *Txn) LastKeysChange() (uint64, error) {
	v, err := get(t.txn, keyLastKeysChange)
	if errors.Is(err, ErrNotFound) {
		return 0, nil
	}
	if err != nil || len(v) != 8 {
		return 0, errors.Join(err, errors.New("store: corrupt key change position"))
	}
	return binary.BigEndian.Uint64(v), nil
}

// DeleteDeviceKeys forgets what a device published and what waits for
// it: its keys, one-time and fallback keys, and its to-device queue (for
// a device that is logged out or deleted).
func (t *Txn) DeleteDeviceKeys(user, dev string) error {
	for _, k := range [][]byte{keyDeviceKeys(user, dev), keyOTKCounts(user, dev), keyFallback(user, dev), keyToDeviceQueue(user, dev)} {
		if err := t.txn.Delete(k); err != nil {
			return err
		}
	}
	for _, prefix := range [][]byte{[]byte("cko/" + user + "\x00" + dev + "\x00"), prefixToDevice(user, dev)} {
		if err := t.deletePrefix(prefix); err != nil {
			return err
		}
	}
	return nil
}

// OneTimeKeyCounts counts a device's unclaimed one-time keys by algorithm.
func (t *Txn) OneTimeKeyCounts(user, dev string) (map[string]int, error) {
	counts := map[string]int{}
	err := t.getJSON(keyOTKCounts(user, dev), &counts)
	if errors.Is(err, ErrNotFound) {
		err = nil
	}
	return counts, err
}

func (t *Txn) setOTKCounts(user, dev string, counts map[string]int) error {
	for alg, n := range counts {
		if n <= 0 {
			delete(counts, alg)
		}
	}
	if len(counts) == 0 {
		return t.txn.Delete(keyOTKCounts(user, dev))
	}
	return t.setJSON(keyOTKCounts(user, dev), counts)
}

// ErrKeyExists is returned for a one-time key whose ID is stored with a
// different key.
var ErrKeyExists = errors.New("store: a different key is stored under this ID")

// PutOneTimeKeys stores a device's one-time keys, by algorithm and key
// ID; the same key sent again is kept once. It returns the counts after.
func (t *Txn) PutOneTimeKeys(user, dev string, keys map[[2]string]json.RawMessage) (map[string]int, error) {
	counts, err := t.OneTimeKeyCounts(user, dev)
	if err != nil {
		return nil, err
	}
	for ak, key := range keys {
		k := keyOTK(user, dev, ak[0], ak[1])
		if old, err := get(t.txn, k); err == nil {
			if !bytes.Equal(old, key) {
				return nil, fmt.Errorf("%w: %s:%s", ErrKeyExists, ak[0], ak[1])
			}
			continue
		} else if !errors.Is(err, ErrNotFound) {
			return nil, err
		}
		if err := t.txn.Set(k, key); err != nil {
			return nil, err
		}
		counts[ak[0]]++
	}
	return counts, t.setOTKCounts(user, dev, counts)
}

// TakeOneTimeKey removes and returns one of a device's one-time keys of
// an algorithm, or ErrNotFound if it has none left. Only valid inside
// Update, whose single writer makes each key taken once.
func (t *Txn) TakeOneTimeKey(user, dev, alg string) (id string, key json.RawMessage, err error) {
	prefix := prefixOTKAlg(user, dev, alg)
	var k []byte
	err = t.scan(prefix, nil, false, func(kk, v []byte) (bool, error) {
		k, key = kk, v
		return false, nil
	})
	if err != nil {
		return "", nil, err
	}
	if k == nil {
		return "", nil, ErrNotFound
	}
	if err := t.txn.Delete(k); err != nil {
		return "", nil, err
	}
	counts, err := t.OneTimeKeyCounts(user, dev)
	if err != nil {
		return "", nil, err
	}
	counts[alg]--
	return string(k[len(prefix):]), key, t.setOTKCounts(user, dev, counts)
}

// FallbackKey is a device's fallback key for one algorithm: given out
// when its one-time keys run out, and kept.
type FallbackKey struct {
	KeyID string          `json:"id"`
	Key   json.RawMessage `json:"key"`
	Used  bool            `json:"used,omitempty"`
}

// FallbackKeys are a device's fallback keys by algorithm.
func (t *Txn) FallbackKeys(user, dev string) (map[string]FallbackKey, error) {
	out := map[string]FallbackKey{}
	err := t.getJSON(keyFallback(user, dev), &out)
	if errors.Is(err, ErrNotFound) {
		err = nil
	}
	return out, err
}

// PutFallbackKeys replaces a device's fallback keys.
func (t *Txn) PutFallbackKeys(user, dev string, keys map[string]FallbackKey) error {
	return t.setJSON(keyFallback(user, dev), keys)
}

// CrossSigningKey is a user's cross-signing key for a usage ("master",
// "self_signing", "user_signing").
func (t *Txn) CrossSigningKey(user, usage string) (json.RawMessage, error) {
	return get(t.txn, keyCrossSigning(user, usage))
}

// PutCrossSigningKey stores a user's cross-signing key for a usage.
func (t *Txn) PutCrossSigningKey(user, usage string, key json.RawMessage) error {
	return t.txn.Set(keyCrossSigning(user, usage), key)
}

// KeySignatures are the signatures other users made of a user's key
// (a device ID or a cross-signing public key), by signer: each a map of
// the signer's key ID to the signature.
func (t *Txn) KeySignatures(target, keyID string) (map[string]map[string]string, error) {
	out := map[string]map[string]string{}
	prefix := prefixKeySigs(target, keyID)
	err := t.scan(prefix, nil, false, func(k, v []byte) (bool, error) {
		var sigs map[string]string
		if err := json.Unmarshal(v, &sigs); err != nil {
			return false, err
		}
		out[string(k[len(prefix):])] = sigs
		return true, nil
	})
	return out, err
}

// PutKeySignatures records a signer's signatures of a user's key.
func (t *Txn) PutKeySignatures(target, keyID, signer string, sigs map[string]string) error {
	return t.setJSON(append(prefixKeySigs(target, keyID), signer...), sigs)
}

// ToDevice is a message queued for a device, with the stream position it
// was queued at.
type ToDevice struct {
	Pos     uint64
	Message json.RawMessage
}

// ToDeviceQueue is the size of a device's queue.
type ToDeviceQueue struct {
	Count int `json:"n"`
	Bytes int `json:"b"`
}

// ToDeviceQueueOf is the size of a device's queue of messages.
func (t *Txn) ToDeviceQueueOf(user, dev string) (ToDeviceQueue, error) {
	var q ToDeviceQueue
	err := t.getJSON(keyToDeviceQueue(user, dev), &q)
	if errors.Is(err, ErrNotFound) {
		err = nil
	}
	return q, err
}

// QueueToDevice queues a message for a device at a stream position; n
// orders the messages queued at the same position.
func (t *Txn) QueueToDevice(user, dev string, pos uint64, n int, msg json.RawMessage) error {
	q, err := t.ToDeviceQueueOf(user, dev)
	if err != nil {
		return err
	}
	q.Count++
	q.Bytes += len(msg)
	if err := t.txn.Set(keyToDevice(user, dev, pos, n), msg); err != nil {
		return err
	}
	return t.setJSON(keyToDeviceQueue(user, dev), q)
}

// ToDevices reads a device's queue, oldest first, up to limit messages.
func (t *Txn) ToDevices(user, dev string, limit int) ([]ToDevice, error) {
	var out []ToDevice
	prefix := prefixToDevice(user, dev)
	err := t.scan(prefix, nil, false, func(k, v []byte) (bool, error) {
		if len(k) != len(prefix)+12 {
			return true, nil
		}
		out = append(out, ToDevice{Pos: binary.BigEndian.Uint64(k[len(prefix):]), Message: v})
		return len(out) < limit, nil
	})
	return out, err
}

// AckToDevices removes a device's messages queued at positions up to
// upTo: the device has seen them.
func (t *Txn) AckToDevices(user, dev string, upTo uint64) error {
	prefix := prefixToDevice(user, dev)
	var keys [][]byte
	removed := ToDeviceQueue{}
	err := t.scan(prefix, nil, false, func(k, v []byte) (bool, error) {
		if len(k) == len(prefix)+12 && binary.BigEndian.Uint64(k[len(prefix):]) > upTo {
			return false, nil
		}
		keys = append(keys, k)
		removed.Count++
		removed.Bytes += len(v)
		return true, nil
	})
	if err != nil || len(keys) == 0 {
		return err
	}
	for _, k := range keys {
		if err := t.txn.Delete(k); err != nil {
			return err
		}
	}
	q, err := t.ToDeviceQueueOf(user, dev)
	if err != nil {
		return err
	}
	q.Count, q.Bytes = max(q.Count-removed.Count, 0), max(q.Bytes-removed.Bytes, 0)
	if q.Count == 0 {
		return t.txn.Delete(keyToDeviceQueue(user, dev))
	}
	return t.setJSON(keyToDeviceQueue(user, dev), q)
}

// ToDeviceTxnSeen reports whether a device already sent messages under a
// transaction ID (within the time the ID is kept).
func (t *Txn) ToDeviceTxnSeen(user, dev, txn string) (bool, error) {
	_, err := get(t.txn, keyToDeviceTxn(user, dev, txn))
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// PutToDeviceTxn records a device's transaction ID for ttl, after which
// Badger drops it: what a client can make the node keep is bounded by
// what it can send in that time.
func (t *Txn) PutToDeviceTxn(user, dev, txn string, ttl time.Duration) error {
	bt, err := t.txn.open()
	if err != nil {
		return err
	}
	return bt.SetEntry(badger.NewEntry(keyToDeviceTxn(user, dev, txn), []byte{1}).WithTTL(ttl))
}

// Backup is a version of a user's room key backup.
type Backup struct {
	Version   string          `json:"version"`
	Algorithm string          `json:"algorithm"`
	AuthData  json.RawMessage `json:"auth_data"`
	// Etag changes with every change of the backup's keys.
	Etag  uint64 `json:"etag"`
	Count int    `json:"count"`
}

// LatestBackupNumber is the number of the user's last backup version
// created (0: none ever).
func (t *Txn) LatestBackupNumber(user string) (uint64, error) {
	v, err := get(t.txn, keyBackupLatest(user))
	if errors.Is(err, ErrNotFound) {
		return 0, nil
	}
	if err != nil || len(v) != 8 {
		return 0, errors.Join(err, errors.New("store: corrupt backup number"))
	}
	return binary.BigEndian.Uint64(v), nil
}

// SetLatestBackupNumber records the number of the last version created.
func (t *Txn) SetLatestBackupNumber(user string, n uint64) error {
	return t.txn.Set(keyBackupLatest(user), binary.BigEndian.AppendUint64(nil, n))
}

// Backup loads a backup version.
func (t *Txn) Backup(user, version string) (*Backup, error) {
	var b Backup
	if err := t.getJSON(keyBackup(user, version), &b); err != nil {
		return nil, err
	}
	return &b, nil
}

// Backups lists a user's backup versions (in key order).
func (t *Txn) Backups(user string) ([]*Backup, error) {
	var out []*Backup
	err := t.scan(prefixBackups(user), nil, false, func(_, v []byte) (bool, error) {
		var b Backup
		if err := json.Unmarshal(v, &b); err != nil {
			return false, err
		}
		out = append(out, &b)
		return true, nil
	})
	return out, err
}

// PutBackup stores a backup version's record.
func (t *Txn) PutBackup(user string, b *Backup) error {
	return t.setJSON(keyBackup(user, b.Version), b)
}

// DeleteBackup removes a backup version and its keys.
func (t *Txn) DeleteBackup(user, version string) error {
	if _, err := t.DeleteBackupKeys(user, version, "", ""); err != nil {
		return err
	}
	return t.txn.Delete(keyBackup(user, version))
}

// BackupKey is one session's key in a backup.
func (t *Txn) BackupKey(user, version, room, session string) (json.RawMessage, error) {
	return get(t.txn, keyBackupKey(user, version, room, session))
}

// PutBackupKey stores one session's key in a backup.
func (t *Txn) PutBackupKey(user, version, room, session string, key json.RawMessage) error {
	return t.txn.Set(keyBackupKey(user, version, room, session), key)
}

// BackupKeys reads a backup's keys by room and session: all of them, a
// room's (session ""), or one.
func (t *Txn) BackupKeys(user, version, room, session string) (map[string]map[string]json.RawMessage, error) {
	out := map[string]map[string]json.RawMessage{}
	prefix := prefixBackupKeys(user, version)
	from := prefix
	if room != "" {
		from = append(append(append([]byte{}, prefix...), room...), 0)
		if session != "" {
			from = append(from, session...)
		}
	}
	err := t.scan(from, nil, false, func(k, v []byte) (bool, error) {
		r, s, ok := strings.Cut(string(k[len(prefix):]), "\x00")
		if !ok || session != "" && s != session {
			return true, nil
		}
		if out[r] == nil {
			out[r] = map[string]json.RawMessage{}
		}
		out[r][s] = v
		return true, nil
	})
	return out, err
}

// DeleteBackupKeys removes a backup's keys: all, a room's, or one; it
// returns how many it removed.
func (t *Txn) DeleteBackupKeys(user, version, room, session string) (int, error) {
	keys, err := t.BackupKeys(user, version, room, session)
	if err != nil {
		return 0, err
	}
	n := 0
	for r, sessions := range keys {
		for s := range sessions {
			if err := t.txn.Delete(keyBackupKey(user, version, r, s)); err != nil {
				return n, err
			}
			n++
		}
	}
	return n, nil
}

// SessionDevices lists the devices a user has an access token for.
func (t *Txn) SessionDevices(user string) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	err := t.scan([]byte("tok/"), nil, false, func(_, v []byte) (bool, error) {
		var s Session
		if json.Unmarshal(v, &s) == nil && s.UserID == user && !seen[s.DeviceID] {
			seen[s.DeviceID] = true
			out = append(out, s.DeviceID)
		}
		return true, nil
	})
	return out, err
}

// The outbox holds what this node owes other nodes about its users'
// keys (to-device messages, device list changes) until each is
// acknowledged: per server, in the order queued.
func prefixOutbox(server string) []byte   { return []byte("ckob/" + server + "\x00") }
func keyOutboxCount(server string) []byte { return []byte("ckoc/" + server) }
func keyReceived(server, id string) []byte {
	return []byte("ckri/" + server + "\x00" + id)
}

// OutboxItem is one request owed to a server.
type OutboxItem struct {
	Key    []byte          `json:"-"`
	Method string          `json:"m"`
	Body   json.RawMessage `json:"b"`
}

// OutboxLen is how many requests are owed to a server.
func (t *Txn) OutboxLen(server string) (int, error) {
	v, err := get(t.txn, keyOutboxCount(server))
	if errors.Is(err, ErrNotFound) {
		return 0, nil
	}
	if err != nil || len(v) != 8 {
		return 0, errors.Join(err, errors.New("store: corrupt outbox count"))
	}
	return int(binary.BigEndian.Uint64(v)), nil
}

func (t *Txn) setOutboxLen(server string, n int) error {
	if n <= 0 {
		return t.txn.Delete(keyOutboxCount(server))
	}
	return t.txn.Set(keyOutboxCount(server), binary.BigEndian.AppendUint64(nil, uint64(n)))
}

// PutOutbox queues a request for a server, after those queued before.
// Only valid inside Update.
func (t *Txn) PutOutbox(server string, item OutboxItem) error {
	n, err := t.OutboxLen(server)
	if err != nil {
		return err
	}
	k := binary.BigEndian.AppendUint64(prefixOutbox(server), t.NextPos())
	if err := t.setJSON(k, item); err != nil {
		return err
	}
	return t.setOutboxLen(server, n+1)
}

// Outbox reads up to limit requests owed to a server, oldest first.
func (t *Txn) Outbox(server string, limit int) ([]OutboxItem, error) {
	var out []OutboxItem
	err := t.scan(prefixOutbox(server), nil, false, func(k, v []byte) (bool, error) {
		var it OutboxItem
		if err := json.Unmarshal(v, &it); err != nil {
			return false, err
		}
		it.Key = k
		out = append(out, it)
		return len(out) < limit, nil
	})
	return out, err
}

// DeleteOutbox removes a request the server acknowledged.
func (t *Txn) DeleteOutbox(server string, key []byte) error {
	if _, err := get(t.txn, key); errors.Is(err, ErrNotFound) {
		return nil
	}
	n, err := t.OutboxLen(server)
	if err != nil {
		return err
	}
	if err := t.txn.Delete(key); err != nil {
		return err
	}
	return t.setOutboxLen(server, n-1)
}

// OutboxServers lists the servers owed requests.
func (t *Txn) OutboxServers() ([]string, error) {
	var out []string
	err := t.scan([]byte("ckoc/"), nil, false, func(k, _ []byte) (bool, error) {
		out = append(out, string(k[len("ckoc/"):]))
		return true, nil
	})
	return out, err
}

// Received reports whether a server's request with this ID was taken
// already (within the time IDs are kept).
func (t *Txn) Received(server, id string) (bool, error) {
	_, err := get(t.txn, keyReceived(server, id))
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// PutReceived records a server's request ID for ttl.
func (t *Txn) PutReceived(server, id string, ttl time.Duration) error {
	bt, err := t.txn.open()
	if err != nil {
		return err
	}
	return bt.SetEntry(badger.NewEntry(keyReceived(server, id), []byte{1}).WithTTL(ttl))
}
