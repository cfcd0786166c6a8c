package peers

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/parley-p2p/parley/node/dag"
	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/p2p"
	"github.com/parley-p2p/parley/rooms"
)

// A room shows nothing of itself on the wire to those outside it. Its
// creator's node makes a room secret (32 random bytes, store/secrets.go),
// which reaches members sealed to their node's KEM key (invites, send_join
// answers) or inside invite links. Everything the room puts on the wire
// is derived from it (HKDF-SHA256, salt "parley-room-v1"):
//
//	kid      = H("key-id")[:16]         names the room in a request, in clear
//	kReq     = H("request")             seals requests and answers (envelope.go)
//	kGossip  = H("gossip")              seals gossip (p2p/envelope.go)
//	topic(p) = /parley/t/ + b32(H("topic" | be64(p))[:20])
//	rdv(p)   = /parley/v/ + b32(H("rendezvous" | be64(p))[:20])
//
// where p counts 24-hour periods since the Unix epoch. In the last hour of
// a period a node also listens on the next period's topic, and in the
// first hour on the previous one's, so clocks up to an hour apart still
// meet. Nothing is derived from the room ID.

const (
	secretPeriod = 24 * time.Hour
	secretGrace  = time.Hour
	kidSize      = 16
)

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// roomSecret is one epoch of a room's secret and what derives from it.
type roomSecret struct {
	roomID string
	epoch  uint32
	secret [store.RoomSecretSize]byte
	kid    [kidSize]byte
	req    [32]byte
	gossip [32]byte
}

func derive(secret []byte, label string, n int) []byte {
	out, err := hkdf.Key(sha256.New, secret, []byte("parley-room-v1"), label, n)
	if err != nil {
		panic(err) // only for lengths HKDF cannot make
	}
	return out
}

func newRoomSecret(s store.RoomSecret) *roomSecret {
	rs := &roomSecret{roomID: s.RoomID, epoch: s.Epoch, secret: s.Secret}
	copy(rs.kid[:], derive(s.Secret[:], "key-id", kidSize))
	copy(rs.req[:], derive(s.Secret[:], "request", 32))
	copy(rs.gossip[:], derive(s.Secret[:], "gossip", 32))
	return rs
}

func (rs *roomSecret) periodName(prefix, label string, period int64) string {
	info := binary.BigEndian.AppendUint64([]byte(label), uint64(period))
	return prefix + b32.EncodeToString(derive(rs.secret[:], string(info), 20))
}

// topic is the room's gossip topic in a period, with its key.
func (rs *roomSecret) topic(period int64) p2p.TopicKey {
	return p2p.TopicKey{Topic: rs.periodName(p2p.RoomTopicPrefix, "topic", period), Key: rs.gossip}
}

// rendezvousPrefix starts a room's DHT rendezvous key.
const rendezvousPrefix = "/parley/v/"

// rendezvous is the room's DHT rendezvous key in a period.
func (rs *roomSecret) rendezvous(period int64) string {
	return rs.periodName(rendezvousPrefix, "rendezvous", period)
}

// periodOf returns the period of t and whether t is in the grace hour at
// its end (+1) or its start (-1), or neither (0).
func periodOf(t time.Time) (period int64, grace int64) {
	s := t.Unix()
	p := s / int64(secretPeriod/time.Second)
	into := time.Duration(s-p*int64(secretPeriod/time.Second)) * time.Second
	switch {
	case into >= secretPeriod-secretGrace:
		grace = 1
	case into < secretGrace:
		grace = -1
	}
	return p, grace
}

// keysAt are the room's topics at t: publish on the period's, and listen
// on the neighbouring period's too in a grace hour.
func (rs *roomSecret) keysAt(t time.Time) p2p.RoomKeys {
	p, grace := periodOf(t)
	keys := p2p.RoomKeys{Publish: rs.topic(p)}
	if grace != 0 {
		keys.Listen = []p2p.TopicKey{rs.topic(p + grace)}
	}
	return keys
}

// rendezvousAt are the keys to advertise the room under at t, the current
// period's first, and to look it up under.
func (rs *roomSecret) rendezvousAt(t time.Time) []string {
	p, grace := periodOf(t)
	out := []string{rs.rendezvous(p)}
	if grace != 0 {
		out = append(out, rs.rendezvous(p+grace))
	}
	return out
}

// secrets is the node's room secrets in memory: by room (epochs in order)
// and by key id.
type secrets struct {
	mu     sync.Mutex
	byRoom map[string][]*roomSecret
	byKid  map[[kidSize]byte]*roomSecret
	// rotated is when a room last moved to a newer epoch (in memory:
	// after a restart the previous epoch's topics are not listened to).
	rotated map[string]time.Time
}

func newSecrets() *secrets {
	return &secrets{byRoom: make(map[string][]*roomSecret), byKid: make(map[[kidSize]byte]*roomSecret), rotated: make(map[string]time.Time)}
}

func (s *secrets) addLocked(rs *roomSecret) {
	list := s.byRoom[rs.roomID]
	for _, o := range list {
		if o.epoch == rs.epoch {
			return
		}
	}
	if len(list) > 0 && rs.epoch > list[len(list)-1].epoch {
		s.rotated[rs.roomID] = time.Now()
	}
	list = append(list, rs)
	slices.SortFunc(list, func(a, b *roomSecret) int { return int(int64(a.epoch) - int64(b.epoch)) })
	s.byRoom[rs.roomID] = list
	s.byKid[rs.kid] = rs
}

// loadSecrets brings every stored room secret into memory.
func (ps *Peers) loadSecrets() error {
	ps.secrets.mu.Lock()
	defer ps.secrets.mu.Unlock()
	return ps.store.View(func(t *store.Txn) error {
		return t.AllRoomSecrets(func(s store.RoomSecret) error {
			ps.secrets.addLocked(newRoomSecret(s))
			return nil
		})
	})
}

// currentSecret returns the room's latest secret. The node that created
// the room makes it the first time it is asked; another node has it once
// an invite, a join or a link brought it.
func (ps *Peers) currentSecret(roomID string) (*roomSecret, bool) {
	ps.secrets.mu.Lock()
	defer ps.secrets.mu.Unlock()
	if list := ps.secrets.byRoom[roomID]; len(list) > 0 {
		return list[len(list)-1], true
	}
	if !ps.createdHere(roomID) {
		return nil, false
	}
	s := store.RoomSecret{RoomID: roomID}
	if _, err := rand.Read(s.Secret[:]); err != nil {
		return nil, false
	}
	if err := ps.store.Update(func(t *store.Txn) error { return t.PutRoomSecret(s) }); err != nil {
		ps.log.Warn("storing a new room secret", "room", roomID, "err", err)
		return nil, false
	}
	rs := newRoomSecret(s)
	ps.secrets.addLocked(rs)
	return rs, true
}

// createdHere reports whether this node's server sent the room's create
// event.
func (ps *Peers) createdHere(roomID string) bool {
	dr := ps.dag.Room(roomID)
	if dr == nil {
		return false
	}
	id := dag.CreateEventID(dr)
	if id == "" {
		id = dr.State()[rooms.StateKey{Type: "m.room.create"}]
	}
	i, err := ps.dag.Event(id)
	if err != nil {
		return false
	}
	s, err := rooms.ServerOf(i.Event.Sender())
	return err == nil && s == ps.serverName
}

// secretsToTry are the secrets to seal a request about the room with, in
// order: the current epoch's, then the one before (for a member that has
// not learnt of the latest rotation yet).
func (ps *Peers) secretsToTry(roomID string) []*roomSecret {
	cur, ok := ps.currentSecret(roomID)
	if !ok {
		return nil
	}
	ps.secrets.mu.Lock()
	defer ps.secrets.mu.Unlock()
	if list := ps.secrets.byRoom[roomID]; len(list) > 1 {
		return []*roomSecret{cur, list[len(list)-2]}
	}
	return []*roomSecret{cur}
}

// secretByKid returns the room secret a request names.
func (ps *Peers) secretByKid(kid []byte) (*roomSecret, bool) {
	if len(kid) != kidSize {
		return nil, false
	}
	ps.secrets.mu.Lock()
	defer ps.secrets.mu.Unlock()
	rs, ok := ps.secrets.byKid[[kidSize]byte(kid)]
	return rs, ok
}

// keepSecret stores a room secret another node sent. A different secret
// for an epoch already kept is refused: the first one stays.
func (ps *Peers) keepSecret(s store.RoomSecret) error {
	ps.secrets.mu.Lock()
	defer ps.secrets.mu.Unlock()
	for _, o := range ps.secrets.byRoom[s.RoomID] {
		if o.epoch == s.Epoch {
			if o.secret != s.Secret {
				return store.ErrSecretConflict
			}
			return nil
		}
	}
	if err := ps.store.Update(func(t *store.Txn) error { return t.PutRoomSecret(s) }); err != nil {
		return err
	}
	ps.secrets.addLocked(newRoomSecret(s))
	return nil
}

// replaceSecret keeps a room secret, replacing a different one kept for
// the same epoch.
func (ps *Peers) replaceSecret(s store.RoomSecret) error {
	err := ps.keepSecret(s)
	if !errors.Is(err, store.ErrSecretConflict) {
		return err
	}
	ps.secrets.mu.Lock()
	defer ps.secrets.mu.Unlock()
	if err := ps.store.Update(func(t *store.Txn) error { return t.ReplaceRoomSecret(s) }); err != nil {
		return err
	}
	list := ps.secrets.byRoom[s.RoomID]
	for i, o := range list {
		if o.epoch == s.Epoch {
			delete(ps.secrets.byKid, o.kid)
			list[i] = newRoomSecret(s)
			ps.secrets.byKid[list[i].kid] = list[i]
		}
	}
	return nil
}

// sharedSecret is a room secret as it travels sealed (invites, send_join
// answers) or in a link.
type sharedSecret struct {
	Key   string `json:"k"` // base64url, unpadded
	Epoch uint32 `json:"e"`
}

func (rs *roomSecret) shared() sharedSecret {
	return sharedSecret{Key: base64.RawURLEncoding.EncodeToString(rs.secret[:]), Epoch: rs.epoch}
}

func (s sharedSecret) parse(roomID string) (store.RoomSecret, error) {
	out := store.RoomSecret{RoomID: roomID, Epoch: s.Epoch}
	b, err := base64.RawURLEncoding.DecodeString(s.Key)
	if err != nil || len(b) != store.RoomSecretSize {
		return out, errors.New("room secret of the wrong form")
	}
	copy(out.Secret[:], b)
	return out, nil
}

// LinkKey returns what an invite link to the room carries of its secret
// (links.Payload's Key and Epoch): the room's current secret, base64url.
func (ps *Peers) LinkKey(r *Room) (key string, epoch uint32, err error) {
	rs, ok := ps.currentSecret(r.ID)
	if !ok {
		return "", 0, fmt.Errorf("this node does not hold the room's secret")
	}
	s := rs.shared()
	return s.Key, s.Epoch, nil
}

// roomKeysAt are the room's topics at now: the current epoch's, and for
// secretGrace after a rotation the previous epoch's too (listened to only),
// so that members that learn of the rotation a little later are still
// heard.
func (ps *Peers) roomKeysAt(roomID string, now time.Time) (p2p.RoomKeys, bool) {
	cur, ok := ps.currentSecret(roomID)
	if !ok {
		return p2p.RoomKeys{}, false
	}
	keys := cur.keysAt(now)
	ps.secrets.mu.Lock()
	list, at := ps.secrets.byRoom[roomID], ps.secrets.rotated[roomID]
	ps.secrets.mu.Unlock()
	if len(list) > 1 && now.Sub(at) < secretGrace {
		prev := list[len(list)-2].keysAt(now)
		keys.Listen = append(keys.Listen, prev.Publish)
		keys.Listen = append(keys.Listen, prev.Listen...)
	}
	return keys, true
}

// RoomKeys returns the topics the room's gossip is on now, with their
// keys, if the node holds the room's secret. For tests and tools: what a
// member (or a leaked secret) would allow.
func (ps *Peers) RoomKeys(roomID string) (p2p.RoomKeys, bool) {
	return ps.roomKeysAt(roomID, time.Now())
}

// RoomEpoch is the epoch of the room secret the node holds (tests and
// tools).
func (ps *Peers) RoomEpoch(roomID string) (uint32, bool) {
	rs, ok := ps.currentSecret(roomID)
	if !ok {
		return 0, false
	}
	return rs.epoch, true
}
