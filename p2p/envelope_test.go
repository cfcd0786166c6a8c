package p2p

import (
	"bytes"
	"testing"
)

func testAEAD() (*[32]byte, string) {
	var key [32]byte
	copy(key[:], "a key of thirty-two bytes, exact")
	return &key, RoomTopicPrefix + "TESTTOPIC"
}

func TestASealedMessageOpensOnlyUnderItsKeyAndTopic(t *testing.T) {
	key, topic := testAEAD()
	aead := newTopicAEAD(key)
	for _, n := range []int{0, 1, 200, 243, 244, 245, 5000} {
		payload := bytes.Repeat([]byte{'p'}, n)
		sealed := sealMessage(aead, topic, 7, 300, payload)
		if (len(sealed)-envelopeOverhead)%envelopePad != 0 || len(sealed) != sealedSize(7, 300, n) {
			t.Errorf("payload of %d: sealed to %d bytes, not padded to %d", n, len(sealed), envelopePad)
		}
		stream, seq, got, err := openMessage(aead, topic, sealed)
		if err != nil || stream != 7 || seq != 300 || !bytes.Equal(got, payload) {
			t.Fatalf("payload of %d: opened %d, %d, %d bytes, %v", n, stream, seq, len(got), err)
		}
		if _, _, _, err := openMessage(aead, topic+"x", sealed); err == nil {
			t.Errorf("payload of %d: opened under another topic", n)
		}
		var other [32]byte
		if _, _, _, err := openMessage(newTopicAEAD(&other), topic, sealed); err == nil {
			t.Errorf("payload of %d: opened under another key", n)
		}
		for _, i := range []int{0, 1, 30, len(sealed) - 1} {
			bad := bytes.Clone(sealed)
			bad[i] ^= 1
			if _, _, _, err := openMessage(aead, topic, bad); err == nil {
				t.Errorf("payload of %d: opened with byte %d flipped", n, i)
			}
		}
	}
}

func TestTwoSealsOfOneMessageDiffer(t *testing.T) {
	key, topic := testAEAD()
	aead := newTopicAEAD(key)
	a, b := sealMessage(aead, topic, 1, 1, []byte("same")), sealMessage(aead, topic, 1, 1, []byte("same"))
	if bytes.Equal(a, b) {
		t.Error("two seals of the same message are equal: the nonce is not random")
	}
}

// FuzzOpenMessage: whatever a peer sends on a topic, opening it never
// panics, and what opens was sealed under the key (never, for random
// bytes) and comes back whole.
func FuzzOpenMessage(f *testing.F) {
	key, topic := testAEAD()
	aead := newTopicAEAD(key)
	f.Add(sealMessage(aead, topic, 1, 1, []byte(`{"type":"m.room.message"}`)))
	f.Add(sealMessage(aead, topic, 1<<40, 1<<50, nil))
	f.Add([]byte{1})
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{1}, envelopeOverhead+envelopePad))
	f.Fuzz(func(t *testing.T, data []byte) {
		stream, seq, payload, err := openMessage(aead, topic, data)
		if err != nil {
			return
		}
		if stream == 0 || seq == 0 {
			t.Fatalf("opened with stream %d, seq %d", stream, seq)
		}
		resealed := sealMessage(aead, topic, stream, seq, payload)
		if len(resealed) != len(data) {
			t.Fatalf("opened %d bytes, which seal to %d", len(data), len(resealed))
		}
	})
}

// BenchmarkEnvelope: sealing and opening one room message of a typical
// event's size.
func BenchmarkEnvelope(b *testing.B) {
	key, topic := testAEAD()
	aead := newTopicAEAD(key)
	payload := bytes.Repeat([]byte{'e'}, 1000)
	sealed := sealMessage(aead, topic, 7, 300, payload)
	b.Run("seal", func(b *testing.B) {
		b.SetBytes(int64(len(payload)))
		for b.Loop() {
			sealMessage(aead, topic, 7, 300, payload)
		}
	})
	b.Run("open", func(b *testing.B) {
		b.SetBytes(int64(len(payload)))
		for b.Loop() {
			if _, _, _, err := openMessage(aead, topic, sealed); err != nil {
				b.Fatal(err)
			}
		}
	})
}
