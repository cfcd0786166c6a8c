package rooms

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"testing"
)

func TestAuthThirdPartyInvite(t *testing.T) {
	idKey := func(label string) ed25519.PrivateKey {
		seed := sha256.Sum256([]byte("identity server " + label))
		return ed25519.NewKeyFromSeed(seed[:])
	}
	primary, listed, stranger := idKey("primary"), idKey("listed"), idKey("stranger")
	pubB64 := func(k ed25519.PrivateKey, enc *base64.Encoding) string {
		return enc.EncodeToString(k.Public().(ed25519.PublicKey))
	}
	tpiContent := `{"display_name":"b...@example.org","key_validity_url":"https://id.example/isvalid",` +
		`"public_key":"` + pubB64(primary, base64.RawStdEncoding) + `",` +
		`"public_keys":[{"public_key":"` + pubB64(listed, base64.RawURLEncoding) + `"},{"public_key":"not base64!"}]}`
	// signed returns the signed block of content.third_party_invite.
	signed := func(t testing.TB, key ed25519.PrivateKey, body string) string {
		out, err := SignJSON([]byte(expand(body)), "id.example", "ed25519:0", key)
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}
	invite := func(sender, target string, key ed25519.PrivateKey, body string) func(*testRoom) *Event {
		return func(r *testRoom) *Event {
			extra := `,"third_party_invite":{"display_name":"b...","signed":` + signed(r.t, key, body) + `}`
			return r.build(sender, "m.room.member", target, memberContent("invite", extra))
		}
	}
	good := `{"mxid":"BOB","token":"tok"}`
	withTPI := func(r *testRoom) { r.send(alice, "m.room.third_party_invite", "tok", tpiContent) }

	runAuthCases(t, []authCase{
		{name: "an invite signed by the invite's public_key is allowed", setup: withTPI,
			event: invite(alice, bob, primary, good), allowed: true},
		{name: "an invite signed by a key from public_keys is allowed", setup: withTPI,
			event: invite(alice, bob, listed, good), allowed: true},
		{name: "the inviter need not still be joined, as the rule reads",
			setup: func(r *testRoom) { withTPI(r); r.join(carol); r.member(alice, alice, "leave", "") },
			event: invite(alice, bob, primary, good), allowed: true},
		{name: "an invite signed by another key is not allowed", setup: withTPI,
			event: invite(alice, bob, stranger, good)},
		{name: "an invite whose signed block was altered after signing is not allowed", setup: withTPI,
			event: func(r *testRoom) *Event {
				body := signed(r.t, primary, `{"mxid":"BOB","token":"tok","extra":1}`)
				v, _ := parseJSON([]byte(body))
				extra := `,"third_party_invite":{"signed":` + string(v.without("extra").bytes()) + `}`
				return r.build(alice, "m.room.member", bob, memberContent("invite", extra))
			}},
		{name: "an invite for someone other than signed.mxid is not allowed", setup: withTPI,
			event: invite(alice, carol, primary, good)},
		{name: "an invite without a matching third-party invite event is not allowed", setup: withTPI,
			event: invite(alice, bob, primary, `{"mxid":"BOB","token":"other"}`)},
		{name: "an invite whose signed block lacks a token is not allowed", setup: withTPI,
			event: invite(alice, bob, primary, `{"mxid":"BOB"}`)},
		{name: "an invite without a signed block is not allowed", setup: withTPI,
			event: ev(alice, "m.room.member", bob, `{"membership":"invite","third_party_invite":{"display_name":"x"}}`)},
		{name: "an unsigned signed block is not allowed", setup: withTPI,
			event: ev(alice, "m.room.member", bob, `{"membership":"invite","third_party_invite":{"signed":{"mxid":"BOB","token":"tok"}}}`)},
		{name: "only the sender of the third-party invite event may redeem it",
			setup: func(r *testRoom) { withTPI(r); r.join(carol) },
			event: invite(carol, bob, primary, good)},
		{name: "a banned target cannot be invited through a third-party invite",
			setup: func(r *testRoom) { withTPI(r); r.member(alice, bob, "ban", "") },
			event: invite(alice, bob, primary, good)},
	})
}
