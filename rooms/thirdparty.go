package rooms

import (
	"crypto/ed25519"
	"encoding/base64"
	"strings"
)

// allowThirdPartyInvite is the part of the invite rule for an invite that
// redeems a third-party (3PID) invite: content.third_party_invite.signed must
// name the target and the token of an m.room.third_party_invite event in state
// sent by the same sender, and carry an ed25519 signature by one of that
// event's public keys (signed by the identity server that stored the invite).
// The caller has already checked that the target is not banned.
func allowThirdPartyInvite(e *Event, state StateFunc) error {
	tpi, _ := e.content.get("third_party_invite")
	signed, ok := tpi.get("signed")
	if !ok || signed.kind != kObject {
		return notAllowed("third_party_invite has no signed object")
	}
	mxid, okMXID := signed.getString("mxid")
	token, okToken := signed.getString("token")
	if !okMXID || !okToken {
		return notAllowed("third_party_invite.signed needs string mxid and token")
	}
	if mxid != *e.stateKey {
		return notAllowed("third_party_invite.signed.mxid %s is not the invitee %s", mxid, *e.stateKey)
	}
	invite := state(StateKey{Type: "m.room.third_party_invite", StateKey: token})
	if invite == nil {
		return notAllowed("no m.room.third_party_invite for token %q", token)
	}
	if invite.sender != e.sender {
		return notAllowed("the third-party invite was sent by %s, not %s", invite.sender, e.sender)
	}
	keys := thirdPartyKeys(invite.content)
	sigs, _ := signed.get("signatures")
	if sigs.kind != kObject || len(keys) == 0 {
		return notAllowed("third_party_invite.signed has no signature to check")
	}
	msg := signed.without("signatures", "unsigned").bytes()
	for _, server := range sigs.obj {
		for _, sig := range server.val.obj {
			if !strings.HasPrefix(sig.key, "ed25519:") || sig.val.kind != kString {
				continue
			}
			raw, err := decodeBase64(sig.val.str)
			if err != nil || len(raw) != ed25519.SignatureSize {
				continue
			}
			for _, k := range keys {
				if ed25519.Verify(k, msg, raw) {
					return nil
				}
			}
		}
	}
	return notAllowed("no signature in third_party_invite.signed matches the invite's public keys")
}

// thirdPartyKeys collects the ed25519 keys of an m.room.third_party_invite
// event: content.public_key and content.public_keys[].public_key. Identity
// servers publish them in either base64 alphabet, padded or not.
func thirdPartyKeys(content value) []ed25519.PublicKey {
	var encoded []string
	if k, ok := content.getString("public_key"); ok {
		encoded = append(encoded, k)
	}
	if list, ok := content.get("public_keys"); ok && list.kind == kArray {
		for _, entry := range list.arr {
			if k, ok := entry.getString("public_key"); ok {
				encoded = append(encoded, k)
			}
		}
	}
	var keys []ed25519.PublicKey
	for _, s := range encoded {
		s = strings.TrimRight(s, "=")
		b, err := base64.RawStdEncoding.DecodeString(s)
		if err != nil {
			b, err = base64.RawURLEncoding.DecodeString(s)
		}
		if err == nil && len(b) == ed25519.PublicKeySize {
			keys = append(keys, ed25519.PublicKey(b))
		}
	}
	return keys
}
