package e2ee

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/parley-p2p/parley/node/dag"
	"github.com/parley-p2p/parley/rooms"
)

// Fuzz targets for what a peer hands a node (issue 11, test 7): share
// events, Megolm ciphertexts and HPKE seals. Their seeds run as normal
// tests; `go test -fuzz` explores further, by hand.

// fuzzRoom is a room of alice (x) and zoe (z), with a message of x's
// that z has decrypted, and x's share and handover contents for z.
type fuzzRoom struct {
	x, z    *tnode
	r       *dag.Room
	m       *rooms.Event
	enc     encrypted
	share   []byte // a session share sealed to z
	history []byte // a history handover sealed to z
	seal    []byte // a raw HPKE seal to z (the share's)
}

func newFuzzRoom(tb testing.TB) *fuzzRoom {
	net := &tnet{}
	f := &fuzzRoom{x: newNode(tb, net, "alice"), z: newNode(tb, net, "zoe")}
	f.r = f.x.createRoom("shared")
	joinRoom(f.x, f.z, f.r)
	f.m = f.x.msg(f.r, "fuzz me")
	f.z.deliver(nil)
	if f.z.body(f.m.ID()) != "fuzz me" {
		tb.Fatal("zoe's node did not decrypt the seed message")
	}
	json.Unmarshal(f.m.Content(), &f.enc)
	for _, ev := range net.events() {
		if ev.Type() == ShareType && ev.Sender() == f.x.user {
			var sh share
			json.Unmarshal(ev.Content(), &sh)
			if sh.Kind == kindSession && sh.Seals[f.z.name] != "" && f.share == nil {
				f.share = ev.Content()
				f.seal, _ = b64.DecodeString(sh.Seals[f.z.name])
			}
			if sh.Kind == kindHistory && sh.For == f.z.name {
				f.history = ev.Content()
			}
		}
	}
	if f.share == nil {
		tb.Fatal("no share for zoe's node")
	}
	if f.history == nil {
		f.history = f.share
	}
	return f
}

func FuzzParseShare(f *testing.F) {
	fr := newFuzzRoom(f)
	f.Add(fr.share)
	f.Add(fr.history)
	var split share
	json.Unmarshal(fr.share, &split)
	split.Part = [2]int{2, 3}
	b, _ := json.Marshal(split)
	f.Add(b)
	f.Add([]byte(`{"v":1,"kind":"history","kem":"x-wing","for":"x","nonce":"","seal":"AAAA"}`))
	f.Fuzz(func(t *testing.T, content []byte) {
		var sh share
		if json.Unmarshal(content, &sh) != nil {
			return
		}
		fr.z.k.openSessionShare(fr.r.ID, fr.x.name, sh)
		fr.z.k.openHistory(fr.r.ID, fr.x.name, sh)
		if in := fr.z.k.inbound(fr.enc.SessionID); in == nil || in.rec.Owner != fr.x.name {
			t.Fatal("a share replaced the owner of alice's session")
		}
	})
}

func FuzzMegolmDecrypt(f *testing.F) {
	fr := newFuzzRoom(f)
	f.Add(fr.enc.Ciphertext)
	f.Add(fr.enc.Ciphertext[:len(fr.enc.Ciphertext)/2])
	f.Add("")
	f.Add("AwgAEhA")
	f.Fuzz(func(t *testing.T, ct string) {
		enc := fr.enc
		enc.Ciphertext = ct
		plain, _ := fr.z.k.decrypt(fr.r.ID, fr.m, enc)
		if plain == nil {
			return
		}
		var p dag.Plain
		if err := json.Unmarshal(plain, &p); err != nil {
			t.Fatalf("a plain view that is not JSON: %q", plain)
		}
		if p.Status == "" && ct != fr.enc.Ciphertext {
			t.Fatalf("another ciphertext decrypted as alice's message: %q", ct)
		}
	})
}

func FuzzHPKEOpen(f *testing.F) {
	fr := newFuzzRoom(f)
	info := shareInfo(fr.r.ID, fr.x.name, fr.z.name, fr.enc.SessionID)
	f.Add(fr.seal)
	f.Add(fr.seal[:len(fr.seal)-1])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, sealed []byte) {
		pt, err := fr.z.k.kem.Open(info, sealed)
		if err == nil && string(sealed) != string(fr.seal) {
			t.Fatalf("a seal that is not the one made opened: %x", pt)
		}
	})
}

// FuzzEncryptedOf: reading a ciphertext from an event's tree
// (encryptedOf) accepts only what decoding its content's JSON
// (parseEncrypted) accepts, and reads the same.
func FuzzEncryptedOf(f *testing.F) {
	f.Add(`{"algorithm":"m.megolm.v1.aes-sha2","ciphertext":"AwgA","device_id":"D","sender_key":"k","session_id":"s"}`)
	f.Add(`{"name":"x","org.parley.encrypted":{"algorithm":"m.megolm.v1.aes-sha2","ciphertext":"AwgA","session_id":"s"}}`)
	f.Add(`{"algorithm":"m.megolm.v1.aes-sha2","ciphertext":"AwgA","session_id":"s","org.parley.encrypted":null}`)
	f.Add(`{"algorithm":"m.megolm.v1.aes-sha2","ciphertext":1,"session_id":"s"}`)
	f.Fuzz(func(t *testing.T, content string) {
		raw := `{"auth_events":[],"content":` + content + `,"depth":1,"origin_server_ts":1,"prev_events":[],` +
			`"room_id":"!r:x","sender":"@a:x","type":"m.room.encrypted"}`
		ev, err := rooms.ParseEventWithID([]byte(raw), rooms.V11, "$e")
		if err != nil {
			return
		}
		got, ok := encryptedOf(ev)
		want, wantOK := parseEncrypted(ev.Content())
		if ok && (!wantOK || got != want) {
			t.Fatalf("encryptedOf = %+v, %v; parseEncrypted = %+v, %v", got, ok, want, wantOK)
		}
		if !ok && wantOK && !strings.Contains(content, "null") && strings.ToLower(content) == content {
			t.Fatalf("encryptedOf refused what parseEncrypted read: %+v", want)
		}
	})
}
