package p2p

import (
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"

	"golang.org/x/crypto/chacha20poly1305"
)

// Every message on a room topic is sealed, so that a peer outside the room
// that gets hold of one (it subscribed under the topic's name, or a member
// relayed it) learns nothing from it but its padded size:
//
//	data  = 0x01 | nonce (24 random bytes) | XChaCha20-Poly1305(key, nonce, inner, aad = topic)
//	inner = uvarint stream | uvarint seq | u32be len(payload) | payload | zeros to a multiple of 256
//
// The key comes with the topic (TopicKey); p2p never sees where either
// came from. The stream and sequence numbers of order.go travel inside.
const (
	envelopeVersion = 1
	envelopePad     = 256
	// envelopeOverhead is what sealing adds to inner.
	envelopeOverhead = 1 + chacha20poly1305.NonceSizeX + chacha20poly1305.Overhead
)

var errSealed = errors.New("p2p: room message does not open")

// newTopicAEAD makes the cipher of a topic's key.
func newTopicAEAD(key *[32]byte) cipher.AEAD {
	a, err := chacha20poly1305.NewX(key[:])
	if err != nil {
		panic(err) // the key has the right size by its type
	}
	return a
}

// sealedSize is the size of a sealed message carrying a payload of n bytes.
func sealedSize(stream, seq uint64, n int) int {
	inner := uvarintLen(stream) + uvarintLen(seq) + 4 + n
	inner = (inner + envelopePad - 1) / envelopePad * envelopePad
	return envelopeOverhead + inner
}

func uvarintLen(v uint64) int {
	var b [binary.MaxVarintLen64]byte
	return binary.PutUvarint(b[:], v)
}

// sealMessage seals a room message for a topic. It writes the inner
// message into the buffer it returns and seals it there, in place.
func sealMessage(aead cipher.AEAD, topic string, stream, seq uint64, payload []byte) []byte {
	const head = 1 + chacha20poly1305.NonceSizeX
	size := sealedSize(stream, seq, len(payload))
	out := make([]byte, head, size)
	out[0] = envelopeVersion
	nonce := out[1:head]
	if _, err := rand.Read(nonce); err != nil {
		panic(err) // crypto/rand does not fail
	}
	out = binary.AppendUvarint(out, stream)
	out = binary.AppendUvarint(out, seq)
	out = binary.BigEndian.AppendUint32(out, uint32(len(payload)))
	out = append(out, payload...)
	inner := out[head : size-chacha20poly1305.Overhead] // the rest is zero: the padding
	return aead.Seal(out[:head], nonce, inner, []byte(topic))
}

// openMessage opens a room message sealed for topic. The payload is a
// slice of a fresh buffer.
func openMessage(aead cipher.AEAD, topic string, data []byte) (stream, seq uint64, payload []byte, err error) {
	if len(data) < envelopeOverhead || data[0] != envelopeVersion || (len(data)-envelopeOverhead)%envelopePad != 0 {
		return 0, 0, nil, errSealed
	}
	nonce := data[1 : 1+chacha20poly1305.NonceSizeX]
	inner, err := aead.Open(nil, nonce, data[1+chacha20poly1305.NonceSizeX:], []byte(topic))
	if err != nil {
		return 0, 0, nil, errSealed
	}
	stream, seq, rest, err := openEnvelope(inner)
	if err != nil || len(rest) < 4 {
		return 0, 0, nil, errBadEnvelope
	}
	n := binary.BigEndian.Uint32(rest)
	rest = rest[4:]
	if uint64(n) > uint64(len(rest)) {
		return 0, 0, nil, errBadEnvelope
	}
	for _, b := range rest[n:] {
		if b != 0 {
			return 0, 0, nil, errBadEnvelope
		}
	}
	return stream, seq, rest[:n:n], nil
}
