package webui

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/parley-p2p/parley/errs"
)

func TestCheckDeviceKeys(t *testing.T) {
	s := &Session{UserID: "@alice:n", DeviceID: "DEV"}
	good := `{"user_id":"@alice:n","device_id":"DEV","algorithms":["m.olm.v1.curve25519-aes-sha2"],"keys":{"ed25519:DEV":"k","curve25519:DEV":"c"},"signatures":{"@alice:n":{"ed25519:DEV":"s"}}}`
	if err := checkDeviceKeys(s, json.RawMessage(good)); err != nil {
		t.Fatalf("good keys refused: %v", err)
	}
	for name, raw := range map[string]string{
		"another user":              strings.Replace(good, `"user_id":"@alice:n"`, `"user_id":"@bob:n"`, 1),
		"another device":            strings.Replace(good, `"device_id":"DEV"`, `"device_id":"OTHER"`, 1),
		"no algorithms":             strings.Replace(good, `["m.olm.v1.curve25519-aes-sha2"]`, `[]`, 1),
		"a key of another device":   strings.Replace(good, `"ed25519:DEV"`, `"ed25519:OTHER"`, 1),
		"a key ID without an alg":   strings.Replace(good, `"curve25519:DEV":"c"`, `"DEV":"c"`, 1),
		"no signature by the owner": strings.Replace(good, `"@alice:n":{`, `"@bob:n":{`, 1),
		"not an object":             `"keys"`,
		"a NUL in an algorithm":     strings.Replace(good, `m.olm.v1`, `m.olm\u0000`, 1),
		"too large":                 `{"pad":"` + strings.Repeat("x", maxDeviceKeys) + `"}`,
	} {
		if err := checkDeviceKeys(s, json.RawMessage(raw)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestOneTimeKeysAreCheckedAndCompacted(t *testing.T) {
	keys, err := oneTimeKeys("one_time_keys", map[string]json.RawMessage{
		"signed_curve25519:AAA": json.RawMessage(`{ "key": "k1", "signatures": {} }`),
		"curve25519:BBB":        json.RawMessage(`"k2"`),
	})
	if err != nil || len(keys) != 2 {
		t.Fatalf("good keys: %v, %v", keys, err)
	}
	for _, k := range keys {
		if k.Algorithm == "signed_curve25519" && string(k.Key) != `{"key":"k1","signatures":{}}` {
			t.Errorf("stored as %s, want it compacted", k.Key)
		}
	}
	for name, m := range map[string]map[string]json.RawMessage{
		"no algorithm":        {"AAA": json.RawMessage(`"k"`)},
		"an empty key ID":     {"curve25519:": json.RawMessage(`"k"`)},
		"an empty key":        {"curve25519:A": json.RawMessage(`""`)},
		"an object, no key":   {"signed_curve25519:A": json.RawMessage(`{"signatures":{}}`)},
		"a number":            {"curve25519:A": json.RawMessage(`5`)},
		"a key over the size": {"curve25519:A": json.RawMessage(`"` + strings.Repeat("k", maxOneTimeKey) + `"`)},
	} {
		if _, err := oneTimeKeys("one_time_keys", m); err == nil {
			t.Errorf("%s: accepted", name)
		} else if k := errs.KindOf(err); k != errs.Invalid && k != errs.TooLarge {
			t.Errorf("%s: %v (%v), want invalid or too large", name, err, k)
		}
	}
}
