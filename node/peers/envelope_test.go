package peers

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"github.com/parley-p2p/parley/node/e2ee"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-p2p/parley/node/store"
)

func testSecret(room string) *roomSecret {
	s := store.RoomSecret{RoomID: room}
	copy(s.Secret[:], "thirty-two bytes of room secret!")
	return newRoomSecret(s)
}

const alicePeer, bobPeer = peer.ID("alice's peer"), peer.ID("bob's peer")

func TestASealedRequestOpensOnlyForItsRoomAndPeers(t *testing.T) {
	rs := testSecret("!room:x")
	lookup := func(kid []byte) (*roomSecret, bool) { return rs, bytes.Equal(kid, rs.kid[:]) }
	body := []byte(`{"room_id":"!room:x","event_ids":["$e"]}`)
	sealed, err := sealRequest(rs, alicePeer, bobPeer, MethodGetEvent, body)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("room")) || (len(sealed)-1-kidSize-nonceSize-16)%sealPad != 0 {
		t.Errorf("sealed request shows its body or is not padded: %d bytes", len(sealed))
	}
	got, method, inner, err := openRequest(lookup, alicePeer, bobPeer, sealed)
	if err != nil || got != rs || method != MethodGetEvent || !bytes.Equal(inner, body) {
		t.Fatalf("opened %v %q %q %v", got, method, inner, err)
	}
	if _, _, _, err := openRequest(lookup, bobPeer, alicePeer, sealed); err == nil {
		t.Error("a request opened as if the responder had sent it")
	}
	if _, _, _, err := openRequest(lookup, "mallory", bobPeer, sealed); err == nil {
		t.Error("a request replayed by another peer opened")
	}
	other := testSecret("!other:x")
	other.req[0] ^= 1
	if _, _, _, err := openRequest(func([]byte) (*roomSecret, bool) { return other, true }, alicePeer, bobPeer, sealed); err == nil {
		t.Error("a request opened under another room's key")
	}

	answer := sealAnswer(rs, alicePeer, bobPeer, sealed, []byte(`{"pdus":[]}`))
	plain, err := openAnswer(rs, alicePeer, bobPeer, sealed, answer)
	if err != nil || string(plain) != `{"pdus":[]}` {
		t.Fatalf("answer opened to %q, %v", plain, err)
	}
	again, _ := sealRequest(rs, alicePeer, bobPeer, MethodGetEvent, body)
	if _, err := openAnswer(rs, alicePeer, bobPeer, again, answer); err == nil {
		t.Error("an answer opened as the answer to another request")
	}
}

func TestARequestForAMethodThatIsNotARoomsIsNotOpened(t *testing.T) {
	rs := testSecret("!room:x")
	sealed, _ := sealRequest(rs, alicePeer, bobPeer, MethodInvite, []byte(`{}`))
	if _, _, _, err := openRequest(func([]byte) (*roomSecret, bool) { return rs, true }, alicePeer, bobPeer, sealed); err == nil {
		t.Error("a sealed invite opened")
	}
}

func TestTopicsChangeWithThePeriodAndOverlapInTheGraceHour(t *testing.T) {
	rs := testSecret("!room:x")
	day := time.Unix(20000*86400, 0)
	mid := rs.keysAt(day.Add(12 * time.Hour))
	if len(mid.Listen) != 0 {
		t.Errorf("mid-period: listening on %d other topics", len(mid.Listen))
	}
	if !strings.HasPrefix(mid.Publish.Topic, "/parley/t/") || strings.Contains(mid.Publish.Topic, "room") {
		t.Errorf("topic %q", mid.Publish.Topic)
	}
	late := rs.keysAt(day.Add(23*time.Hour + 30*time.Minute))
	next := rs.keysAt(day.Add(24*time.Hour + 30*time.Minute))
	if late.Publish.Topic != mid.Publish.Topic || len(late.Listen) != 1 || late.Listen[0].Topic != next.Publish.Topic {
		t.Errorf("in the last hour: publish %q, listen %v; want the next period's %q too", late.Publish.Topic, late.Listen, next.Publish.Topic)
	}
	if len(next.Listen) != 1 || next.Listen[0].Topic != mid.Publish.Topic {
		t.Errorf("in the first hour: listen %v, want the previous period's %q", next.Listen, mid.Publish.Topic)
	}
	if next.Publish.Topic == mid.Publish.Topic {
		t.Error("the topic did not change with the period")
	}
	if a, b := rs.rendezvousAt(day)[0], testSecret("!room:x").rendezvousAt(day.Add(-time.Second))[0]; a == b {
		t.Error("the rendezvous key did not change with the period")
	}
	if rs.topic(1).Topic == testSecretOf(t, "!room:x").topic(1).Topic {
		t.Error("two secrets give one topic")
	}
}

func testSecretOf(t *testing.T, room string) *roomSecret {
	s := store.RoomSecret{RoomID: room}
	if _, err := rand.Read(s.Secret[:]); err != nil {
		t.Fatal(err)
	}
	return newRoomSecret(s)
}

// FuzzOpenRequest: whatever a peer sends as a sealed request, opening it
// never panics, and nothing opens but under the room's key.
func FuzzOpenRequest(f *testing.F) {
	rs := testSecret("!room:x")
	lookup := func(kid []byte) (*roomSecret, bool) { return rs, bytes.Equal(kid, rs.kid[:]) }
	good, _ := sealRequest(rs, alicePeer, bobPeer, MethodGetEvent, []byte(`{"room_id":"!room:x"}`))
	f.Add(good)
	f.Add(append([]byte{1}, rs.kid[:]...))
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{1}, 400))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, method, _, err := openRequest(lookup, alicePeer, bobPeer, data)
		if err != nil {
			return
		}
		if got != rs || !sealedMethods[method] {
			t.Fatalf("opened for %v, method %q", got, method)
		}
		if _, err := openAnswer(rs, alicePeer, bobPeer, data, data); err == nil {
			t.Fatal("a request opened as an answer")
		}
	})
}

// FuzzOpenAnswer: whatever a peer answers, opening it never panics.
func FuzzOpenAnswer(f *testing.F) {
	rs := testSecret("!room:x")
	req, _ := sealRequest(rs, alicePeer, bobPeer, MethodGetEvent, []byte(`{}`))
	f.Add(sealAnswer(rs, alicePeer, bobPeer, req, []byte(`{}`)))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, data []byte) {
		if out, err := openAnswer(rs, alicePeer, bobPeer, req, data); err == nil && len(out) > len(data) {
			t.Fatalf("opened %d bytes into %d", len(data), len(out))
		}
	})
}

// BenchmarkRequestEnvelope: sealing and opening a room request and its
// answer.
func BenchmarkRequestEnvelope(b *testing.B) {
	rs := testSecret("!room:x")
	lookup := func(kid []byte) (*roomSecret, bool) { return rs, true }
	body := []byte(`{"room_id":"!room:x","event_ids":["$abcdefabcdefabcdefabcdefabcdefabcdefabcdefa"]}`)
	answer := bytes.Repeat([]byte{'a'}, 4000)
	for b.Loop() {
		req, _ := sealRequest(rs, alicePeer, bobPeer, MethodGetEvent, body)
		if _, _, _, err := openRequest(lookup, alicePeer, bobPeer, req); err != nil {
			b.Fatal(err)
		}
		if _, err := openAnswer(rs, alicePeer, bobPeer, req, sealAnswer(rs, alicePeer, bobPeer, req, answer)); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzOpenInviteSeal: whatever a stranger sends as an invite, opening it
// with the node's KEM key never panics and opens nothing.
func FuzzOpenInviteSeal(f *testing.F) {
	_, key, _ := ed25519.GenerateKey(nil)
	kem, err := e2ee.DeriveKEM(key)
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{7}, 1120))
	f.Add(bytes.Repeat([]byte{7}, 1200))
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, err := kem.Open(inviteInfo("a", "b"), data); err == nil {
			t.Fatal("random bytes opened as a seal")
		}
	})
}
