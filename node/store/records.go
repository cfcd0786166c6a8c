package store

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	badger "github.com/dgraph-io/badger/v4"
)

var keyPos = []byte("meta/pos")

func keyEvent(id string) []byte      { return []byte("ev/" + id) }
func keyRoom(id string) []byte       { return []byte("rm/" + id) }
func keyAccount(local string) []byte { return []byte("acct/" + local) }
func keyToken(hash string) []byte    { return []byte("tok/" + hash) }
func keyProfile(user string) []byte  { return []byte("prof/" + user) }
func keyTxn(user, dev, txn string) []byte {
	return []byte("txn/" + user + "\x00" + dev + "\x00" + txn)
}
func keyFilter(user, id string) []byte  { return []byte("flt/" + user + "\x00" + id) }
func prefixFilter(user string) []byte   { return []byte("flt/" + user + "\x00") }
func prefixTimeline(room string) []byte { return []byte("tl/" + room + "\x00") }
func keyTimeline(room string, pos uint64) []byte {
	return binary.BigEndian.AppendUint64(prefixTimeline(room), pos)
}

// EventRecord is an event as the node stored it (eventcodec.go has its
// form on disk).
type EventRecord struct {
	Version string          `json:"v"`
	PDU     json.RawMessage `json:"pdu"`
	// Pos is the stream position at which the event entered the timeline;
	// 0 for events that are not shown (outliers, rejected, soft-failed)
	// and for history fetched later (backfill).
	Pos uint64 `json:"pos,omitempty"`
	// Order places backfilled history in the room's timeline, below every
	// live event (see LiveBase).
	Order uint64 `json:"ord,omitempty"`
	// Rejected is the reason the event failed auth; rejected events are
	// kept so they are not fetched and checked again, but never used.
	Rejected string `json:"rej,omitempty"`
	// SoftFailed is the reason the event failed against current state.
	SoftFailed string `json:"soft,omitempty"`
	// Outlier events were fetched as auth or state, not as part of the
	// timeline: they have no state of their own.
	Outlier bool `json:"out,omitempty"`
	// StateAfter names the snapshot of the room state after the event.
	StateAfter string `json:"sa,omitempty"`
	// StateBefore names the snapshot of the state before a state event
	// (for other events it equals StateAfter and is left empty).
	StateBefore string `json:"sb,omitempty"`
	// TxnID and TxnDevice are the client transaction that created the
	// event on this node.
	TxnID     string `json:"txn,omitempty"`
	TxnDevice string `json:"txnd,omitempty"`
	// Received is the local time (ms) the event was stored.
	Received int64 `json:"rcv,omitempty"`
	// Plain is what the node's clients are shown of an encrypted event
	// (the JSON of a dag.Plain, opaque here); empty when the event is not
	// encrypted or not decrypted yet. Only binary records hold it: the
	// JSON form predates it.
	Plain []byte `json:"-"`
}

// Event loads an event record. An ID the event filter has never seen is
// answered ErrNotFound without a read.
func (t *Txn) Event(id string) (*EventRecord, error) {
	if !t.mayHaveEvent(id) {
		return nil, ErrNotFound
	}
	key := keyEvent(id)
	b, err := get(t.txn, key)
	if err != nil {
		return nil, err
	}
	var r EventRecord
	if err := decodeEventRecord(b, &r); err != nil {
		return nil, fmt.Errorf("store: decode %q: %w", key, err)
	}
	return &r, nil
}

// MayHaveEvent is false when the event is certainly not stored, which
// the store knows from memory without opening a transaction; true means
// a read must tell.
func (s *Store) MayHaveEvent(id string) bool {
	if f := s.events; f != nil && !f.mayHave(id) {
		s.stats.eventSkipped.Add(1)
		return false
	}
	return true
}

// mayHaveEvent is false when the event is certainly not stored; true
// means a read must tell, and counts one.
func (t *Txn) mayHaveEvent(id string) bool {
	if !t.s.MayHaveEvent(id) {
		return false
	}
	t.s.stats.eventReads.Add(1)
	return true
}

// HasEvent reports whether the event is stored.
func (t *Txn) HasEvent(id string) (bool, error) {
	if !t.mayHaveEvent(id) {
		return false, nil
	}
	_, err := t.txn.Get(keyEvent(id))
	if err == nil {
		return true, nil
	}
	if errors.Is(err, badger.ErrKeyNotFound) {
		return false, nil
	}
	return false, err
}

// LiveBase splits a room's timeline order: live events sit at LiveBase plus
// their stream position; history backfilled from other members counts down
// from LiveBase, so it sorts before everything the node saw live.
const LiveBase uint64 = 1 << 62

// TimelineOrder is the event's place in its room's timeline; 0 if it has
// none.
func (r *EventRecord) TimelineOrder() uint64 {
	if r.Pos != 0 {
		return LiveBase + r.Pos
	}
	return r.Order
}

// PutEvent stores an event record, and its timeline entry when it has a
// place in the timeline.
func (t *Txn) PutEvent(roomID, id string, r *EventRecord) error {
	if order := r.TimelineOrder(); order != 0 {
		if err := t.txn.Set(keyTimeline(roomID, order), []byte(id)); err != nil {
			return err
		}
	}
	// Added before the commit, so this transaction finds its own write;
	// if it fails, the ID stays as a harmless false positive.
	if f := t.s.events; f != nil {
		f.add(id)
	}
	return t.txn.Set(keyEvent(id), appendEventRecord(nil, r))
}

// Timeline returns up to limit event IDs of the room's timeline with
// orders in (after, upTo], oldest first when forward, newest first
// otherwise. A zero upTo means no upper bound.
func (t *Txn) Timeline(roomID string, after, upTo uint64, forward bool, limit int) ([]TimelineEntry, error) {
	prefix := prefixTimeline(roomID)
	var out []TimelineEntry
	var from []byte
	if forward {
		from = keyTimeline(roomID, after+1)
	} else if upTo != 0 {
		from = keyTimeline(roomID, upTo)
	}
	err := t.scan(prefix, from, !forward, func(k, v []byte) (bool, error) {
		pos := binary.BigEndian.Uint64(k[len(prefix):])
		if pos <= after || (upTo != 0 && pos > upTo) {
			return !forward && pos > after, nil
		}
		out = append(out, TimelineEntry{Order: pos, EventID: string(v)})
		return limit <= 0 || len(out) < limit, nil
	})
	return out, err
}

// TimelineEntry is one event in a room's timeline.
type TimelineEntry struct {
	Order   uint64
	EventID string
}

// RoomRecord is a room's head: what a node needs to extend the DAG.
type RoomRecord struct {
	ID      string `json:"id"`
	Version string `json:"v"`
	// Extremities are the forward extremities: accepted events that no
	// accepted event names as a prev event.
	Extremities []string `json:"ext"`
	// State names the snapshot of the current state.
	State string `json:"state"`
	// Depth is the highest depth among the extremities.
	Depth int64 `json:"depth"`
	// Pos is the stream position of the room's latest timeline event.
	Pos uint64 `json:"pos"`
	// MinOrder is the lowest timeline order given to backfilled history
	// (0: none yet).
	MinOrder uint64 `json:"min_order,omitempty"`
	// Redelivered is the stream position of the room's latest
	// redelivery (see PutRedelivery); 0 for none. A /sync since a later
	// position reads none.
	Redelivered uint64 `json:"rdl,omitempty"`
}

// Room loads a room record.
func (t *Txn) Room(id string) (*RoomRecord, error) {
	var r RoomRecord
	if err := t.getJSON(keyRoom(id), &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// PutRoom stores a room record.
func (t *Txn) PutRoom(r *RoomRecord) error { return t.setJSON(keyRoom(r.ID), r) }

// Rooms lists every room the node holds.
func (t *Txn) Rooms() ([]*RoomRecord, error) {
	var out []*RoomRecord
	err := t.scan([]byte("rm/"), nil, false, func(_, v []byte) (bool, error) {
		var r RoomRecord
		if err := json.Unmarshal(v, &r); err != nil {
			return false, err
		}
		out = append(out, &r)
		return true, nil
	})
	return out, err
}

// Account is a local user.
type Account struct {
	Localpart    string `json:"local"`
	PasswordHash string `json:"pw"`
	Created      int64  `json:"created"`
	// Deactivated accounts keep their record, so that the name can never
	// be registered again, but cannot log in.
	Deactivated bool `json:"deact,omitempty"`
}

// Account loads a local account.
func (t *Txn) Account(localpart string) (*Account, error) {
	var a Account
	if err := t.getJSON(keyAccount(localpart), &a); err != nil {
		return nil, err
	}
	return &a, nil
}

// PutAccount stores a local account.
func (t *Txn) PutAccount(a *Account) error { return t.setJSON(keyAccount(a.Localpart), a) }

// AccountCount counts local accounts.
func (t *Txn) AccountCount() (int, error) {
	n := 0
	err := t.scan([]byte("acct/"), nil, false, func(_, _ []byte) (bool, error) {
		n++
		return true, nil
	})
	return n, err
}

// Session is what an access token stands for.
type Session struct {
	UserID   string `json:"user"`
	DeviceID string `json:"device"`
	Created  int64  `json:"created"`
	// Expires is when (ms) the token stops working; 0 never. Only tokens
	// issued with a refresh token expire.
	Expires int64 `json:"exp,omitempty"`
	// Refresh is the hash of the refresh token issued with this one.
	Refresh string `json:"rt,omitempty"`
	// PrevRefresh is the hash of the refresh token this one was issued
	// for: the first use of this token revokes it (devices.go).
	PrevRefresh string `json:"prt,omitempty"`
}

// HashToken is how tokens are stored: only their SHA-256.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// Session loads the session an access token stands for, from the session
// cache when it holds it.
func (t *Txn) Session(token string) (*Session, error) {
	sum := sha256.Sum256([]byte(token))
	// A transaction that wrote sessions reads its own writes from Badger,
	// and does not cache what it reads.
	cacheable := len(t.sessionsWritten) == 0
	if cacheable {
		if s, ok := t.s.sessions.get(sum); ok {
			t.s.stats.sessionHits.Add(1)
			return &s, nil
		}
	}
	t.s.stats.sessionReads.Add(1)
	var s Session
	if err := t.getJSON(keyToken(hex.EncodeToString(sum[:])), &s); err != nil {
		return nil, err
	}
	if cacheable {
		t.s.sessions.put(t.sessionGen, sum, s)
	}
	return &s, nil
}

// PutSession stores a session under the hash of its token.
func (t *Txn) PutSession(token string, s *Session) error {
	sum := sha256.Sum256([]byte(token))
	t.sessionsWritten = append(t.sessionsWritten, sum)
	return t.setJSON(keyToken(hex.EncodeToString(sum[:])), s)
}

// DeleteSession forgets a token. The session cache forgets it as the
// transaction commits, before Update returns.
func (t *Txn) DeleteSession(token string) error {
	return t.DeleteSessionHash(HashToken(token))
}

// DeleteSessionHash forgets a token by its hash (HashToken's), as
// DeleteSession does.
func (t *Txn) DeleteSessionHash(hash string) error {
	var sum tokenSum
	if n, err := hex.Decode(sum[:], []byte(hash)); err != nil || n != len(sum) {
		return fmt.Errorf("store: token hash %q is not a SHA-256", hash)
	}
	t.sessionsWritten = append(t.sessionsWritten, sum)
	return t.txn.Delete(keyToken(hash))
}

// SessionByHash loads a session by its token's hash, from Badger (never
// the cache, which is for the hot path of authenticating requests).
func (t *Txn) SessionByHash(hash string) (*Session, error) {
	var s Session
	if err := t.getJSON(keyToken(hash), &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// PutSessionHash stores a session under its token's hash, as PutSession
// does.
func (t *Txn) PutSessionHash(hash string, s *Session) error {
	var sum tokenSum
	if n, err := hex.Decode(sum[:], []byte(hash)); err != nil || n != len(sum) {
		return fmt.Errorf("store: token hash %q is not a SHA-256", hash)
	}
	t.sessionsWritten = append(t.sessionsWritten, sum)
	return t.setJSON(keyToken(hash), s)
}

// Profile is a user's public profile.
type Profile struct {
	DisplayName string `json:"displayname,omitempty"`
	AvatarURL   string `json:"avatar_url,omitempty"`
}

// Profile loads a profile; an unknown user has an empty one.
func (t *Txn) Profile(user string) (*Profile, error) {
	var p Profile
	err := t.getJSON(keyProfile(user), &p)
	if errors.Is(err, ErrNotFound) {
		return &p, nil
	}
	return &p, err
}

// PutProfile stores a profile.
func (t *Txn) PutProfile(user string, p *Profile) error { return t.setJSON(keyProfile(user), p) }

// TxnEvent returns the event a client transaction created, or "".
func (t *Txn) TxnEvent(user, device, txnID string) (string, error) {
	b, err := get(t.txn, keyTxn(user, device, txnID))
	if errors.Is(err, ErrNotFound) {
		return "", nil
	}
	return string(b), err
}

// PutTxnEvent records the event a client transaction created.
func (t *Txn) PutTxnEvent(user, device, txnID, eventID string) error {
	return t.txn.Set(keyTxn(user, device, txnID), []byte(eventID))
}

// PutFilter stores a filter and returns its new ID.
func (t *Txn) PutFilter(user string, filter json.RawMessage) (string, error) {
	n := 0
	if err := t.scan(prefixFilter(user), nil, false, func(_, _ []byte) (bool, error) {
		n++
		return true, nil
	}); err != nil {
		return "", err
	}
	id := fmt.Sprint(n)
	return id, t.txn.Set(keyFilter(user, id), filter)
}

// Filter loads a stored filter.
func (t *Txn) Filter(user, id string) (json.RawMessage, error) {
	return get(t.txn, keyFilter(user, id))
}

func keyRedaction(target string) []byte { return []byte("rd/" + target) }

// Redaction records an accepted redaction of an event (which may not be
// stored yet).
type Redaction struct {
	Target      string `json:"target"`
	RedactionID string `json:"by"`
	// ByPower: the redaction's sender had the redact level when it was
	// sent. Otherwise it applies only to events from its own server.
	ByPower bool `json:"power,omitempty"`
}

// PutRedaction records a redaction. Other transactions see it once this
// one commits.
func (t *Txn) PutRedaction(r *Redaction) error {
	if err := t.setJSON(keyRedaction(r.Target), r); err != nil {
		return err
	}
	if t.redactions == nil {
		t.redactions = make(map[string]Redaction)
	}
	t.redactions[r.Target] = *r
	return nil
}

// Redaction returns the redaction recorded for an event, if any. It reads
// the in-memory index (and this transaction's own writes), never Badger,
// so a View may see a redaction committed after it began: redactions are
// only ever added, and seeing one early is what a later View would see.
func (t *Txn) Redaction(target string) (*Redaction, error) {
	r, ok := t.redactions[target]
	if !ok {
		t.s.redactMu.RLock()
		r, ok = t.s.redactions[target]
		t.s.redactMu.RUnlock()
	}
	if !ok {
		return nil, ErrNotFound
	}
	found := r // only a found redaction is copied to the heap
	return &found, nil
}

func prefixVerdicts(room string) []byte { return []byte("vd/" + room + "\x00") }

// Verdict is why an event of a room was rejected or soft-failed.
type Verdict struct {
	EventID  string `json:"event_id"`
	Type     string `json:"type"`
	Sender   string `json:"sender"`
	Soft     bool   `json:"soft_failed,omitempty"`
	Reason   string `json:"reason"`
	Received int64  `json:"received_ts"`
}

// PutVerdict records a rejection or soft-fail for a room's debug view.
func (t *Txn) PutVerdict(room string, v *Verdict) error {
	return t.setJSON(append(prefixVerdicts(room), v.EventID...), v)
}

// Verdicts lists a room's rejected and soft-failed events (at most limit).
func (t *Txn) Verdicts(room string, limit int) ([]*Verdict, error) {
	var out []*Verdict
	err := t.scan(prefixVerdicts(room), nil, false, func(_, v []byte) (bool, error) {
		var vd Verdict
		if err := json.Unmarshal(v, &vd); err != nil {
			return false, err
		}
		out = append(out, &vd)
		return limit <= 0 || len(out) < limit, nil
	})
	return out, err
}

var keyOwner = []byte("meta/owner")

// SetOwner records the node's owner: its first account.
func (t *Txn) SetOwner(localpart string) error { return t.txn.Set(keyOwner, []byte(localpart)) }

// Owner returns the node owner's localpart, or "" before the first account.
func (t *Txn) Owner() (string, error) {
	b, err := get(t.txn, keyOwner)
	if errors.Is(err, ErrNotFound) {
		return "", nil
	}
	return string(b), err
}
