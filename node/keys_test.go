package node

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto/signatures"
	"maunium.net/go/mautrix/id"

	"github.com/parley-p2p/parley/internal/testkit"
	"github.com/parley-p2p/parley/rooms"
)

// keysErr is the status and errcode of a failed request ("" if it did
// not fail as a Matrix error).
func keysErr(err error) (int, string) {
	var he mautrix.HTTPError
	if errors.As(err, &he) && he.RespError != nil {
		return he.RespError.StatusCode, he.RespError.ErrCode
	}
	var hp *mautrix.HTTPError
	if errors.As(err, &hp) && hp.RespError != nil {
		return hp.RespError.StatusCode, hp.RespError.ErrCode
	}
	if errors.As(err, &hp) && hp.Response != nil {
		return hp.Response.StatusCode, ""
	}
	if errors.As(err, &he) && he.Response != nil {
		return he.Response.StatusCode, ""
	}
	return 0, ""
}

// call sends a request to the client API as c, with a JSON body and
// answer.
func call(ctx context.Context, c *mautrix.Client, method string, body, out any, path ...any) error {
	_, err := c.MakeRequest(ctx, method, c.BuildClientURL(append([]any{"v3"}, path...)...), body, out)
	return err
}

// deviceKeys is a device's keys as a client publishes them (the
// signature is a placeholder: the node checks one is there, clients
// verify it).
func deviceKeys(c *mautrix.Client, tag string) *mautrix.DeviceKeys {
	dev := c.DeviceID
	return &mautrix.DeviceKeys{
		UserID: c.UserID, DeviceID: dev,
		Algorithms: []id.Algorithm{id.AlgorithmOlmV1, id.AlgorithmMegolmV1},
		Keys: mautrix.KeyMap{
			id.NewDeviceKeyID(id.KeyAlgorithmCurve25519, dev): "curve-" + tag,
			id.NewDeviceKeyID(id.KeyAlgorithmEd25519, dev):    "ed-" + tag,
		},
		Signatures: signatures.Signatures{c.UserID: {id.NewKeyID(id.KeyAlgorithmEd25519, dev.String()): "sig-" + tag}},
	}
}

func otks(prefix string, n int) map[id.KeyID]mautrix.OneTimeKey {
	m := map[id.KeyID]mautrix.OneTimeKey{}
	for i := range n {
		m[id.NewKeyID(id.KeyAlgorithmSignedCurve25519, fmt.Sprintf("%s%d", prefix, i))] = mautrix.OneTimeKey{Key: id.Curve25519(fmt.Sprintf("key-%s%d", prefix, i))}
	}
	return m
}

// secondDevice logs a user in again, as another device.
func secondDevice(t *testing.T, ctx context.Context, tn *testNode, c *mautrix.Client, name string) *mautrix.Client {
	t.Helper()
	d := tn.client()
	resp, err := d.Login(ctx, &mautrix.ReqLogin{
		Type:       mautrix.AuthTypePassword,
		Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: c.UserID.String()},
		Password:   testPassword(name), StoreCredentials: true,
	})
	if err != nil {
		t.Fatalf("%s logs in again: %v", name, err)
	}
	d.DeviceID = resp.DeviceID
	return d
}

func TestDeviceKeysAreUploadedQueriedAndClaimedOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a := newTestNode(t, testOpts{regToken: "family"})
	alice, bob := a.register(ctx, "alice"), a.register(ctx, "bob")

	up, err := alice.UploadKeys(ctx, &mautrix.ReqUploadKeys{DeviceKeys: deviceKeys(alice, "1"), OneTimeKeys: otks("a", 3)})
	if err != nil {
		t.Fatalf("upload: %v", err)
	}
	if up.OneTimeKeyCounts.SignedCurve25519 != 3 {
		t.Fatalf("counts after upload: %+v, want 3 signed_curve25519", up.OneTimeKeyCounts)
	}
	// The same keys again are kept once.
	if up, err = alice.UploadKeys(ctx, &mautrix.ReqUploadKeys{OneTimeKeys: otks("a", 3)}); err != nil || up.OneTimeKeyCounts.SignedCurve25519 != 3 {
		t.Fatalf("the same keys again: %+v, %v", up, err)
	}
	fallback := map[string]any{"fallback_keys": map[string]any{"signed_curve25519:fb": map[string]any{"key": "fallback-key", "fallback": true}}}
	if err := call(ctx, alice, "POST", fallback, nil, "keys", "upload"); err != nil {
		t.Fatalf("fallback upload: %v", err)
	}

	t.Run("bad uploads are refused and change nothing", func(t *testing.T) {
		wrongUser := deviceKeys(alice, "x")
		wrongUser.UserID = bob.UserID
		wrongDevice := deviceKeys(alice, "x")
		wrongDevice.DeviceID = "OTHER"
		unsigned := deviceKeys(alice, "x")
		unsigned.Signatures = nil
		noAlgs := deviceKeys(alice, "x")
		noAlgs.Algorithms = nil
		for name, req := range map[string]*mautrix.ReqUploadKeys{
			"another user's device keys":             {DeviceKeys: wrongUser},
			"another device's keys":                  {DeviceKeys: wrongDevice},
			"device keys without a signature":        {DeviceKeys: unsigned},
			"device keys without algorithms":         {DeviceKeys: noAlgs},
			"a known key ID with another key":        {OneTimeKeys: map[id.KeyID]mautrix.OneTimeKey{"signed_curve25519:a0": {Key: "different"}}},
			"more one-time keys than a device keeps": {OneTimeKeys: otks("many", 1000)},
		} {
			if _, err := alice.UploadKeys(ctx, req); err == nil {
				t.Errorf("%s: accepted", name)
			} else if status, code := keysErr(err); status != 400 {
				t.Errorf("%s: %d %s, want 400", name, status, code)
			}
		}
		q, err := bob.QueryKeys(ctx, &mautrix.ReqQueryKeys{DeviceKeys: mautrix.DeviceKeysRequest{alice.UserID: nil}})
		if err != nil {
			t.Fatal(err)
		}
		if got := q.DeviceKeys[alice.UserID][alice.DeviceID].Keys; got[id.NewDeviceKeyID(id.KeyAlgorithmEd25519, alice.DeviceID)] != "ed-1" {
			t.Errorf("alice's keys after the bad uploads: %v", got)
		}
	})

	t.Run("another user sees the device keys", func(t *testing.T) {
		q, err := bob.QueryKeys(ctx, &mautrix.ReqQueryKeys{DeviceKeys: mautrix.DeviceKeysRequest{alice.UserID: {alice.DeviceID}, "@nobody:elsewhere": nil}})
		if err != nil {
			t.Fatal(err)
		}
		dk, ok := q.DeviceKeys[alice.UserID][alice.DeviceID]
		if !ok || dk.UserID != alice.UserID || len(dk.Algorithms) != 2 {
			t.Fatalf("query: %+v", q.DeviceKeys)
		}
		if _, ok := q.Failures["elsewhere"]; !ok {
			t.Errorf("a user of an unreachable server is not in failures: %v", q.Failures)
		}
	})

	t.Run("each one-time key is claimed once, then the fallback key, which stays", func(t *testing.T) {
		seen := map[id.KeyID]bool{}
		for i := range 5 {
			cl, err := bob.ClaimKeys(ctx, &mautrix.ReqClaimKeys{OneTimeKeys: mautrix.OneTimeKeysRequest{alice.UserID: {alice.DeviceID: id.KeyAlgorithmSignedCurve25519}}})
			if err != nil {
				t.Fatal(err)
			}
			keys := cl.OneTimeKeys[alice.UserID][alice.DeviceID]
			if len(keys) != 1 {
				t.Fatalf("claim %d: %v", i, keys)
			}
			for kid := range keys {
				want := i >= 3 // the three one-time keys first, then the fallback
				if (kid == "signed_curve25519:fb") != want {
					t.Errorf("claim %d got %s", i, kid)
				}
				if seen[kid] && kid != "signed_curve25519:fb" {
					t.Errorf("one-time key %s claimed twice", kid)
				}
				seen[kid] = true
			}
		}
		resp, err := alice.SyncRequest(ctx, 0, "", "", false, "")
		if err != nil {
			t.Fatal(err)
		}
		if resp.DeviceOTKCount.SignedCurve25519 != 0 || len(resp.FallbackKeys) != 0 {
			t.Errorf("after the claims: count %+v, unused fallback %v", resp.DeviceOTKCount, resp.FallbackKeys)
		}
	})

	t.Run("sync counts one-time keys and unused fallback keys", func(t *testing.T) {
		fallback := map[string]any{"one_time_keys": otks("b", 2), "fallback_keys": map[string]any{"signed_curve25519:fb2": map[string]any{"key": "fallback-2", "fallback": true}}}
		if err := call(ctx, alice, "POST", fallback, nil, "keys", "upload"); err != nil {
			t.Fatal(err)
		}
		resp, err := alice.SyncRequest(ctx, 0, "", "", false, "")
		if err != nil {
			t.Fatal(err)
		}
		if resp.DeviceOTKCount.SignedCurve25519 != 2 || !slices.Equal(resp.FallbackKeys, []id.KeyAlgorithm{id.KeyAlgorithmSignedCurve25519}) {
			t.Errorf("sync: count %+v, unused fallback %v", resp.DeviceOTKCount, resp.FallbackKeys)
		}
	})
}

// Many claims at once for a device's keys: each key goes to one of them.
func TestConcurrentClaimsNeverShareAOneTimeKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a := newTestNode(t, testOpts{regToken: "family"})
	alice, bob := a.register(ctx, "alice"), a.register(ctx, "bob")
	if _, err := alice.UploadKeys(ctx, &mautrix.ReqUploadKeys{DeviceKeys: deviceKeys(alice, "1"), OneTimeKeys: otks("k", 20)}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	got := map[id.KeyID]int{}
	empty := 0
	var wg sync.WaitGroup
	for range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl, err := bob.ClaimKeys(ctx, &mautrix.ReqClaimKeys{OneTimeKeys: mautrix.OneTimeKeysRequest{alice.UserID: {alice.DeviceID: id.KeyAlgorithmSignedCurve25519}}})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				t.Error(err)
				return
			}
			keys := cl.OneTimeKeys[alice.UserID][alice.DeviceID]
			if len(keys) == 0 {
				empty++
			}
			for kid := range keys {
				got[kid]++
			}
		}()
	}
	wg.Wait()
	if len(got) != 20 || empty != 10 {
		t.Errorf("%d distinct keys given, %d claims empty; want 20 and 10", len(got), empty)
	}
	for kid, n := range got {
		if n != 1 {
			t.Errorf("key %s given %d times", kid, n)
		}
	}
}

// pk is the public key of the test key named tag (unpadded base64).
func pk(tag string) id.Ed25519 {
	return id.Ed25519(base64.RawStdEncoding.EncodeToString(testKey(tag).Public().(ed25519.PublicKey)))
}

func testKey(tag string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte(tag))
	return ed25519.NewKeyFromSeed(seed[:])
}

// signObj is the Matrix signature of obj by the test key named tag.
func signObj(t testing.TB, obj any, tag string) string {
	t.Helper()
	b, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	delete(m, "signatures")
	delete(m, "unsigned")
	b, _ = json.Marshal(m)
	canon, err := rooms.CanonicalJSON(b)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawStdEncoding.EncodeToString(ed25519.Sign(testKey(tag), canon))
}

// crossSigningKey is the user's key for usage, the test key named
// pubTag, signed by the one named signerTag (none if "").
func crossSigningKey(t testing.TB, c *mautrix.Client, usage id.CrossSigningUsage, pubTag, signerTag string) mautrix.CrossSigningKeys {
	pub := pk(pubTag)
	k := mautrix.CrossSigningKeys{UserID: c.UserID, Usage: []id.CrossSigningUsage{usage}, Keys: map[id.KeyID]id.Ed25519{id.NewKeyID(id.KeyAlgorithmEd25519, pub.String()): pub}}
	if signerTag != "" {
		k.Signatures = signatures.Signatures{c.UserID: {id.NewKeyID(id.KeyAlgorithmEd25519, pk(signerTag).String()): signObj(t, k, signerTag)}}
	}
	return k
}

func TestCrossSigningKeysAndSignatures(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a := newTestNode(t, testOpts{regToken: "family"})
	alice, bob := a.register(ctx, "alice"), a.register(ctx, "bob")
	for _, c := range []*mautrix.Client{alice, bob} {
		if _, err := c.UploadKeys(ctx, &mautrix.ReqUploadKeys{DeviceKeys: deviceKeys(c, "1")}); err != nil {
			t.Fatal(err)
		}
	}
	// upload sends the cross-signing keys named tag, answering the
	// password stage, if asked, with password ("": no answer).
	upload := func(c *mautrix.Client, tag, password string) error {
		req := &mautrix.UploadCrossSigningKeysReq[any]{
			Master:      crossSigningKey(t, c, id.XSUsageMaster, "master"+tag, ""),
			SelfSigning: crossSigningKey(t, c, id.XSUsageSelfSigning, "self"+tag, "master"+tag),
			UserSigning: crossSigningKey(t, c, id.XSUsageUserSigning, "user"+tag, "master"+tag),
		}
		var answer mautrix.UIACallback
		if password != "" {
			answer = func(uia *mautrix.RespUserInteractive) any {
				if !uia.HasSingleStageFlow(mautrix.AuthTypePassword) {
					t.Errorf("flows %+v, want the password stage", uia.Flows)
				}
				return map[string]any{"type": mautrix.AuthTypePassword, "session": uia.Session, "password": password,
					"identifier": map[string]any{"type": "m.id.user", "user": c.UserID}}
			}
		}
		return c.UploadCrossSigningKeys(ctx, req, answer)
	}
	// The first upload needs no password; the same keys again neither.
	for _, c := range []*mautrix.Client{alice, bob} {
		if err := upload(c, c.UserID.Localpart(), ""); err != nil {
			t.Fatalf("%s's first cross-signing keys: %v", c.UserID, err)
		}
	}
	if err := upload(alice, "alice", ""); err != nil {
		t.Fatalf("the same keys again: %v", err)
	}

	t.Run("new keys need the password", func(t *testing.T) {
		if status, _ := keysErr(upload(alice, "new", "")); status != 401 {
			t.Fatalf("new keys without the password: %d, want 401", status)
		}
		if status, code := keysErr(upload(alice, "new", "not the password")); status != 401 || code != "M_FORBIDDEN" {
			t.Fatalf("with a wrong password: %d %s, want 401 M_FORBIDDEN", status, code)
		}
		q, _ := bob.QueryKeys(ctx, &mautrix.ReqQueryKeys{DeviceKeys: mautrix.DeviceKeysRequest{alice.UserID: nil}})
		if firstKey(q.MasterKeys[alice.UserID]) != pk("masteralice") {
			t.Fatalf("a refused upload changed the master key: %+v", q.MasterKeys[alice.UserID])
		}
		if err := upload(alice, "new", testPassword("alice")); err != nil {
			t.Fatalf("with the password: %v", err)
		}
		q, _ = bob.QueryKeys(ctx, &mautrix.ReqQueryKeys{DeviceKeys: mautrix.DeviceKeysRequest{alice.UserID: nil}})
		if firstKey(q.MasterKeys[alice.UserID]) != pk("masternew") {
			t.Fatalf("the new master key is not shown: %+v", q.MasterKeys[alice.UserID])
		}
		if err := upload(alice, "alice", testPassword("alice")); err != nil {
			t.Fatalf("back to the first keys: %v", err)
		}
	})

	t.Run("a self-signing key not signed by the master key is refused", func(t *testing.T) {
		err := bob.UploadCrossSigningKeys(ctx, &mautrix.UploadCrossSigningKeysReq[any]{
			SelfSigning: crossSigningKey(t, bob, id.XSUsageSelfSigning, "self-other", "someone-else"),
		}, func(uia *mautrix.RespUserInteractive) any {
			return map[string]any{"type": mautrix.AuthTypePassword, "session": uia.Session, "password": testPassword("bob"),
				"identifier": map[string]any{"type": "m.id.user", "user": bob.UserID}}
		})
		if status, code := keysErr(err); status != 400 || code != "M_INVALID_SIGNATURE" {
			t.Errorf("%d %s, want 400 M_INVALID_SIGNATURE", status, code)
		}
	})

	t.Run("the user-signing key is shown only to its owner", func(t *testing.T) {
		req := &mautrix.ReqQueryKeys{DeviceKeys: mautrix.DeviceKeysRequest{alice.UserID: nil}}
		byBob, err := bob.QueryKeys(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if firstKey(byBob.MasterKeys[alice.UserID]) != pk("masteralice") || firstKey(byBob.SelfSigningKeys[alice.UserID]) != pk("selfalice") {
			t.Errorf("bob sees alice's master %+v and self-signing %+v", byBob.MasterKeys, byBob.SelfSigningKeys)
		}
		if _, ok := byBob.UserSigningKeys[alice.UserID]; ok {
			t.Errorf("bob sees alice's user-signing key")
		}
		byAlice, err := alice.QueryKeys(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if firstKey(byAlice.UserSigningKeys[alice.UserID]) != pk("useralice") {
			t.Errorf("alice does not see her user-signing key: %+v", byAlice.UserSigningKeys)
		}
	})

	t.Run("signatures of own devices are public, of others' master keys the signer's", func(t *testing.T) {
		dk := deviceKeys(alice, "1")
		byAliceSSK := signObj(t, dk, "selfalice")
		dk.Signatures = signatures.Signatures{alice.UserID: {id.NewKeyID(id.KeyAlgorithmEd25519, pk("selfalice").String()): byAliceSSK}}
		bobMaster := crossSigningKey(t, bob, id.XSUsageMaster, "masterbob", "")
		byAliceUSK := signObj(t, bobMaster, "useralice")
		bobMaster.Signatures = signatures.Signatures{alice.UserID: {id.NewKeyID(id.KeyAlgorithmEd25519, pk("useralice").String()): byAliceUSK}}
		ghost := deviceKeys(alice, "1")
		ghost.DeviceID = "GHOST"
		forged := deviceKeys(alice, "1")
		forged.Signatures = signatures.Signatures{alice.UserID: {id.NewKeyID(id.KeyAlgorithmEd25519, pk("selfalice").String()): signObj(t, forged, "not-alices")}}
		resp, err := alice.UploadSignatures(ctx, &mautrix.ReqUploadSignatures{
			alice.UserID: {"GHOST": toSig(ghost)},
			bob.UserID:   {pk("masterbob").String(): toSigXS(bobMaster)},
		})
		if err != nil {
			t.Fatal(err)
		}
		bad, err := alice.UploadSignatures(ctx, &mautrix.ReqUploadSignatures{alice.UserID: {alice.DeviceID.String(): toSig(forged)}})
		if err != nil {
			t.Fatal(err)
		}
		if f, _ := bad.Failures[alice.UserID.String()].(map[string]any); f[alice.DeviceID.String()] == nil {
			t.Errorf("a signature by another key was kept: failures %v", bad.Failures)
		}
		if _, err := alice.UploadSignatures(ctx, &mautrix.ReqUploadSignatures{alice.UserID: {alice.DeviceID.String(): toSig(dk)}}); err != nil {
			t.Fatal(err)
		}
		if f, _ := resp.Failures[alice.UserID.String()].(map[string]any); f["GHOST"] == nil || len(f) != 1 {
			t.Errorf("failures: %v, want only alice's GHOST", resp.Failures)
		}
		q, err := bob.QueryKeys(ctx, &mautrix.ReqQueryKeys{DeviceKeys: mautrix.DeviceKeysRequest{alice.UserID: nil, bob.UserID: nil}})
		if err != nil {
			t.Fatal(err)
		}
		if q.DeviceKeys[alice.UserID][alice.DeviceID].Signatures[alice.UserID][id.NewKeyID(id.KeyAlgorithmEd25519, pk("selfalice").String())] != byAliceSSK {
			t.Errorf("bob does not see alice's device signed by her self-signing key: %+v", q.DeviceKeys[alice.UserID][alice.DeviceID].Signatures)
		}
		if _, ok := q.MasterKeys[bob.UserID].Signatures[alice.UserID]; ok {
			t.Errorf("bob sees alice's signature of his master key")
		}
		qa, err := alice.QueryKeys(ctx, &mautrix.ReqQueryKeys{DeviceKeys: mautrix.DeviceKeysRequest{bob.UserID: nil}})
		if err != nil {
			t.Fatal(err)
		}
		if qa.MasterKeys[bob.UserID].Signatures[alice.UserID][id.NewKeyID(id.KeyAlgorithmEd25519, pk("useralice").String())] != byAliceUSK {
			t.Errorf("alice does not see her signature of bob's master key: %+v", qa.MasterKeys[bob.UserID])
		}
	})
}

func toSig(dk *mautrix.DeviceKeys) mautrix.ReqKeysSignatures {
	return mautrix.ReqKeysSignatures{UserID: dk.UserID, DeviceID: dk.DeviceID, Algorithms: dk.Algorithms, Keys: keysByID(dk.Keys), Signatures: dk.Signatures}
}

func keysByID(km mautrix.KeyMap) map[id.KeyID]string {
	out := map[id.KeyID]string{}
	for k, v := range km {
		out[id.KeyID(k)] = v
	}
	return out
}

func toSigXS(k mautrix.CrossSigningKeys) mautrix.ReqKeysSignatures {
	keys := map[id.KeyID]string{}
	for kid, v := range k.Keys {
		keys[kid] = v.String()
	}
	return mautrix.ReqKeysSignatures{UserID: k.UserID, Usage: k.Usage, Keys: keys, Signatures: k.Signatures}
}

// A to-device message reaches each of the user's devices in one /sync,
// and not again once the device syncs on; the same transaction sent
// again is not a second message.
func TestToDeviceMessagesAreDeliveredOncePerDevice(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a := newTestNode(t, testOpts{regToken: "family"})
	alice, bob := a.register(ctx, "alice"), a.register(ctx, "bob")
	bob2 := secondDevice(t, ctx, a, bob, "bob")

	send := func(txn string, body string) {
		t.Helper()
		req := map[string]any{"messages": map[string]any{bob.UserID.String(): map[string]any{"*": map[string]any{"body": body}}}}
		if err := call(ctx, alice, "PUT", req, nil, "sendToDevice", "m.test", txn); err != nil {
			t.Fatalf("send %s: %v", txn, err)
		}
	}
	first := map[*mautrix.Client]string{}
	for _, c := range []*mautrix.Client{bob, bob2} {
		resp, err := c.SyncRequest(ctx, 0, "", "", false, "")
		if err != nil {
			t.Fatal(err)
		}
		first[c] = resp.NextBatch
	}
	send("t1", "hello")
	send("t1", "hello") // retried: the same transaction

	for _, c := range []*mautrix.Client{bob, bob2} {
		resp, err := c.SyncRequest(ctx, 5000, first[c], "", false, "")
		if err != nil {
			t.Fatal(err)
		}
		evs := resp.ToDevice.Events
		if len(evs) != 1 || evs[0].Sender != alice.UserID || evs[0].Type.Type != "m.test" || evs[0].Content.Raw["body"] != "hello" {
			t.Fatalf("%s's device %s gets %+v, want alice's one message", c.UserID, c.DeviceID, evs)
		}
		// A retry with the same token gets it again: not yet acknowledged.
		again, err := c.SyncRequest(ctx, 0, first[c], "", false, "")
		if err != nil || len(again.ToDevice.Events) != 1 {
			t.Fatalf("the same token again: %v, %v", again.ToDevice.Events, err)
		}
		// The next token acknowledges it.
		next, err := c.SyncRequest(ctx, 0, resp.NextBatch, "", false, "")
		if err != nil || len(next.ToDevice.Events) != 0 {
			t.Fatalf("after acknowledging: %v, %v", next.ToDevice.Events, err)
		}
		if next, err = c.SyncRequest(ctx, 0, next.NextBatch, "", false, ""); err != nil || len(next.ToDevice.Events) != 0 {
			t.Fatalf("later: %v, %v", next.ToDevice.Events, err)
		}
	}

	t.Run("a long-polling sync is woken by a message", func(t *testing.T) {
		resp, err := bob.SyncRequest(ctx, 0, "", "", false, "")
		if err != nil {
			t.Fatal(err)
		}
		got := make(chan *mautrix.RespSync, 1)
		go func() {
			r, err := bob.SyncRequest(ctx, 20000, resp.NextBatch, "", false, "")
			if err != nil {
				t.Error(err)
			}
			got <- r
		}()
		req := map[string]any{"messages": map[string]any{bob.UserID.String(): map[string]any{bob.DeviceID.String(): map[string]any{"body": "direct"}}}}
		if err := call(ctx, alice, "PUT", req, nil, "sendToDevice", "m.test", "t2"); err != nil {
			t.Fatal(err)
		}
		select {
		case r := <-got:
			if r == nil || len(r.ToDevice.Events) != 1 || r.ToDevice.Events[0].Content.Raw["body"] != "direct" {
				t.Fatalf("woken sync: %+v", r)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("the long poll was not woken by the message")
		}
	})

	t.Run("bad messages are refused", func(t *testing.T) {
		for name, body := range map[string]any{
			"no messages":        map[string]any{},
			"content not object": map[string]any{"messages": map[string]any{bob.UserID.String(): map[string]any{"*": "text"}}},
			"not a user ID":      map[string]any{"messages": map[string]any{"bob": map[string]any{"*": map[string]any{}}}},
		} {
			if status, _ := keysErr(call(ctx, alice, "PUT", body, nil, "sendToDevice", "m.test", "bad-"+name)); status != 400 {
				t.Errorf("%s: %d, want 400", name, status)
			}
		}
	})
}

// A user who shares a room with alice learns in /sync and /keys/changes
// that her device keys changed; a user who shares none does not.
func TestDeviceListChangesReachThoseWhoShareARoom(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a := newTestNode(t, testOpts{regToken: "family"})
	alice, bob, carol := a.register(ctx, "alice"), a.register(ctx, "bob"), a.register(ctx, "carol")
	room := privateRoom(t, ctx, alice)
	if _, err := alice.InviteUser(ctx, room, &mautrix.ReqInviteUser{UserID: bob.UserID}); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.JoinRoomByID(ctx, room); err != nil {
		t.Fatal(err)
	}
	tokens := map[*mautrix.Client]string{}
	for _, c := range []*mautrix.Client{bob, carol} {
		resp, err := c.SyncRequest(ctx, 0, "", "", false, "")
		if err != nil {
			t.Fatal(err)
		}
		tokens[c] = resp.NextBatch
	}
	if _, err := alice.UploadKeys(ctx, &mautrix.ReqUploadKeys{DeviceKeys: deviceKeys(alice, "1")}); err != nil {
		t.Fatal(err)
	}
	resp, err := bob.SyncRequest(ctx, 5000, tokens[bob], "", false, "")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(resp.DeviceLists.Changed, alice.UserID) {
		t.Errorf("bob's sync: device_lists %+v, want alice changed", resp.DeviceLists)
	}
	ch, err := bob.GetKeyChanges(ctx, tokens[bob], resp.NextBatch)
	if err != nil || !slices.Contains(ch.Changed, alice.UserID) {
		t.Errorf("bob's /keys/changes: %+v, %v", ch, err)
	}
	cresp, err := carol.SyncRequest(ctx, 0, tokens[carol], "", false, "")
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(cresp.DeviceLists.Changed, alice.UserID) {
		t.Errorf("carol, who shares no room with alice, sees her change")
	}
	if ch, err := carol.GetKeyChanges(ctx, tokens[carol], cresp.NextBatch); err != nil || slices.Contains(ch.Changed, alice.UserID) {
		t.Errorf("carol's /keys/changes: %+v, %v", ch, err)
	}
	if status, _ := keysErr(call(ctx, bob, "GET", nil, nil, "keys", "changes")); status != 400 {
		t.Errorf("/keys/changes without tokens: %d, want 400", status)
	}

	t.Run("a new member is listed as changed", func(t *testing.T) {
		before, err := bob.SyncRequest(ctx, 0, resp.NextBatch, "", false, "")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := alice.InviteUser(ctx, room, &mautrix.ReqInviteUser{UserID: carol.UserID}); err != nil {
			t.Fatal(err)
		}
		if _, err := carol.JoinRoomByID(ctx, room); err != nil {
			t.Fatal(err)
		}
		since, seen := before.NextBatch, false
		testkit.WaitFor(t, 10*time.Second, "carol's join in bob's device lists", func() bool {
			r, err := bob.SyncRequest(ctx, 1000, since, "", false, "")
			if err != nil {
				t.Fatal(err)
			}
			since, seen = r.NextBatch, seen || slices.Contains(r.DeviceLists.Changed, carol.UserID)
			return seen
		})
		resp.NextBatch = since
	})

	t.Run("leaving the only shared room lists alice as left", func(t *testing.T) {
		if _, err := bob.LeaveRoom(ctx, room); err != nil {
			t.Fatal(err)
		}
		left, err := bob.SyncRequest(ctx, 5000, resp.NextBatch, "", false, "")
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(left.DeviceLists.Left, alice.UserID) {
			t.Errorf("bob's sync after leaving: %+v", left.DeviceLists)
		}
	})
}

func TestKeyBackup(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a := newTestNode(t, testOpts{})
	alice := a.register(ctx, "alice")

	if _, err := alice.GetKeyBackupLatestVersion(ctx); err == nil {
		t.Fatal("a backup before any was made")
	} else if status, code := keysErr(err); status != 404 || code != "M_NOT_FOUND" {
		t.Fatalf("no backup: %d %s", status, code)
	}
	authData := map[string]any{"public_key": "pk", "signatures": map[string]any{}}
	create := func() string {
		var v struct {
			Version string `json:"version"`
		}
		if err := call(ctx, alice, "POST", map[string]any{"algorithm": "m.megolm_backup.v1.curve25519-aes-sha2", "auth_data": authData}, &v, "room_keys", "version"); err != nil {
			t.Fatal(err)
		}
		return v.Version
	}
	v1 := create()
	put := func(version, session string, k map[string]any) (map[string]any, error) {
		var out map[string]any
		_, err := alice.MakeRequest(ctx, "PUT", alice.BuildURLWithQuery(mautrix.ClientURLPath{"v3", "room_keys", "keys", "!room:x", session}, map[string]string{"version": version}), k, &out)
		return out, err
	}
	key := func(verified bool, index, forwarded int, tag string) map[string]any {
		return map[string]any{"first_message_index": index, "forwarded_count": forwarded, "is_verified": verified, "session_data": map[string]any{"tag": tag}}
	}
	get := func(version, session string) string {
		var out struct {
			SessionData map[string]any `json:"session_data"`
		}
		if _, err := alice.MakeRequest(ctx, "GET", alice.BuildURLWithQuery(mautrix.ClientURLPath{"v3", "room_keys", "keys", "!room:x", session}, map[string]string{"version": version}), nil, &out); err != nil {
			t.Fatalf("get %s: %v", session, err)
		}
		return fmt.Sprint(out.SessionData["tag"])
	}
	if _, err := put(v1, "s1", key(false, 5, 1, "first")); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		key  map[string]any
		want string
	}{
		{"a later first message index loses", key(false, 9, 0, "later"), "first"},
		{"an earlier first message index wins", key(false, 2, 3, "earlier"), "earlier"},
		{"more forwards at the same index lose", key(false, 2, 4, "forwarded"), "earlier"},
		{"fewer forwards at the same index win", key(false, 2, 0, "direct"), "direct"},
		{"a verified key wins over a better unverified one", key(true, 50, 9, "verified"), "verified"},
		{"an unverified key never replaces a verified one", key(false, 0, 0, "unverified"), "verified"},
	} {
		if _, err := put(v1, "s1", c.key); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := get(v1, "s1"); got != c.want {
			t.Errorf("%s: kept %q, want %q", c.name, got, c.want)
		}
	}
	info, err := alice.GetKeyBackupLatestVersion(ctx)
	if err != nil || string(info.Version) != v1 || info.Count != 1 || info.ETag == "" {
		t.Fatalf("latest version: %+v, %v", info, err)
	}

	v2 := create()
	if _, err := put(v1, "s2", key(false, 0, 0, "x")); err == nil {
		t.Error("keys put in an old version")
	} else if status, code := keysErr(err); status != 403 || code != "M_WRONG_ROOM_KEYS_VERSION" {
		t.Errorf("keys put in an old version: %d %s", status, code)
	}
	if status, _ := keysErr(errOf(put("99", "s2", key(false, 0, 0, "x")))); status != 404 {
		t.Errorf("keys put in a version that never was: %d, want 404", status)
	}
	if status, _ := keysErr(errOf(put(v2, "s2", map[string]any{"first_message_index": 0}))); status != 400 {
		t.Errorf("a key without session_data: %d, want 400", status)
	}
	var missing map[string]any
	if status, _ := keysErr(errOf(alice.MakeRequest(ctx, "GET", alice.BuildURLWithQuery(mautrix.ClientURLPath{"v3", "room_keys", "keys", "!room:x", "nope"}, map[string]string{"version": v1}), nil, &missing))); status != 404 {
		t.Errorf("a session not in the backup: %d, want 404", status)
	}
	if err := alice.DeleteKeyBackupVersion(ctx, id.KeyBackupVersion(v1)); err != nil {
		t.Fatal(err)
	}
	if status, _ := keysErr(alice.DeleteKeyBackupVersion(ctx, id.KeyBackupVersion(v1))); status != 404 {
		t.Errorf("deleting a deleted version: %d, want 404", status)
	}
	if status, _ := keysErr(call(ctx, alice, "PUT", map[string]any{"algorithm": "m.megolm_backup.v1.curve25519-aes-sha2", "auth_data": authData}, nil, "room_keys", "version", v1)); status != 404 {
		t.Errorf("updating a deleted version: %d, want 404", status)
	}
	var gone map[string]any
	if status, _ := keysErr(errOf(alice.MakeRequest(ctx, "DELETE", alice.BuildURLWithQuery(mautrix.ClientURLPath{"v3", "room_keys", "keys"}, map[string]string{"version": v1}), nil, &gone))); status != 404 {
		t.Errorf("deleting the keys of a deleted version: %d, want 404", status)
	}
	if status, _ := keysErr(errOf(alice.MakeRequest(ctx, "GET", alice.BuildURLWithQuery(mautrix.ClientURLPath{"v3", "room_keys", "keys"}, nil), nil, &gone))); status != 400 {
		t.Errorf("keys without a version: %d, want 400", status)
	}
	if _, err := alice.GetKeyBackupVersion(ctx, id.KeyBackupVersion(v1)); err == nil {
		t.Error("a deleted version is still there")
	}
	if info, err := alice.GetKeyBackupLatestVersion(ctx); err != nil || string(info.Version) != v2 {
		t.Errorf("latest after deleting v1: %+v, %v", info, err)
	}
	if status, _ := keysErr(call(ctx, alice, "PUT", map[string]any{"algorithm": "other", "auth_data": authData}, nil, "room_keys", "version", v2)); status != 400 {
		t.Errorf("changing a backup's algorithm: %d, want 400", status)
	}
}

func errOf[T any](_ T, err error) error { return err }

// firstKey is a cross-signing key's public key.
func firstKey(k mautrix.CrossSigningKeys) id.Ed25519 { return k.FirstKey() }

// A device forgotten (logged out, deleted) no longer shows, and those
// sharing a room with its user are told.
func TestAForgottenDeviceIsNoLongerShown(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a := newTestNode(t, testOpts{regToken: "family"})
	alice, bob := a.register(ctx, "alice"), a.register(ctx, "bob")
	room := privateRoom(t, ctx, alice)
	if _, err := alice.InviteUser(ctx, room, &mautrix.ReqInviteUser{UserID: bob.UserID}); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.JoinRoomByID(ctx, room); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.UploadKeys(ctx, &mautrix.ReqUploadKeys{DeviceKeys: deviceKeys(alice, "1"), OneTimeKeys: otks("a", 2)}); err != nil {
		t.Fatal(err)
	}
	resp, err := bob.SyncRequest(ctx, 0, "", "", false, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.api.ForgetDevice(alice.UserID.String(), alice.DeviceID.String()); err != nil {
		t.Fatal(err)
	}
	q, err := bob.QueryKeys(ctx, &mautrix.ReqQueryKeys{DeviceKeys: mautrix.DeviceKeysRequest{alice.UserID: nil}})
	if err != nil {
		t.Fatal(err)
	}
	if len(q.DeviceKeys[alice.UserID]) != 0 {
		t.Errorf("a forgotten device is still shown: %v", q.DeviceKeys[alice.UserID])
	}
	cl, err := bob.ClaimKeys(ctx, &mautrix.ReqClaimKeys{OneTimeKeys: mautrix.OneTimeKeysRequest{alice.UserID: {alice.DeviceID: id.KeyAlgorithmSignedCurve25519}}})
	if err != nil || len(cl.OneTimeKeys[alice.UserID]) != 0 {
		t.Errorf("a forgotten device's one-time keys are still claimed: %v, %v", cl.OneTimeKeys, err)
	}
	next, err := bob.SyncRequest(ctx, 5000, resp.NextBatch, "", false, "")
	if err != nil || !slices.Contains(next.DeviceLists.Changed, alice.UserID) {
		t.Errorf("bob is not told alice's devices changed: %+v, %v", next.DeviceLists, err)
	}

	t.Run("a device that logs out is forgotten", func(t *testing.T) {
		phone := secondDevice(t, ctx, a, alice, "alice")
		if _, err := phone.UploadKeys(ctx, &mautrix.ReqUploadKeys{DeviceKeys: deviceKeys(phone, "p"), OneTimeKeys: otks("p", 2)}); err != nil {
			t.Fatal(err)
		}
		q, err := bob.QueryKeys(ctx, &mautrix.ReqQueryKeys{DeviceKeys: mautrix.DeviceKeysRequest{alice.UserID: nil}})
		if err != nil || q.DeviceKeys[alice.UserID][phone.DeviceID].UserID != alice.UserID {
			t.Fatalf("the phone's keys before logout: %+v, %v", q.DeviceKeys, err)
		}
		if _, err := phone.Logout(ctx); err != nil {
			t.Fatal(err)
		}
		q, err = bob.QueryKeys(ctx, &mautrix.ReqQueryKeys{DeviceKeys: mautrix.DeviceKeysRequest{alice.UserID: nil}})
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := q.DeviceKeys[alice.UserID][phone.DeviceID]; ok {
			t.Errorf("a logged-out device's keys are still shown")
		}
	})
}
