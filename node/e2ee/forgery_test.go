package e2ee

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"testing"
	"time"

	"github.com/parley-p2p/parley/internal/testkit"
	"github.com/parley-p2p/parley/node/dag"
	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/rooms"
)

// threeMembers is a room of alice (x), yves (y, the forger) and zoe (z).
func threeMembers(t *testing.T) (net *tnet, x, y, z *tnode, r *dag.Room) {
	net = &tnet{}
	x, y, z = newNode(t, net, "alice"), newNode(t, net, "yves"), newNode(t, net, "zoe")
	r = x.createRoom("shared")
	joinRoom(x, y, r)
	joinRoom(x, z, r)
	y.deliver(nil)
	z.deliver(nil)
	return net, x, y, z, r
}

func (n *tnode) sendRaw(roomID, typ string, content any) *rooms.Event {
	n.t.Helper()
	b, err := json.Marshal(content)
	if err != nil {
		n.t.Fatal(err)
	}
	ev, err := n.e.Send(context.Background(), n.room(roomID), n.user, typ, nil, b, "", "")
	if err != nil {
		n.t.Fatal(err)
	}
	return ev
}

func (n *tnode) kemKey() PublicKey {
	raw, _ := json.Marshal(n.k.KEM().Doc())
	pk, err := ParseKEMDoc(raw)
	if err != nil {
		n.t.Fatal(err)
	}
	return pk
}

func TestAShareForgedForAnotherMembersSessionIsRefused(t *testing.T) {
	_, x, y, z, r := threeMembers(t)
	// A new session that zoe's node has not heard of yet.
	x.send(r, x.user, "m.room.history_visibility", new(string), `{"history_visibility":"invited"}`)
	mx := x.msg(r, "x says")
	x.k.mu.Lock()
	o := x.k.outs[r.ID]
	sid, binding, key0 := o.id, o.binding, o.key0
	x.k.mu.Unlock()
	y.deliver(nil)
	rz := z.room(r.ID)

	// yves holds alice's real sharing message and re-shares it as his.
	ownSig := b64.EncodeToString(ed25519.Sign(y.key, bindingMsg(r.ID, y.name, sid)))
	for name, bind := range map[string]string{"a binding yves made": ownSig, "alice's binding replayed": binding} {
		sealed, err := Seal(z.kemKey(), shareInfo(r.ID, y.name, z.name, sid), key0)
		if err != nil {
			t.Fatal(err)
		}
		forged := y.sendRaw(r.ID, ShareType, share{V: 1, Kind: kindSession, Algorithm: Algorithm, KEM: KEMAlg, Part: [2]int{1, 1},
			SessionID: sid, Binding: bind, Seals: map[string]string{z.name: b64.EncodeToString(sealed)}})
		z.k.Open(rz, forged) // before alice's own share reaches zoe
		if in := z.k.inbound(sid); in != nil {
			t.Fatalf("%s: zoe's node took alice's session from yves (owner %s)", name, in.rec.Owner)
		}
	}
	z.deliver(nil)
	if got := z.body(mx.ID()); got != "x says" {
		t.Fatalf("zoe sees %q", got)
	}
	if in := z.k.inbound(sid); in == nil || in.rec.Owner != x.name {
		t.Fatal("alice's session is not alice's at zoe's node")
	}
}

func TestACiphertextClaimingAnotherSendersSessionIsForged(t *testing.T) {
	_, x, y, z, r := threeMembers(t)
	mx := x.msg(r, "x says")
	y.deliver(nil)
	// yves sends alice's ciphertext (a valid Megolm message of her
	// session) as his own event.
	copied := y.sendRaw(r.ID, EncryptedType, json.RawMessage(mx.Content()))
	z.deliver(nil)
	if got := z.body(mx.ID()); got != "x says" {
		t.Fatalf("zoe sees %q for alice's message", got)
	}
	if p := z.shown(copied.ID()); p == nil || p.Status != dag.PlainForged {
		t.Fatalf("yves's copy is shown as %+v", p)
	}
}

func TestABogusExportDoesNotReplaceAGoodSession(t *testing.T) {
	net := &tnet{}
	x, y, z := newNode(t, net, "alice"), newNode(t, net, "yves"), newNode(t, net, "zoe")
	x.vis = func(string, string, string) bool { return false } // hand zoe nothing older
	r := x.createRoom("shared")
	joinRoom(x, y, r)
	x.msg(r, "m0")
	x.msg(r, "m1")
	joinRoom(x, z, r)
	x.msg(r, "m2") // zoe gets the session from here
	y.deliver(nil)
	z.deliver(nil)
	x.k.mu.Lock()
	sid, binding := x.k.outs[r.ID].id, x.k.outs[r.ID].binding
	x.k.mu.Unlock()
	in := z.k.inbound(sid)
	if in == nil || in.first() != 2 {
		t.Fatalf("zoe's node holds %+v", in)
	}

	// yves hands zoe a "history" of alice's session from index 0: the
	// binding is alice's own, the ratchet garbage.
	raw := []byte{1}
	raw = binary.BigEndian.AppendUint32(raw, 0)
	junk := make([]byte, 128)
	rand.Read(junk)
	raw = append(raw, junk...)
	pub, _ := b64.DecodeString(sid)
	raw = append(raw, pub...)
	list, _ := json.Marshal([]handed{{S: sid, O: x.name, B: binding, I: 0, K: b64.EncodeToString(raw)}})
	nonce := "bm9uY2Vub25jZW5vbmNl"
	sealed, err := Seal(z.kemKey(), historyInfo(r.ID, y.name, z.name, nonce), list)
	if err != nil {
		t.Fatal(err)
	}
	y.sendRaw(r.ID, ShareType, share{V: 1, Kind: kindHistory, KEM: KEMAlg, Part: [2]int{1, 1}, For: z.name, Nonce: nonce, Seal: b64.EncodeToString(sealed)})
	z.deliver(nil)
	if in := z.k.inbound(sid); in == nil || in.first() != 2 || !in.rec.Verified {
		t.Fatalf("the bogus export replaced zoe's session: %+v", in)
	}
	m3 := x.msg(r, "m3")
	z.deliver(nil)
	if got := z.body(m3.ID()); got != "m3" {
		t.Fatalf("zoe sees %q", got)
	}
}

func TestACiphertextMovedToAnotherRoomOrStateSlotIsForged(t *testing.T) {
	_, x, _, z, r := threeMembers(t)
	x.msg(r, "start")
	empty := ""
	cases := map[string]inner{
		"another state type": {Type: "m.room.name", StateKey: &empty, Content: json.RawMessage(`{"name":"n"}`), RoomID: r.ID},
		"another state key":  {Type: "m.room.topic", StateKey: new(string("other")), Content: json.RawMessage(`{"topic":"t"}`), RoomID: r.ID},
		"another room":       {Type: "m.room.topic", StateKey: &empty, Content: json.RawMessage(`{"topic":"t"}`), RoomID: "!elsewhere"},
		"no state key":       {Type: "m.room.topic", Content: json.RawMessage(`{"topic":"t"}`), RoomID: r.ID},
	}
	for name, in := range cases {
		pt, _ := json.Marshal(in)
		enc, err := x.k.encrypt(r, pt)
		if err != nil {
			t.Fatal(err)
		}
		content, _ := json.Marshal(map[string]any{EncryptedField: enc})
		ev, err := x.e.Send(context.Background(), r, x.user, "m.room.topic", &empty, content, "", "")
		if err != nil {
			t.Fatal(err)
		}
		z.deliver(nil)
		if p := z.shown(ev.ID()); p == nil || p.Status != dag.PlainForged {
			t.Errorf("%s: shown as %+v", name, p)
		}
	}
}

func TestAnEventABogusExportFailedOnDecryptsWhenTheOwnersShareComes(t *testing.T) {
	_, x, y, z, r := threeMembers(t)
	x.send(r, x.user, "m.room.history_visibility", new(string), `{"history_visibility":"invited"}`)
	mx := x.msg(r, "x says")
	x.k.mu.Lock()
	sid, binding := x.k.outs[r.ID].id, x.k.outs[r.ID].binding
	x.k.mu.Unlock()
	rz := z.room(r.ID)

	// Before alice's share reaches zoe, yves hands zoe a bogus ratchet
	// for alice's session, and zoe's node meets alice's message.
	raw := binary.BigEndian.AppendUint32([]byte{1}, 0)
	raw = append(raw, make([]byte, 128)...)
	pub, _ := b64.DecodeString(sid)
	raw = append(raw, pub...)
	list, _ := json.Marshal([]handed{{S: sid, O: x.name, B: binding, I: 0, K: b64.EncodeToString(raw)}})
	nonce := "bm9uY2Vub25jZW5vbmNl"
	sealed, err := Seal(z.kemKey(), historyInfo(r.ID, y.name, z.name, nonce), list)
	if err != nil {
		t.Fatal(err)
	}
	bogus := y.sendRaw(r.ID, ShareType, share{V: 1, Kind: kindHistory, KEM: KEMAlg, Part: [2]int{1, 1}, For: z.name, Nonce: nonce, Seal: b64.EncodeToString(sealed)})
	z.k.Open(rz, bogus)
	if in := z.k.inbound(sid); in == nil || in.rec.Verified {
		t.Fatal("zoe's node did not take the handed-over ratchet (the test expects it to)")
	}
	if p := z.k.Open(rz, mx); p != nil {
		t.Fatalf("decrypted with a bogus ratchet: %s", p)
	}
	testkit.WaitFor(t, 10*time.Second, "the message to wait for a better key", func() bool {
		found := false
		z.st.View(func(t *store.Txn) error {
			_, err := t.E2Get(keyWait(sid, mx.ID()))
			found = err == nil
			return nil
		})
		return found
	})
	z.deliver(nil) // alice's share, then the message again
	testkit.WaitFor(t, 10*time.Second, "alice's message at zoe's node", func() bool { return z.body(mx.ID()) == "x says" })
	if in := z.k.inbound(sid); in == nil || !in.rec.Verified {
		t.Fatal("alice's own session did not replace the bogus one")
	}
}
