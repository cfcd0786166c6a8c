package e2ee

import (
	"fmt"

	"maunium.net/go/mautrix/crypto/goolm/goolmbase64"
	"maunium.net/go/mautrix/crypto/goolm/megolm"
	"maunium.net/go/mautrix/crypto/goolm/message"
	"maunium.net/go/mautrix/crypto/goolm/session"
	"maunium.net/go/mautrix/crypto/olm"
)

// megolmVersion is the version byte of a Megolm message.
const megolmVersion = 3

// decryptOwned decrypts a Megolm message of a session, checking its MAC
// but not the Megolm signature. It is only for ciphertexts in events
// whose sender's server owns the session (decrypt checks that first):
// such an event is signed by that server already, so the Megolm
// signature would prove nothing more, and checking it was most of a
// decryption's cost (an ed25519 verification). Without the owner check
// any member holding the session could MAC a message in it: that check
// is what keeps a member from speaking in another's session.
func decryptOwned(s *session.MegolmInboundSession, ciphertext []byte) ([]byte, uint32, error) {
	raw, err := goolmbase64.Decode(ciphertext)
	if err != nil {
		return nil, 0, err
	}
	var msg message.GroupMessage
	if err := msg.Decode(raw); err != nil {
		return nil, 0, err
	}
	if msg.Version != megolmVersion || msg.Ciphertext == nil || !msg.HasMessageIndex {
		return nil, 0, fmt.Errorf("decrypt: %w", olm.ErrBadMessageFormat)
	}
	idx := msg.MessageIndex
	var r *megolm.Ratchet
	switch {
	case idx-s.Ratchet.Counter < 1<<31:
		// At or past the latest ratchet: advance a copy, and keep it
		// only once the MAC checks, so a bad message moves nothing.
		c := s.Ratchet
		c.AdvanceTo(idx)
		r = &c
	case idx-s.InitialRatchet.Counter < 1<<31:
		c := s.InitialRatchet
		c.AdvanceTo(idx)
		r = &c
	default:
		return nil, 0, fmt.Errorf("decrypt: %w", olm.ErrUnknownMessageIndex)
	}
	pt, err := r.Decrypt(raw, &msg)
	if err != nil {
		return nil, 0, err
	}
	if idx-s.Ratchet.Counter < 1<<31 {
		s.Ratchet = *r
	}
	return pt, idx, nil
}
