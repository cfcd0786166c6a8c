package e2ee

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"sort"
	"strings"
	"sync"
	"time"

	"maunium.net/go/mautrix/crypto/goolm/session"

	"github.com/parley-p2p/parley/node/dag"
	"github.com/parley-p2p/parley/rooms"
)

// Rotation thresholds (the defaults of Matrix's m.room.encryption).
const (
	rotateMsgs = 100
	rotateAge  = 7 * 24 * time.Hour
)

// outbound is this node's current Megolm session in a room, with what
// the room looked like when it began (what rotation compares with).
type outbound struct {
	s       *session.MegolmOutboundSession
	id      string
	key0    []byte // the signed sharing message at index 0, raw
	binding string
	created time.Time
	count   int
	hv      string
	users   map[string]bool // joined or invited users at creation
	initial map[string]bool // servers joined at creation: they get index 0
	shared  map[string]bool // servers a share was sent to
}

// view is what rotation and sharing read of a room's current state.
type view struct {
	members map[string]bool      // users joined or invited
	joined  map[string]PublicKey // other servers with a joined user, and their KEM key (nil pk if none published)
	hv      string
	local   []string // this node's joined users
}

// plainType reports whether events of a type stay in the clear: the
// create event (the auth rules read all of it) and parley's own types.
func plainType(evType string) bool {
	return evType == "m.room.create" || strings.HasPrefix(evType, "org.parley.")
}

func (k *Keeper) roomLock(roomID string) *sync.Mutex {
	k.mu.Lock()
	defer k.mu.Unlock()
	l := k.prep[roomID]
	if l == nil {
		l = &sync.Mutex{}
		k.prep[roomID] = l
	}
	return l
}

func (k *Keeper) event(id string) (*rooms.Event, error) {
	if k.engine == nil {
		return nil, errors.New("e2ee: no engine attached")
	}
	i, err := k.engine.Event(id)
	if err != nil {
		return nil, err
	}
	return i.Event, nil
}

// cachedView is a room's view and the state it was read from.
type cachedView struct {
	stateID string
	v       view
}

// view reads the room's current state (once per state: every send of a
// room reads it). The view is shared: read it, never change it.
func (k *Keeper) view(r *dag.Room) view {
	h := r.Head()
	k.mu.Lock()
	c, ok := k.views[r.ID]
	k.mu.Unlock()
	if ok && h.StateID != "" && c.stateID == h.StateID {
		return c.v
	}
	v := k.readView(h)
	if h.StateID != "" {
		k.mu.Lock()
		k.views[r.ID] = cachedView{h.StateID, v}
		k.mu.Unlock()
	}
	return v
}

func (k *Keeper) readView(h *dag.Head) view {
	v := view{members: map[string]bool{}, joined: map[string]PublicKey{}, hv: "shared"}
	for key, id := range h.State {
		switch key.Type {
		case "m.room.history_visibility":
			if ev, err := k.event(id); err == nil {
				var c struct {
					HV string `json:"history_visibility"`
				}
				if json.Unmarshal(ev.Content(), &c) == nil && c.HV != "" {
					v.hv = c.HV
				}
			}
		case "m.room.member":
			ev, err := k.event(id)
			if err != nil {
				continue
			}
			m := ev.Membership()
			if m != "join" && m != "invite" {
				continue
			}
			v.members[key.StateKey] = true
			server, err := rooms.ServerOf(key.StateKey)
			if err != nil || m != "join" {
				continue
			}
			if server == k.server {
				v.local = append(v.local, key.StateKey)
				continue
			}
			pk := k.memberKEM(ev)
			if old, ok := v.joined[server]; !ok || old.pk == nil {
				v.joined[server] = pk
			}
		}
	}
	sort.Strings(v.local)
	return v
}

// memberKEM is the KEM key a join publishes: only a join sent by the
// joining user's own server counts (an inviter could otherwise write its
// own key into an invite for someone else). Zero if there is none.
func (k *Keeper) memberKEM(ev *rooms.Event) PublicKey {
	sk := ev.StateKey()
	if sk == nil || ev.Membership() != "join" {
		return PublicKey{}
	}
	server, err := rooms.ServerOf(*sk)
	if err != nil {
		return PublicKey{}
	}
	if s, err := rooms.ServerOf(ev.Sender()); err != nil || s != server {
		return PublicKey{}
	}
	k.mu.Lock()
	pk, ok := k.kemCache[ev.ID()]
	k.mu.Unlock()
	if ok {
		return pk
	}
	var c map[string]json.RawMessage
	if json.Unmarshal(ev.Content(), &c) == nil && c[KEMField] != nil {
		pk, _ = ParseKEMDoc(c[KEMField])
	}
	k.mu.Lock()
	if len(k.kemCache) >= maxCachedSessions {
		clear(k.kemCache)
	}
	k.kemCache[ev.ID()] = pk
	k.mu.Unlock()
	return pk
}

// needsRotation reports whether the room changed since the session
// began in a way that must keep later messages from someone who could
// read it, or the session is worn out.
func (k *Keeper) needsRotation(o *outbound, v view) bool {
	if o == nil || o.count >= rotateMsgs || k.now().Sub(o.created) >= rotateAge || o.hv != v.hv {
		return true
	}
	for u := range o.users {
		if !v.members[u] {
			return true
		}
	}
	return false
}

// newOutbound starts a session in a room and keeps the node's own
// inbound copy of it (stored before any event that uses it).
func (k *Keeper) newOutbound(roomID string, v view) (*outbound, error) {
	s, err := session.NewMegolmOutboundSession()
	if err != nil {
		return nil, err
	}
	msg, err := s.SessionSharingMessage()
	if err != nil {
		return nil, err
	}
	key0, err := b64.DecodeString(string(msg))
	if err != nil {
		return nil, err
	}
	id := string(s.ID())
	sig, err := s.SigningKey.Sign(bindingMsg(roomID, k.server, id))
	if err != nil {
		return nil, err
	}
	o := &outbound{
		s: s, id: id, key0: key0, binding: b64.EncodeToString(sig), created: k.now(), hv: v.hv,
		users: maps.Clone(v.members), initial: map[string]bool{}, shared: map[string]bool{},
	}
	for server := range v.joined {
		o.initial[server] = true
	}
	in, err := session.NewMegolmInboundSession(msg)
	if err != nil {
		return nil, err
	}
	if _, err := k.accept(roomID, k.server, o.binding, in, true); err != nil {
		return nil, err
	}
	return o, nil
}

// Prepare makes sure the room has a session fit for the next event, and
// that every joined server holds it: it rotates the session when the
// room calls for it (a member gone, history visibility changed, 100
// messages or a week) and shares a new session with every other joined
// server; a server joined since gets the current session from its
// current index (so it reads nothing sent before).
func (k *Keeper) Prepare(ctx context.Context, r *dag.Room, sender, evType string, stateKey *string) error {
	if k.Sealed(evType) || plainType(evType) {
		return nil
	}
	if k.engine == nil {
		return errors.New("e2ee: no engine attached")
	}
	lock := k.roomLock(r.ID)
	lock.Lock()
	defer lock.Unlock()
	v := k.view(r)
	from := sender
	if !v.members[sender] || !contains(v.local, sender) {
		from = ""
		if len(v.local) > 0 {
			from = v.local[0]
		}
	}
	k.mu.Lock()
	o := k.outs[r.ID]
	rotate := k.needsRotation(o, v)
	if !rotate {
		// Whoever is a member now may come to hold the session (a
		// joiner gets it from its current index): their departure
		// rotates it too.
		for u := range v.members {
			o.users[u] = true
		}
	}
	k.mu.Unlock()
	if rotate {
		var err error
		if o, err = k.newOutbound(r.ID, v); err != nil {
			return fmt.Errorf("e2ee: new session: %w", err)
		}
		if from != "" {
			if err := k.sendShares(ctx, r, from, o, o.key0, 0, v.joined, nil); err != nil {
				return err
			}
		}
		k.mu.Lock()
		k.outs[r.ID] = o
		k.mu.Unlock()
		return nil
	}
	if from == "" {
		return nil
	}
	// Servers that do not hold the session yet: those joined when it
	// began get it from index 0, later joiners from the current index.
	first, later := map[string]PublicKey{}, map[string]PublicKey{}
	k.mu.Lock()
	for server, pk := range v.joined {
		if o.shared[server] || pk.pk == nil {
			continue
		}
		if o.initial[server] {
			first[server] = pk
		} else {
			later[server] = pk
		}
	}
	var cur []byte
	var idx uint32
	if len(later) > 0 {
		msg, err := o.s.SessionSharingMessage()
		if err == nil {
			cur, err = b64.DecodeString(string(msg))
		}
		if err != nil {
			k.mu.Unlock()
			return fmt.Errorf("e2ee: sharing message: %w", err)
		}
		idx = uint32(o.s.MessageIndex())
	}
	k.mu.Unlock()
	if len(first) > 0 {
		if err := k.sendShares(ctx, r, from, o, o.key0, 0, first, &k.mu); err != nil {
			return err
		}
	}
	if len(later) > 0 {
		if err := k.sendShares(ctx, r, from, o, cur, idx, later, &k.mu); err != nil {
			return err
		}
	}
	return nil
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// maxShareBytes bounds the seals of one share event, so that it stays
// well under the 64 KiB event limit.
const maxShareBytes = 56000

// sendShares seals a sharing message to each server in to and sends
// the share events; the servers with a seal are marked as holding it
// (under mu when the session is already in use).
func (k *Keeper) sendShares(ctx context.Context, r *dag.Room, from string, o *outbound, key []byte, index uint32, to map[string]PublicKey, mu *sync.Mutex) error {
	contents, sealed, err := k.shareContents(r.ID, o.id, o.binding, index, key, to)
	if err != nil {
		return err
	}
	for _, c := range contents {
		if _, err := k.engine.Send(ctx, r, from, ShareType, nil, c, "", ""); err != nil {
			return fmt.Errorf("e2ee: send key share: %w", err)
		}
	}
	if mu != nil {
		mu.Lock()
		defer mu.Unlock()
	}
	for _, s := range sealed {
		o.shared[s] = true
	}
	return nil
}

// shareContents builds the contents of the share events of a session:
// one seal per server, split across events past maxShareBytes.
func (k *Keeper) shareContents(roomID, sid, binding string, index uint32, key []byte, to map[string]PublicKey) ([]json.RawMessage, []string, error) {
	servers := make([]string, 0, len(to))
	for s, pk := range to {
		if pk.pk != nil {
			servers = append(servers, s)
		}
	}
	sort.Strings(servers)
	var parts []map[string]string
	size := maxShareBytes
	for _, s := range servers {
		ct, err := Seal(to[s], shareInfo(roomID, k.server, s, sid), key)
		if err != nil {
			return nil, nil, fmt.Errorf("e2ee: seal to %s: %w", s, err)
		}
		enc := b64.EncodeToString(ct)
		if n := len(s) + len(enc) + 6; size+n > maxShareBytes {
			parts = append(parts, map[string]string{})
			size = 0
		}
		parts[len(parts)-1][s] = enc
		size += len(s) + len(enc) + 6
	}
	out := make([]json.RawMessage, 0, len(parts))
	for i, seals := range parts {
		c, err := rooms.MarshalCanonical(share{
			V: 1, Kind: kindSession, Algorithm: Algorithm, KEM: KEMAlg, Part: [2]int{i + 1, len(parts)},
			SessionID: sid, Index: index, Binding: binding, Seals: seals,
		})
		if err != nil {
			return nil, nil, err
		}
		out = append(out, c)
	}
	return out, servers, nil
}

// Seal encrypts a local event's content under the room's session: a
// non-state event becomes m.room.encrypted; a state event (and a
// redaction) keeps its type and the keys the auth rules read, and the
// rest goes in EncryptedField. An own user's join gets the node's KEM
// key (in the clear, where the event's signature covers it).
func (k *Keeper) Seal(r *dag.Room, sender, evType string, stateKey *string, content json.RawMessage) (string, json.RawMessage, []byte, error) {
	if k.Sealed(evType) || plainType(evType) {
		return evType, content, nil, nil
	}
	content, err := k.withKEM(evType, stateKey, content)
	if err != nil {
		return "", nil, nil, err
	}
	var kept json.RawMessage
	if stateKey != nil || evType == "m.room.redaction" {
		if kept, err = rooms.RedactContent(evType, content); err != nil {
			return "", nil, nil, fmt.Errorf("e2ee: content: %w", err)
		}
		if canon, err := rooms.CanonicalJSON(content); err == nil && bytes.Equal(canon, withField(kept, content, KEMField)) {
			return evType, content, nil, nil // nothing to hide
		}
	}
	pt, err := json.Marshal(inner{Type: evType, StateKey: stateKey, Content: content, RoomID: r.ID})
	if err != nil {
		return "", nil, nil, fmt.Errorf("e2ee: content: %w", err)
	}
	enc, err := k.encrypt(r, pt)
	if err != nil {
		return "", nil, nil, err
	}
	plain, err := json.Marshal(dag.Plain{Type: evType, Content: content})
	if err != nil {
		return "", nil, nil, err
	}
	if kept == nil {
		wire, err := rooms.MarshalCanonical(enc)
		return EncryptedType, wire, plain, err
	}
	var wire map[string]json.RawMessage
	if err := json.Unmarshal(withField(kept, content, KEMField), &wire); err != nil {
		return "", nil, nil, err
	}
	wire[EncryptedField], _ = json.Marshal(enc)
	out, err := rooms.MarshalCanonical(wire)
	return evType, out, plain, err
}

// encrypt encrypts a Megolm plaintext under the room's session, starting
// one if the room has none (Prepare was not called: the events of a
// room's creation, which only its creator's node can read yet).
func (k *Keeper) encrypt(r *dag.Room, pt []byte) (encrypted, error) {
	k.mu.Lock()
	o := k.outs[r.ID]
	k.mu.Unlock()
	if o == nil {
		n, err := k.newOutbound(r.ID, k.view(r))
		if err != nil {
			return encrypted{}, fmt.Errorf("e2ee: new session: %w", err)
		}
		k.mu.Lock()
		if o = k.outs[r.ID]; o == nil {
			o, k.outs[r.ID] = n, n
		}
		k.mu.Unlock()
	}
	k.mu.Lock()
	ct, err := o.s.Encrypt(pt)
	o.count++
	k.mu.Unlock()
	if err != nil {
		return encrypted{}, fmt.Errorf("e2ee: encrypt: %w", err)
	}
	return encrypted{Algorithm: Algorithm, Ciphertext: string(ct), SessionID: o.id}, nil
}

// withKEM adds the node's KEM key to a join of one of its own users, if
// the content lacks it.
func (k *Keeper) withKEM(evType string, stateKey *string, content json.RawMessage) (json.RawMessage, error) {
	if evType != "m.room.member" || stateKey == nil {
		return content, nil
	}
	if s, err := rooms.ServerOf(*stateKey); err != nil || s != k.server {
		return content, nil
	}
	var c map[string]json.RawMessage
	if err := json.Unmarshal(content, &c); err != nil {
		return nil, fmt.Errorf("e2ee: member content: %w", err)
	}
	var m string
	if json.Unmarshal(c["membership"], &m); m != "join" || c[KEMField] != nil {
		return content, nil
	}
	c[KEMField], _ = json.Marshal(k.kem.Doc())
	return rooms.MarshalCanonical(c)
}

// withField is canonical content kept with the field of content added,
// when content has it.
func withField(kept, content json.RawMessage, field string) json.RawMessage {
	var all, out map[string]json.RawMessage
	if json.Unmarshal(content, &all) != nil || all[field] == nil || json.Unmarshal(kept, &out) != nil {
		return kept
	}
	out[field] = all[field]
	b, err := rooms.MarshalCanonical(out)
	if err != nil {
		return kept
	}
	return b
}
