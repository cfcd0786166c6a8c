package e2ee

import (
	"bytes"
	"encoding/json"
	"errors"
	"sync"

	"maunium.net/go/mautrix/crypto/goolm/message"
	"maunium.net/go/mautrix/crypto/goolm/session"

	"github.com/parley-p2p/parley/node/store"
)

// Store layout, under the store's "e2/" prefix:
//
//	i/<sid>                   inbound session (inRec)
//	r/<room>\0<sid>           the room's sessions
//	w/<sid>\0<event>          an event waiting on the session (value: room)
//	h/<room>\0<server>\0<ev>  a history handover sent for a join

func keyIn(sid string) string           { return "i/" + sid }
func keyRoomIn(room, sid string) string { return "r/" + room + "\x00" + sid }
func prefixWait(sid string) string      { return "w/" + sid + "\x00" }
func keyWait(sid, ev string) string     { return prefixWait(sid) + ev }

// inRec is an inbound session as stored.
type inRec struct {
	Room  string `json:"room"`
	Owner string `json:"owner"`
	// Binding is the owner's signature of (room, owner, session) by the
	// session key.
	Binding string `json:"binding"`
	// Verified: the ratchet came from the owner's signed sharing
	// message, not from an export someone handed over.
	Verified bool   `json:"verified,omitempty"`
	Pickle   []byte `json:"pickle"` // PickleLibOlm, raw
}

// inbound is a session this node can decrypt with.
type inbound struct {
	rec inRec
	mu  sync.Mutex // guards s, whose ratchet advances as it decrypts, and used
	s   *session.MegolmInboundSession
}

func (in *inbound) first() uint32 { return in.s.FirstKnownIndex() }

// maxCachedSessions bounds the inbound sessions held in memory; the
// others are read back from the store.
const maxCachedSessions = 4096

// inbound returns the session, from memory or the store; nil if unknown.
func (k *Keeper) inbound(sid string) *inbound {
	k.mu.Lock()
	in := k.ins[sid]
	k.mu.Unlock()
	if in != nil {
		return in
	}
	var raw []byte
	k.st.View(func(t *store.Txn) error {
		var err error
		raw, err = t.E2Get(keyIn(sid))
		return err
	})
	if raw == nil {
		return nil
	}
	in, err := loadInbound(raw)
	if err != nil {
		k.log.Warn("stored session unreadable", "session", sid, "err", err)
		return nil
	}
	k.cache(sid, in)
	return in
}

func loadInbound(raw []byte) (*inbound, error) {
	var rec inRec
	if err := json.Unmarshal(raw, &rec); err != nil {
		return nil, err
	}
	s := &session.MegolmInboundSession{}
	if err := s.UnpickleLibOlm(rec.Pickle); err != nil {
		return nil, err
	}
	return &inbound{rec: rec, s: s}, nil
}

func (k *Keeper) cache(sid string, in *inbound) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.ins[sid]; !ok && len(k.ins) >= maxCachedSessions {
		for old := range k.ins { // any one: it is read back when needed
			delete(k.ins, old)
			break
		}
	}
	k.ins[sid] = in
}

// save stores a session (queued: a write queued later, such as an
// event's, commits after it) and caches it.
func (k *Keeper) save(sid string, in *inbound) <-chan error {
	rec := in.rec
	rec.Pickle = in.s.PickleLibOlm()
	raw, _ := json.Marshal(rec)
	k.cache(sid, in)
	return k.st.UpdateAsync(func(t *store.Txn) error {
		if err := t.E2Set(keyIn(sid), raw); err != nil {
			return err
		}
		return t.E2Set(keyRoomIn(rec.Room, sid), nil)
	})
}

// exportAt is the session's export at index idx, taken from a copy so
// that the session's ratchet does not move.
func exportAt(s *session.MegolmInboundSession, idx uint32) ([]byte, error) {
	c := &session.MegolmInboundSession{}
	if err := c.UnpickleLibOlm(s.PickleLibOlm()); err != nil {
		return nil, err
	}
	return c.Export(idx)
}

// consistent reports whether two ratchets of one session agree: the
// one that starts lower, moved on to where the other starts, must be
// the other. A bogus ratchet (garbage in a handover) never agrees.
func consistent(a, b *session.MegolmInboundSession) bool {
	lo, hi := a, b
	if hi.FirstKnownIndex() < lo.FirstKnownIndex() {
		lo, hi = hi, lo
	}
	x, err1 := exportAt(lo, hi.FirstKnownIndex())
	y, err2 := exportAt(hi, hi.FirstKnownIndex())
	return err1 == nil && err2 == nil && bytes.Equal(x, y)
}

var errRejected = errors.New("e2ee: session rejected")

// accept takes a session for a room and owner, checked as far as its
// source allows: verified when it came from the owner's signed sharing
// message, else from a handover whose binding proved the owner but
// whose ratchet only decryption can prove. The first owner recorded for
// a session wins. It reports whether the node can now decrypt more.
func (k *Keeper) accept(roomID, owner, binding string, s *session.MegolmInboundSession, verified bool) (bool, error) {
	sid := string(s.ID())
	k.acceptMu.Lock()
	defer k.acceptMu.Unlock()
	old := k.inbound(sid)
	cand := &inbound{rec: inRec{Room: roomID, Owner: owner, Binding: binding, Verified: verified}, s: s}
	if old == nil {
		if !verified && !k.trial(sid, s) {
			return false, errRejected
		}
		k.save(sid, cand)
		return true, nil
	}
	if old.rec.Room != roomID || old.rec.Owner != owner {
		return false, errRejected
	}
	old.mu.Lock()
	agree := consistent(old.s, s)
	oldFirst := old.first()
	old.mu.Unlock()
	switch {
	case agree && s.FirstKnownIndex() < oldFirst:
		cand.rec.Verified = verified || old.rec.Verified
		k.save(sid, cand)
		return true, nil
	case agree && verified && !old.rec.Verified:
		old.rec.Verified = true
		k.save(sid, old)
		return false, nil
	case agree:
		return false, nil
	case verified && !old.rec.Verified:
		// The handed-over ratchet was bogus: the owner's own wins.
		k.save(sid, cand)
		return true, nil
	case !verified && !old.rec.Verified && !k.trial(sid, old.s) && k.trial(sid, s):
		k.save(sid, cand)
		return true, nil
	}
	return false, errRejected
}

// trial decrypts one ciphertext of the session the node holds (an event
// waiting on it) with s: false when s fails to, true when it does or
// when there is nothing to try.
func (k *Keeper) trial(sid string, s *session.MegolmInboundSession) bool {
	var ct string
	k.st.View(func(t *store.Txn) error {
		return t.E2Scan(prefixWait(sid), func(key string, _ []byte) bool {
			evID := key[len(prefixWait(sid)):]
			ev, err := k.event(evID)
			if err != nil {
				return true
			}
			enc, ok := encryptedOf(ev)
			if !ok || enc.SessionID != sid {
				return true
			}
			if idx, ok := messageIndex(enc.Ciphertext); ok && idx >= s.FirstKnownIndex() {
				ct = enc.Ciphertext
				return false
			}
			return true
		})
	})
	if ct == "" {
		return true
	}
	c := &session.MegolmInboundSession{}
	if err := c.UnpickleLibOlm(s.PickleLibOlm()); err != nil {
		return false
	}
	_, _, err := c.Decrypt([]byte(ct))
	return err == nil
}

// messageIndex reads a Megolm ciphertext's index without decrypting it.
func messageIndex(ciphertext string) (uint32, bool) {
	raw, err := b64.DecodeString(ciphertext)
	if err != nil {
		return 0, false
	}
	var m message.GroupMessage
	if err := m.Decode(raw); err != nil || !m.HasMessageIndex {
		return 0, false
	}
	return m.MessageIndex, true
}
