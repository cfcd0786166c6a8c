package e2ee

import (
	"context"
	"encoding/json"
	"errors"
	"strings"

	"maunium.net/go/mautrix/crypto/goolm/session"
	"maunium.net/go/mautrix/crypto/olm"

	"github.com/parley-p2p/parley/node/dag"
	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/rooms"
)

// parseEncrypted reads the ciphertext of an event's content: the
// content itself (m.room.encrypted) or its EncryptedField.
func parseEncrypted(content json.RawMessage) (encrypted, bool) {
	var c struct {
		encrypted
		Field *encrypted `json:"org.parley.encrypted"`
	}
	if json.Unmarshal(content, &c) != nil {
		return encrypted{}, false
	}
	enc := c.encrypted
	if c.Field != nil {
		enc = *c.Field
	}
	if enc.Algorithm != Algorithm || enc.SessionID == "" || enc.Ciphertext == "" {
		return encrypted{}, false
	}
	return enc, true
}

// encryptedOf is parseEncrypted of an event's content, read from the
// event's parsed tree instead of decoding its JSON again (this runs for
// every event received). It is stricter: each field must be a string
// where parseEncrypted would also take null.
func encryptedOf(ev *rooms.Event) (encrypted, bool) {
	var at []string
	if ev.ContentHas(EncryptedField) {
		at = []string{EncryptedField, ""}
	} else {
		at = []string{""}
	}
	field := func(name string) (string, bool) {
		at[len(at)-1] = name
		s, ok := ev.ContentString(at...)
		return s, ok || !ev.ContentHas(at...)
	}
	var enc encrypted
	var ok [5]bool
	enc.Algorithm, ok[0] = field("algorithm")
	enc.SenderKey, ok[1] = field("sender_key")
	enc.Ciphertext, ok[2] = field("ciphertext")
	enc.SessionID, ok[3] = field("session_id")
	enc.DeviceID, ok[4] = field("device_id")
	if ok != [5]bool{true, true, true, true, true} ||
		enc.Algorithm != Algorithm || enc.SessionID == "" || enc.Ciphertext == "" {
		return encrypted{}, false
	}
	// What outlives the event (keys of maps of waiting events) is not
	// a slice of its bytes.
	enc.SenderKey, enc.SessionID, enc.DeviceID = strings.Clone(enc.SenderKey), strings.Clone(enc.SessionID), strings.Clone(enc.DeviceID)
	return enc, true
}

// Open opens an event a room admitted: a key share is taken in (and the
// events that waited on its session are decrypted in the background); a
// ciphertext is decrypted if the node holds its session, else the event
// waits for it; a join of another server starts a history handover.
func (k *Keeper) Open(r *dag.Room, ev *rooms.Event) []byte {
	switch ev.Type() {
	case ShareType:
		k.openShare(r, ev)
		return nil
	case "m.room.member":
		k.noteJoin(r, ev)
	}
	enc, ok := encryptedOf(ev)
	if !ok || (ev.Type() != EncryptedType && !ev.IsState() && ev.Type() != "m.room.redaction") {
		return nil
	}
	in := k.inbound(enc.SessionID)
	plain, wait := k.decryptWith(in, r.ID, ev, enc)
	if wait {
		k.await(r.ID, ev, enc.SessionID, in)
	}
	return plain
}

// waiter is an event waiting on a session, as await holds it.
type waiter struct {
	room string
	ev   *rooms.Event
}

// await records that an event waits on a session: in memory at once,
// and in the store in the background (keyWait), so that retryWaiting,
// which reads both, finds it whenever it runs. seen is the session the
// event failed to decrypt with (nil: none held): a session accepted
// since then, whose retry may have looked before this record was made,
// is retried once more. The caller holds the room's lock, and the
// engine takes the event in only once it returns: the memory record
// carries the event, and outlives the store's until the engine holds it.
func (k *Keeper) await(roomID string, ev *rooms.Event, sid string, seen *inbound) {
	evID := ev.ID()
	k.waitMu.Lock()
	if k.waits == nil {
		k.waits = map[string]map[string]waiter{}
	}
	if k.waits[sid] == nil {
		k.waits[sid] = map[string]waiter{}
	}
	k.waits[sid][evID] = waiter{room: roomID, ev: ev}
	k.waitMu.Unlock()
	key := keyWait(sid, evID)
	k.st.UpdateThen(func(t *store.Txn) error {
		if !k.unwritten(sid, evID) {
			return nil // a retry decrypted it meanwhile
		}
		return t.E2Set(key, []byte(roomID))
	}, func(err error) {
		// A failed write fails the event's own, queued after it: the
		// event is opened again when it comes again.
		if err != nil || k.engine == nil {
			k.unwait(sid, evID)
		} else if _, held := k.engine.Cached(evID); held {
			k.unwait(sid, evID)
		}
	})
	if k.inbound(sid) != seen {
		k.goJob(func(ctx context.Context) { k.retryWaiting(ctx, sid) })
	}
}

// unwritten reports whether an event's wait is still only in memory.
func (k *Keeper) unwritten(sid, evID string) bool {
	k.waitMu.Lock()
	defer k.waitMu.Unlock()
	_, ok := k.waits[sid][evID]
	return ok
}

// unwait forgets an event's wait in memory: written, or decrypted.
func (k *Keeper) unwait(sid, evID string) {
	k.waitMu.Lock()
	defer k.waitMu.Unlock()
	if m := k.waits[sid]; m != nil {
		delete(m, evID)
		if len(m) == 0 {
			delete(k.waits, sid)
		}
	}
}

func forged(evType string) []byte {
	b, _ := json.Marshal(dag.Plain{Type: evType, Status: dag.PlainForged})
	return b
}

// decrypt decrypts an event's ciphertext. wait is set when the node
// does not hold the key it needs yet.
func (k *Keeper) decrypt(roomID string, ev *rooms.Event, enc encrypted) (plain []byte, wait bool) {
	return k.decryptWith(k.inbound(enc.SessionID), roomID, ev, enc)
}

// decryptWith is decrypt with the session the node holds (nil: none).
func (k *Keeper) decryptWith(in *inbound, roomID string, ev *rooms.Event, enc encrypted) (plain []byte, wait bool) {
	if in == nil {
		return nil, true
	}
	sender, err := rooms.ServerOf(ev.Sender())
	if err != nil || in.rec.Owner != sender || in.rec.Room != roomID {
		// A member speaking in a session that is not its own: never
		// shown as that sender's words.
		return forged(ev.Type()), false
	}
	in.mu.Lock()
	// No record of which event used which message index: an event
	// whose sender's server owns the session is signed by the owner
	// itself, and the owner can write anything in its own session, so a
	// repeated index proves nothing (in Matrix it guards against a
	// homeserver, which parley's device-run nodes do not have).
	pt, _, err := decryptOwned(in.s, []byte(enc.Ciphertext))
	in.mu.Unlock()
	if errors.Is(err, olm.ErrUnknownMessageIndex) {
		return nil, true // a handover from an earlier index may come
	}
	if err != nil {
		// With a ratchet someone handed over, the owner's own may still
		// come: the event waits for it.
		k.log.Debug("undecryptable", "event", ev.ID(), "err", err)
		return nil, !in.rec.Verified
	}
	var p inner
	if json.Unmarshal(pt, &p) != nil || p.RoomID != roomID || p.Type == "" || len(p.Content) == 0 || p.Content[0] != '{' {
		return forged(ev.Type()), false
	}
	switch {
	case ev.IsState():
		if p.Type != ev.Type() || p.StateKey == nil || *p.StateKey != *ev.StateKey() {
			return forged(ev.Type()), false
		}
	case ev.Type() == "m.room.redaction":
		if p.Type != ev.Type() || p.StateKey != nil {
			return forged(ev.Type()), false
		}
	default:
		if p.StateKey != nil || p.Type == "m.room.redaction" {
			return forged(ev.Type()), false
		}
	}
	content := p.Content
	if ev.Type() != EncryptedType {
		// What the auth rules read wins over what the ciphertext says.
		content = overlayKept(ev, content)
	}
	plain, _ = json.Marshal(dag.Plain{Type: p.Type, Content: content})
	return plain, false
}

// overlayKept sets in content the keys the event carries in the clear
// (those the auth rules read, and the KEM key).
func overlayKept(ev *rooms.Event, content json.RawMessage) json.RawMessage {
	kept, err := rooms.RedactContent(ev.Type(), ev.Content())
	if err != nil {
		return content
	}
	var c, k, wire map[string]json.RawMessage
	if json.Unmarshal(content, &c) != nil || json.Unmarshal(kept, &k) != nil {
		return content
	}
	for key, v := range k {
		c[key] = v
	}
	if json.Unmarshal(ev.Content(), &wire) == nil && wire[KEMField] != nil {
		c[KEMField] = wire[KEMField]
	}
	out, err := rooms.MarshalCanonical(c)
	if err != nil {
		return content
	}
	return out
}

// openShare takes in a share event addressed to this node.
func (k *Keeper) openShare(r *dag.Room, ev *rooms.Event) {
	sender, err := rooms.ServerOf(ev.Sender())
	if err != nil || sender == k.server {
		return
	}
	var sh share
	if json.Unmarshal(ev.Content(), &sh) != nil || sh.V != 1 || sh.KEM != KEMAlg {
		return
	}
	var got []string
	switch sh.Kind {
	case kindSession:
		if sid, ok := k.openSessionShare(r.ID, sender, sh); ok {
			got = append(got, sid)
		}
	case kindHistory:
		got = k.openHistory(r.ID, sender, sh)
	}
	for _, sid := range got {
		k.goJob(func(ctx context.Context) { k.retryWaiting(ctx, sid) })
	}
}

// openSessionShare takes in a new session from its owner: the binding
// must name the event's sender server as owner, the seal must open for
// this node under the exact info, and the sharing message must be
// signed by the session's key, which is the session ID.
func (k *Keeper) openSessionShare(roomID, owner string, sh share) (string, bool) {
	sealed, ok := sh.Seals[k.server]
	if !ok || sh.Algorithm != Algorithm || !verifyBinding(roomID, owner, sh.SessionID, sh.Binding) {
		return "", false
	}
	ct, err := b64.DecodeString(sealed)
	if err != nil {
		return "", false
	}
	pt, err := k.kem.Open(shareInfo(roomID, owner, k.server, sh.SessionID), ct)
	if err != nil {
		return "", false
	}
	in, err := session.NewMegolmInboundSession([]byte(b64.EncodeToString(pt)))
	if err != nil || string(in.ID()) != sh.SessionID {
		return "", false
	}
	more, err := k.accept(roomID, owner, sh.Binding, in, true)
	if err != nil {
		k.log.Info("key share refused", "room", roomID, "owner", owner, "session", sh.SessionID)
	}
	return sh.SessionID, more
}

// openHistory takes in the sessions a member handed this node when it
// joined: each must carry its owner's binding and be an export of that
// session; accept then checks it against what the node holds.
func (k *Keeper) openHistory(roomID, sender string, sh share) []string {
	if sh.For != k.server || sh.Nonce == "" {
		return nil
	}
	ct, err := b64.DecodeString(sh.Seal)
	if err != nil {
		return nil
	}
	pt, err := k.kem.Open(historyInfo(roomID, sender, k.server, sh.Nonce), ct)
	if err != nil {
		return nil
	}
	var list []handed
	if json.Unmarshal(pt, &list) != nil || len(list) > maxHanded {
		return nil
	}
	var got []string
	for _, h := range list {
		if !verifyBinding(roomID, h.O, h.S, h.B) {
			continue
		}
		in, err := session.NewMegolmInboundSessionFromExport([]byte(h.K))
		if err != nil || string(in.ID()) != h.S {
			continue
		}
		if more, _ := k.accept(roomID, h.O, h.B, in, false); more {
			got = append(got, h.S)
		}
	}
	return got
}

// retryWaiting decrypts the events that waited on a session and hands
// their plaintext to the engine.
func (k *Keeper) retryWaiting(ctx context.Context, sid string) {
	type waiting struct {
		ev, room string
		event    *rooms.Event // nil: read from the engine
	}
	var list []waiting
	// Memory first: a wait leaves it only once written.
	listed := map[string]bool{}
	k.waitMu.Lock()
	for ev, w := range k.waits[sid] {
		list = append(list, waiting{ev, w.room, w.ev})
		listed[ev] = true
	}
	k.waitMu.Unlock()
	k.st.View(func(t *store.Txn) error {
		return t.E2Scan(prefixWait(sid), func(key string, val []byte) bool {
			if ev := key[len(prefixWait(sid)):]; !listed[ev] {
				list = append(list, waiting{ev, string(val), nil})
			}
			return true
		})
	})
	for _, w := range list {
		if ctx.Err() != nil {
			return
		}
		r := k.engine.Room(w.room)
		ev, err := w.event, error(nil)
		if ev == nil {
			ev, err = k.event(w.ev)
		}
		if r == nil || err != nil {
			continue
		}
		enc, ok := encryptedOf(ev)
		if !ok {
			continue
		}
		plain, wait := k.decrypt(r.ID, ev, enc)
		if wait {
			continue
		}
		if plain != nil && k.setPlain != nil {
			if err := k.setPlain(r, w.ev, plain); err != nil {
				k.log.Warn("late plaintext not kept", "event", w.ev, "err", err)
				continue
			}
		}
		k.unwait(sid, w.ev)
		key := keyWait(sid, w.ev)
		k.st.UpdateAsync(func(t *store.Txn) error { return t.E2Delete(key) })
	}
}

// Readable reports whether the node can decrypt an event's ciphertext:
// it holds the session, the session is the sender's own, and the
// ciphertext opens. It records nothing (checks and diagnostics).
func (k *Keeper) Readable(roomID string, ev *rooms.Event) bool {
	enc, ok := encryptedOf(ev)
	if !ok {
		return false
	}
	plain, _ := k.decrypt(roomID, ev, enc)
	if plain == nil {
		return false
	}
	p, err := dag.DecodePlain(plain)
	return err == nil && p.Status == ""
}
