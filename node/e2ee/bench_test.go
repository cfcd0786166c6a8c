package e2ee

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"strings"
	"testing"

	"github.com/parley-p2p/parley/rooms"
)

// Figures for the README (not asserted): what encryption costs per
// message and per rotation.

func message1KiB() string {
	return `{"msgtype":"m.text","body":"` + strings.Repeat("x", 1024) + `"}`
}

func BenchmarkEncrypt1KiB(b *testing.B) {
	net := &tnet{}
	x := newNode(b, net, "alice")
	r := x.createRoom("shared")
	x.msg(r, "start the session")
	content := json.RawMessage(message1KiB())
	b.ReportAllocs()
	for b.Loop() {
		if _, _, _, err := x.k.Seal(r, x.user, "m.room.message", nil, content); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecrypt1KiB(b *testing.B) {
	fr := newFuzzRoom(b)
	pt, _ := json.Marshal(inner{Type: "m.room.message", Content: json.RawMessage(message1KiB()), RoomID: fr.r.ID})
	var cts []encrypted
	for range b.N {
		enc, err := fr.x.k.encrypt(fr.r, pt)
		if err != nil {
			b.Fatal(err)
		}
		cts = append(cts, enc)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		// One event stands for all: decryption reads only its sender.
		if plain, _ := fr.z.k.decrypt(fr.r.ID, fr.m, cts[i]); plain == nil {
			b.Fatal("not decrypted")
		}
	}
}

// BenchmarkRotation50 is a rotation in a room of 50 member servers: a
// new session, its own inbound copy, and one X-Wing seal for each of the
// 49 others, in as many share events as the size limit calls for.
func BenchmarkRotation50(b *testing.B) {
	net := &tnet{}
	x := newNode(b, net, "alice")
	r := x.createRoom("shared")
	v := x.k.readView(r.Head()) // a copy of its own, to add servers to
	for range 49 {
		pub, priv, _ := ed25519.GenerateKey(rand.Reader)
		k, err := DeriveKEM(priv)
		if err != nil {
			b.Fatal(err)
		}
		raw, _ := json.Marshal(k.Doc())
		pk, _ := ParseKEMDoc(raw)
		v.joined[rooms.ServerName(pub)] = pk
	}
	var bytes, events int
	for b.Loop() {
		o, err := x.k.newOutbound(r.ID, v)
		if err != nil {
			b.Fatal(err)
		}
		contents, _, err := x.k.shareContents(r.ID, o.id, o.binding, 0, o.key0, v.joined)
		if err != nil {
			b.Fatal(err)
		}
		bytes, events = 0, len(contents)
		for _, c := range contents {
			bytes += len(c)
		}
	}
	b.ReportMetric(float64(bytes), "share-bytes/op")
	b.ReportMetric(float64(events), "share-events/op")
}
