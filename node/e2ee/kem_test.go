package e2ee

import (
	"crypto/ed25519"
	"encoding/json"
	"testing"
)

func TestKEMKeyIsStableAndSealsOpenOnlyUnderTheirInfo(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(nil)
	a, err := DeriveKEM(key)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := DeriveKEM(key)
	if a.Doc() != b.Doc() {
		t.Fatal("the KEM key derived from one server key changed")
	}
	raw, _ := json.Marshal(a.Doc())
	pub, err := ParseKEMDoc(raw)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := Seal(pub, Info("test", "room", "x"), []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := b.Open(Info("test", "room", "x"), sealed); err != nil || string(pt) != "secret" {
		t.Fatalf("open = %q, %v", pt, err)
	}
	if _, err := b.Open(Info("test", "room", "y"), sealed); err == nil {
		t.Fatal("a seal opened under another info")
	}
	_, other, _ := ed25519.GenerateKey(nil)
	c, _ := DeriveKEM(other)
	if _, err := c.Open(Info("test", "room", "x"), sealed); err == nil {
		t.Fatal("a seal opened with another node's key")
	}
	for _, bad := range []string{`{}`, `{"alg":"x25519","key":"AAAA"}`, `{"alg":"x-wing","key":"!!"}`, `{"alg":"x-wing","key":"AAAA"}`, `[]`} {
		if _, err := ParseKEMDoc(json.RawMessage(bad)); err == nil {
			t.Errorf("ParseKEMDoc(%s) accepted", bad)
		}
	}
}

func TestSafetyNumbersAreSymmetricAndDiffer(t *testing.T) {
	a, _, _ := ed25519.GenerateKey(nil)
	b, _, _ := ed25519.GenerateKey(nil)
	c, _, _ := ed25519.GenerateKey(nil)
	ab, ba, ac := SafetyNumber(a, b), SafetyNumber(b, a), SafetyNumber(a, c)
	if ab != ba {
		t.Fatalf("not symmetric: %s vs %s", ab, ba)
	}
	if len(ab) != 60 {
		t.Fatalf("%d digits", len(ab))
	}
	if ab == ac {
		t.Fatal("two pairs share a safety number")
	}
}
