package rooms

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// The spec's appendix "Cryptographic Test Vectors".
func specKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	seed, err := base64.RawStdEncoding.DecodeString("YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1")
	if err != nil {
		t.Fatal(err)
	}
	return ed25519.NewKeyFromSeed(seed)
}

func TestSignJSONMatchesTheSpecVectors(t *testing.T) {
	key := specKey(t)
	tests := []struct{ name, in, wantSig string }{
		{"signing an empty object", `{}`, "K8280/U9SSy9IVtjBuVeLr+HpOB4BQFWbg+UZaADMtTdGYI7Geitb76LTrr5QV/7Xg4ahLwYGYZzuHGZKM5ZAQ"},
		{"signing an object with data", `{"one": 1, "two": "Two"}`, "KqmLSbO39/Bzb0QIYE82zqLwsA+PDzYIpIRA2sRQ4sL53+sN6/fpNSoqE7BP7vBZhG6kYdD13EIMJpvhJI+6Bw"},
		{"signing ignores existing signatures and unsigned", `{"unsigned":{"age":5},"signatures":{"other":{"ed25519:x":"abc"}}}`, "K8280/U9SSy9IVtjBuVeLr+HpOB4BQFWbg+UZaADMtTdGYI7Geitb76LTrr5QV/7Xg4ahLwYGYZzuHGZKM5ZAQ"},
	}
	for _, tt := range tests {
		t.Run(tt.name+" gives the spec's signature", func(t *testing.T) {
			out, err := SignJSON([]byte(tt.in), "domain", "ed25519:1", key)
			if err != nil {
				t.Fatal(err)
			}
			var got struct {
				Signatures map[string]map[string]string `json:"signatures"`
			}
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatal(err)
			}
			if sig := got.Signatures["domain"]["ed25519:1"]; sig != tt.wantSig {
				t.Errorf("signature %s, want %s", sig, tt.wantSig)
			}
			if err := VerifyJSON(out, "domain", "ed25519:1", key.Public().(ed25519.PublicKey)); err != nil {
				t.Errorf("VerifyJSON: %v", err)
			}
		})
	}
}

// The spec's event signing vectors use room version 1 redaction (which keeps
// "origin"), so their signatures do not apply to v11; their content hashes do,
// since the content hash does not depend on the room version.
func TestContentHashMatchesTheSpecVectors(t *testing.T) {
	tests := []struct{ name, event, want string }{
		{"a minimal event", `{"room_id":"!x:domain","sender":"@a:domain","origin":"domain","origin_server_ts":1000000,
			"signatures":{},"hashes":{},"type":"X","content":{},"prev_events":[],"auth_events":[],"depth":3,
			"unsigned":{"age_ts":1000000}}`, "5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos"},
		{"an event with redactable content", `{"content":{"body":"Here is the message content"},"event_id":"$0:domain",
			"origin":"domain","origin_server_ts":1000000,"type":"m.room.message","room_id":"!r:domain","sender":"@u:domain",
			"signatures":{},"unsigned":{"age_ts":1000000}}`, "onLKD1bGljeBWQhWZ1kaP9SorVmRQNdN5aM2JYU2n/g"},
	}
	for _, tt := range tests {
		t.Run(tt.name+" hashes to the spec's value", func(t *testing.T) {
			v, err := parseJSON([]byte(tt.event))
			if err != nil {
				t.Fatal(err)
			}
			sum := contentHash(v)
			if got := base64.RawStdEncoding.EncodeToString(sum[:]); got != tt.want {
				t.Errorf("content hash %s, want %s", got, tt.want)
			}
		})
	}
}

func TestIdentity(t *testing.T) {
	pub := specKey(t).Public().(ed25519.PublicKey)
	name := ServerName(pub)
	t.Run("a server name is 64 lowercase hex characters and decodes back to the key", func(t *testing.T) {
		if len(name) != 64 || strings.ToLower(name) != name {
			t.Fatalf("server name %q", name)
		}
		got, err := ServerKey(name)
		if err != nil || !got.Equal(pub) {
			t.Fatalf("ServerKey = %x, %v", got, err)
		}
	})
	for _, bad := range []string{strings.ToUpper(name), name[:62], name + "00", "example.com", strings.Repeat("g", 64)} {
		t.Run("ServerKey rejects "+bad, func(t *testing.T) {
			if _, err := ServerKey(bad); err == nil {
				t.Error("no error")
			}
		})
	}
	userTests := []struct {
		id, server string
		ok         bool
	}{
		{"@alice:" + name, name, true},
		{"@alice:example.com:8448", "example.com:8448", true},
		{"@a:[1234:5678::abcd]:5678", "[1234:5678::abcd]:5678", true},
		{"@Historical=Name:example.org", "example.org", true},
		{"alice:example.com", "", false},
		{"@alice", "", false},
		{"@:example.com", "", false},
		{"@alice:", "", false},
		{"@al ice:example.com", "", false},
		{"@alice:exa_mple.com", "", false},
		{"@alice:example.com:", "", false},
		{"@alice:example.com:123456", "", false},
		{"@" + strings.Repeat("a", 250) + ":example.com", "", false},
	}
	for _, tt := range userTests {
		t.Run("ServerOf "+tt.id, func(t *testing.T) {
			got, err := ServerOf(tt.id)
			if (err == nil) != tt.ok || got != tt.server {
				t.Errorf("ServerOf(%q) = %q, %v; want %q, ok=%v", tt.id, got, err, tt.server, tt.ok)
			}
		})
	}
}

func TestBuildParseVerify(t *testing.T) {
	for _, version := range []string{V10, V11, V12} {
		r := newTestRoom(t, version)
		msg := r.build(alice, "m.room.message", "-", `{"body":"hello","msgtype":"m.text"}`)

		t.Run("v"+version+": a built event verifies and survives a round trip", func(t *testing.T) {
			if err := Verify(msg); err != nil {
				t.Fatalf("Verify: %v", err)
			}
			again := mustParse(t, string(msg.JSON()), version)
			if again.ID() != msg.ID() || string(again.JSON()) != string(msg.JSON()) {
				t.Errorf("round trip changed the event: %s -> %s", msg.ID(), again.ID())
			}
			if !validHashID(msg.ID(), '$') {
				t.Errorf("event ID %q is not a reference hash", msg.ID())
			}
		})

		t.Run("v"+version+": unsigned is dropped and does not change the ID", func(t *testing.T) {
			withUnsigned := editJSON(t, msg.JSON(), func(m map[string]any) { m["unsigned"] = map[string]any{"age": 5} })
			e := mustParse(t, string(withUnsigned), version)
			if e.ID() != msg.ID() || strings.Contains(string(e.JSON()), "unsigned") {
				t.Errorf("unsigned kept or changed the ID")
			}
		})

		t.Run("v"+version+": changed content fails the hash check but keeps the ID", func(t *testing.T) {
			tampered := editJSON(t, msg.JSON(), func(m map[string]any) { m["content"].(map[string]any)["body"] = "evil" })
			e := mustParse(t, string(tampered), version)
			if e.ID() != msg.ID() {
				t.Errorf("content is redacted away, so the ID should not change")
			}
			if err := Verify(e); !errors.Is(err, ErrContentHash) {
				t.Errorf("Verify = %v, want ErrContentHash", err)
			}
			red, err := e.Redacted()
			if err != nil {
				t.Fatal(err)
			}
			if err := VerifySignature(red, serverA.name); err != nil {
				t.Errorf("the redacted copy should still carry a valid signature: %v", err)
			}
		})

		t.Run("v"+version+": a changed essential field changes the ID and breaks the signature", func(t *testing.T) {
			tampered := editJSON(t, msg.JSON(), func(m map[string]any) { m["origin_server_ts"] = 1 })
			e := mustParse(t, string(tampered), version)
			if e.ID() == msg.ID() {
				t.Error("ID unchanged")
			}
			if err := Verify(e); !errors.Is(err, ErrBadSignature) {
				t.Errorf("Verify = %v, want ErrBadSignature", err)
			}
		})

		t.Run("v"+version+": a broken signature is refused", func(t *testing.T) {
			other := base64.RawStdEncoding.EncodeToString(ed25519.Sign(serverB.key, []byte("x")))
			for name, sig := range map[string]any{"wrong": other, "truncated": other[:40], "not base64": "!!!", "number": 5} {
				tampered := editJSON(t, msg.JSON(), func(m map[string]any) {
					m["signatures"].(map[string]any)[serverA.name].(map[string]any)[KeyID] = sig
				})
				e, err := ParseEvent(tampered, version)
				if err != nil {
					continue // a non-string signature is a format error: also refused
				}
				if err := Verify(e); !errors.Is(err, ErrBadSignature) {
					t.Errorf("%s signature: Verify = %v, want ErrBadSignature", name, err)
				}
			}
		})

		t.Run("v"+version+": a missing signature is refused", func(t *testing.T) {
			tampered := editJSON(t, msg.JSON(), func(m map[string]any) { m["signatures"] = map[string]any{} })
			if err := Verify(mustParse(t, string(tampered), version)); !errors.Is(err, ErrBadSignature) {
				t.Errorf("Verify = %v, want ErrBadSignature", err)
			}
		})

		t.Run("v"+version+": a signature by another server does not count as the sender's", func(t *testing.T) {
			forged := r.proto(bob, "m.room.message", "-", `{"body":"hi"}`)
			forged.Sender = alice
			if _, err := Build(forged, version, serverB.name, serverB.key); err == nil {
				t.Error("Build let server B sign for alice")
			}
			e := r.build(bob, "m.room.message", "-", `{"body":"hi"}`)
			raw := editJSON(t, e.JSON(), func(m map[string]any) { m["sender"] = alice })
			if err := Verify(mustParse(t, string(raw), version)); !errors.Is(err, ErrBadSignature) {
				t.Errorf("Verify = %v, want ErrBadSignature", err)
			}
		})

		t.Run("v"+version+": a co-signature keeps the ID and both signatures verify", func(t *testing.T) {
			invite := r.build(alice, "m.room.member", bob, `{"membership":"invite"}`)
			cosigned, err := Sign(invite, serverB.name, serverB.key)
			if err != nil {
				t.Fatal(err)
			}
			if cosigned.ID() != invite.ID() {
				t.Error("co-signing changed the ID")
			}
			if err := VerifySignature(invite, serverB.name); err == nil {
				t.Error("the original should lack B's signature")
			}
			for _, s := range []string{serverA.name, serverB.name} {
				if err := VerifySignature(cosigned, s); err != nil {
					t.Errorf("signature of %s: %v", s, err)
				}
			}
			if err := Verify(cosigned); err != nil {
				t.Errorf("Verify: %v", err)
			}
		})
	}

	t.Run("Sign refuses a key that is not the server's", func(t *testing.T) {
		r := newTestRoom(t, V12)
		if _, err := Sign(r.last, serverA.name, serverB.key); err == nil {
			t.Error("no error")
		}
	})
	t.Run("fixture events never verify", func(t *testing.T) {
		e, err := ParseEventWithID([]byte(`{"room_id":"!r:x","sender":"@a:x","type":"m.room.message","content":{},
			"prev_events":[],"auth_events":[],"origin_server_ts":1}`), V11, "$fixture")
		if err != nil {
			t.Fatal(err)
		}
		if err := Verify(e); err == nil {
			t.Error("no error")
		}
	})
}
