package peers

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"

	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/crypto/chacha20poly1305"
)

// Room requests are sealed, so that nothing in them names the room, the
// users or the events to anyone but the room's members. Every room method
// travels as the one method MethodRoom:
//
//	request = 0x01 | kid (16) | nonce (24) | XChaCha20-Poly1305(kReq, nonce, inner, aad)
//	inner   = u32be len(json) | json {"m": method, "b": body} | zeros to a multiple of 256
//	aad     = "req" | requester peer | responder peer | kid
//	answer  = 0x01 | nonce (24) | XChaCha20-Poly1305(kReq, nonce, inner', aad')
//	inner'  = u32be len(body) | body | zeros to a multiple of 256
//	aad'    = "resp" | requester | responder | kid | sha256(request)[:16]
//
// kid and kReq derive from the room secret (secret.go); the responder
// finds the room by kid. The peers in the aad bind a request to the two
// nodes, so a member cannot replay another's request as its own, and an
// answer to its request.

// MethodRoom carries every sealed room request.
const MethodRoom = "r"

const (
	sealVersion = 1
	sealPad     = 256
	nonceSize   = chacha20poly1305.NonceSizeX
)

var errSealedRequest = errors.New("sealed request does not open")

// sealedMethods are the methods that travel sealed (make_join and
// send_join may also travel plain: a server joining a public room by its
// ID holds no secret of the room yet).
var sealedMethods = map[string]bool{
	MethodGetEvent: true, MethodAuthChain: true, MethodMissingEvents: true, MethodStateAfter: true,
	MethodExtremities: true, MethodBackfill: true, MethodMakeJoin: true, MethodSendJoin: true,
	MethodLinkInvite: true, MethodRoomSecret: true, MethodEphemeral: true,
	MethodMediaMeta: true, MethodMediaChunk: true,
}

type sealedInner struct {
	M string          `json:"m"`
	B json.RawMessage `json:"b"`
}

func padded(body []byte) []byte {
	n := 4 + len(body)
	n = (n + sealPad - 1) / sealPad * sealPad
	out := make([]byte, 4, n+chacha20poly1305.Overhead)
	binary.BigEndian.PutUint32(out, uint32(len(body)))
	out = append(out, body...)
	return out[:n]
}

func unpadded(inner []byte) ([]byte, error) {
	if len(inner) < 4 || len(inner)%sealPad != 0 {
		return nil, errSealedRequest
	}
	n := binary.BigEndian.Uint32(inner)
	rest := inner[4:]
	if uint64(n) > uint64(len(rest)) {
		return nil, errSealedRequest
	}
	for _, b := range rest[n:] {
		if b != 0 {
			return nil, errSealedRequest
		}
	}
	return rest[:n], nil
}

func reqAAD(requester, responder peer.ID, kid []byte) []byte {
	aad := []byte("req")
	aad = append(aad, requester...)
	aad = append(aad, responder...)
	return append(aad, kid...)
}

func respAAD(requester, responder peer.ID, kid, request []byte) []byte {
	aad := []byte("resp")
	aad = append(aad, requester...)
	aad = append(aad, responder...)
	aad = append(aad, kid...)
	sum := sha256.Sum256(request)
	return append(aad, sum[:16]...)
}

func randomNonce(dst []byte) []byte {
	n := make([]byte, nonceSize)
	if _, err := rand.Read(n); err != nil {
		panic(err) // crypto/rand does not fail
	}
	return append(dst, n...)
}

// sealRequest seals a room request from requester to responder.
func sealRequest(rs *roomSecret, requester, responder peer.ID, method string, body []byte) ([]byte, error) {
	inner, err := json.Marshal(sealedInner{M: method, B: body})
	if err != nil {
		return nil, err
	}
	aead, _ := chacha20poly1305.NewX(rs.req[:])
	out := append([]byte{sealVersion}, rs.kid[:]...)
	out = randomNonce(out)
	nonce := out[1+kidSize:]
	return aead.Seal(out, nonce, padded(inner), reqAAD(requester, responder, rs.kid[:])), nil
}

// openRequest opens a sealed room request: lookup finds the room secret
// its kid names.
func openRequest(lookup func(kid []byte) (*roomSecret, bool), requester, responder peer.ID, data []byte) (*roomSecret, string, []byte, error) {
	if len(data) < 1+kidSize+nonceSize+chacha20poly1305.Overhead || data[0] != sealVersion {
		return nil, "", nil, errSealedRequest
	}
	kid := data[1 : 1+kidSize]
	rs, ok := lookup(kid)
	if !ok {
		return nil, "", nil, errSealedRequest
	}
	aead, _ := chacha20poly1305.NewX(rs.req[:])
	nonce := data[1+kidSize : 1+kidSize+nonceSize]
	inner, err := aead.Open(nil, nonce, data[1+kidSize+nonceSize:], reqAAD(requester, responder, kid))
	if err != nil {
		return nil, "", nil, errSealedRequest
	}
	js, err := unpadded(inner)
	if err != nil {
		return nil, "", nil, err
	}
	var in sealedInner
	if err := json.Unmarshal(js, &in); err != nil || !sealedMethods[in.M] {
		return nil, "", nil, errSealedRequest
	}
	return rs, in.M, in.B, nil
}

// sealAnswer seals the answer to a sealed request.
func sealAnswer(rs *roomSecret, requester, responder peer.ID, request, body []byte) []byte {
	aead, _ := chacha20poly1305.NewX(rs.req[:])
	out := randomNonce([]byte{sealVersion})
	nonce := out[1:]
	return aead.Seal(out, nonce, padded(body), respAAD(requester, responder, rs.kid[:], request))
}

// openAnswer opens the answer to a sealed request.
func openAnswer(rs *roomSecret, requester, responder peer.ID, request, data []byte) ([]byte, error) {
	if len(data) < 1+nonceSize+chacha20poly1305.Overhead || data[0] != sealVersion {
		return nil, errSealedRequest
	}
	aead, _ := chacha20poly1305.NewX(rs.req[:])
	inner, err := aead.Open(nil, data[1:1+nonceSize], data[1+nonceSize:], respAAD(requester, responder, rs.kid[:], request))
	if err != nil {
		return nil, errors.New("sealed answer does not open")
	}
	return unpadded(inner)
}
