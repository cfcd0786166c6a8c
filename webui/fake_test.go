package webui

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-p2p/parley/errs"
)

// fakeServer is the fake node's server name: like a real one, 64 hex digits.
var fakeServer = strings.Repeat("a1", 32)

// Rooms the fake knows. roomV12 has a hash-style ID; roomV11 has the older
// "!opaque:server" form, whose ':' must survive URL escaping.
const (
	roomV12 = "!GdZkq5vOvr1pR2xYk7eD3sWbN0aF8mHcTjLuQi4zE6o"
	roomV11 = "!old:example.org"
)

// errInternal is what the fake returns when told to fail: a plain error
// whose text must never reach a client.
var errInternal = errors.New("badger: value log file 000042.vlog is corrupt at offset 1234")

// sentEvent is one Send call as the fake saw it.
type sentEvent struct {
	Room, Type string
	StateKey   *string
	Content    string
	TxnID      string
}

// fakeBackend is an in-memory Backend. It records every call it gets in
// calls, and every call that would change the node in changes, so tests can
// check that a refused request reached nothing.
type fakeBackend struct {
	mu       sync.Mutex
	regToken string
	claim    string        // the claim code while no account exists
	fail     bool          // read calls return errInternal
	held     chan struct{} // if set, Sync signals here, then waits for its context to end

	passwords map[string]string   // localpart -> password
	tokens    map[string]*Session // access token -> session
	filters   map[string]json.RawMessage
	joined    map[string][]string // user ID -> rooms
	nextID    int

	calls    []string
	changes  []string
	sent     []sentEvent
	created  []*CreateRoomRequest
	messages []MessagesRequest
	syncs    []SyncRequest
	lookups  []string // "room|type|key" of StateEvent, "room|event" of Event
}

var _ Backend = (*fakeBackend)(nil)

func newFake() *fakeBackend {
	return &fakeBackend{
		passwords: map[string]string{},
		tokens:    map[string]*Session{},
		filters:   map[string]json.RawMessage{},
		joined:    map[string][]string{},
		claim:     testClaimCode,
	}
}

// testClaimCode is the fake node's claim code.
const testClaimCode = "claim-me-now"

func userID(local string) string { return "@" + local + ":" + fakeServer }

// addUser creates an account joined to both rooms and returns its token.
func (f *fakeBackend) addUser(local, password string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.passwords[local] = password
	tok := local + "-token"
	f.tokens[tok] = &Session{UserID: userID(local), DeviceID: "DEV" + strings.ToUpper(local)}
	f.joined[userID(local)] = []string{roomV12, roomV11}
	return tok
}

func (f *fakeBackend) call(name string) {
	f.mu.Lock()
	f.calls = append(f.calls, name)
	f.mu.Unlock()
}

func (f *fakeBackend) change(format string, args ...any) {
	f.mu.Lock()
	f.changes = append(f.changes, fmt.Sprintf(format, args...))
	f.mu.Unlock()
}

// Calls and Changes return copies, safe to read while a server runs.
func (f *fakeBackend) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func (f *fakeBackend) Changes() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.changes)
}

func (f *fakeBackend) newID(prefix string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextID++
	return fmt.Sprintf("%s%d", prefix, f.nextID)
}

func (f *fakeBackend) ServerName() string { return fakeServer }

func (f *fakeBackend) Status() any {
	f.call("Status")
	return map[string]any{"server_name": fakeServer}
}

func (f *fakeBackend) RegistrationToken() string {
	f.call("RegistrationToken")
	return f.regToken
}

func (f *fakeBackend) ClaimCode() string {
	f.call("ClaimCode")
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.passwords) > 0 {
		return ""
	}
	return f.claim
}

func (f *fakeBackend) AccountCount() (int, error) {
	f.call("AccountCount")
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.passwords), nil
}

func (f *fakeBackend) AccountExists(local string) (bool, error) {
	f.call("AccountExists")
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.passwords[local]
	return ok, nil
}

func (f *fakeBackend) CreateAccount(_ context.Context, req AccountRequest) (*LoginResult, error) {
	f.call("CreateAccount")
	f.mu.Lock()
	_, taken := f.passwords[req.Localpart]
	owned := len(f.passwords) > 0
	f.mu.Unlock()
	if req.First && owned {
		return nil, errs.Forbiddenf("this node already has its owner")
	}
	if taken {
		return nil, &Error{Status: http.StatusBadRequest, Code: "M_USER_IN_USE", Message: "taken"}
	}
	tok := f.addUser(req.Localpart, req.Password)
	f.change("CreateAccount %s first=%v", req.Localpart, req.First)
	return &LoginResult{UserID: userID(req.Localpart), AccessToken: tok, DeviceID: "DEV" + strings.ToUpper(req.Localpart)}, nil
}

func (f *fakeBackend) Login(_ context.Context, local, password, deviceID, _ string) (*LoginResult, error) {
	f.call("Login")
	f.mu.Lock()
	want, ok := f.passwords[local]
	f.mu.Unlock()
	if !ok || want != password {
		return nil, errs.Forbiddenf("invalid username or password") // as the node says it
	}
	if deviceID == "" {
		deviceID = f.newID("DEVICE")
	}
	tok := f.newID("login-token-")
	f.mu.Lock()
	f.tokens[tok] = &Session{UserID: userID(local), DeviceID: deviceID}
	f.mu.Unlock()
	f.change("Login %s", local)
	return &LoginResult{UserID: userID(local), AccessToken: tok, DeviceID: deviceID}, nil
}

func (f *fakeBackend) Authenticate(token string) (*Session, error) {
	f.call("Authenticate")
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.tokens[token]
	if !ok {
		return nil, &Error{Status: http.StatusUnauthorized, Code: "M_UNKNOWN_TOKEN", Message: "unknown or expired access token"}
	}
	return s, nil
}

func (f *fakeBackend) Logout(token string) error {
	f.call("Logout")
	f.mu.Lock()
	delete(f.tokens, token)
	f.mu.Unlock()
	f.change("Logout")
	return nil
}

func (f *fakeBackend) PutFilter(user string, filter json.RawMessage) (string, error) {
	f.call("PutFilter")
	id := f.newID("f")
	f.mu.Lock()
	f.filters[user+"|"+id] = slices.Clone(filter)
	f.mu.Unlock()
	f.change("PutFilter %s", user)
	return id, nil
}

func (f *fakeBackend) Filter(user, id string) (json.RawMessage, error) {
	f.call("Filter")
	f.mu.Lock()
	defer f.mu.Unlock()
	if b, ok := f.filters[user+"|"+id]; ok {
		return b, nil
	}
	return nil, errs.NotFoundf("no filter %q", id)
}

func (f *fakeBackend) Profile(user string) (map[string]any, error) {
	f.call("Profile")
	if user != userID("alice") {
		return nil, errs.NotFoundf("no profile for %s", user)
	}
	return map[string]any{"displayname": "Alice"}, nil
}

func (f *fakeBackend) SetProfile(_ context.Context, user, field, value string) error {
	f.call("SetProfile")
	f.change("SetProfile %s %s=%s", user, field, value)
	return nil
}

func (f *fakeBackend) CreateRoom(_ context.Context, _ *Session, req *CreateRoomRequest) (string, error) {
	f.call("CreateRoom")
	f.mu.Lock()
	f.created = append(f.created, req)
	f.mu.Unlock()
	f.change("CreateRoom")
	return f.newID("!new"), nil
}

func (f *fakeBackend) JoinedRooms(s *Session) ([]string, error) {
	f.call("JoinedRooms")
	if f.fail {
		return nil, fmt.Errorf("node: joined rooms of %s: %w", s.UserID, errInternal)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.joined[s.UserID]), nil
}

func (f *fakeBackend) knownRoom(roomID string) error {
	if roomID != roomV12 && roomID != roomV11 {
		return errs.Forbiddenf("you are not in room %s", roomID)
	}
	return nil
}

func (f *fakeBackend) Invite(_ context.Context, _ *Session, roomID, userID, _ string) error {
	f.call("Invite")
	if err := f.knownRoom(roomID); err != nil {
		return err
	}
	f.change("Invite %s %s", roomID, userID)
	return nil
}

func (f *fakeBackend) Join(_ context.Context, _ *Session, target string) (string, error) {
	f.call("Join")
	f.change("Join %s", target)
	return target, nil
}

func (f *fakeBackend) Leave(_ context.Context, _ *Session, roomID, _ string) error {
	f.call("Leave")
	f.change("Leave %s", roomID)
	return nil
}

func (f *fakeBackend) RoomDebug(_ *Session, roomID string) (any, error) {
	f.call("RoomDebug")
	if err := f.knownRoom(roomID); err != nil {
		return nil, err
	}
	return map[string]any{"room_id": roomID}, nil
}

func (f *fakeBackend) CreateLink(_ context.Context, _ *Session, roomID string, maxUses int, expiresIn time.Duration) (*LinkInfo, error) {
	f.call("CreateLink")
	if err := f.knownRoom(roomID); err != nil {
		return nil, err
	}
	f.change("CreateLink %s %d %v", roomID, maxUses, expiresIn)
	return &LinkInfo{ID: "l1", Link: "parley:join/x", MaxUses: maxUses}, nil
}

func (f *fakeBackend) Links(_ *Session, roomID string) ([]LinkInfo, error) {
	f.call("Links")
	return []LinkInfo{}, f.knownRoom(roomID)
}

func (f *fakeBackend) RevokeLink(_ context.Context, _ *Session, roomID, id string) error {
	f.call("RevokeLink")
	f.change("RevokeLink %s %s", roomID, id)
	return f.knownRoom(roomID)
}

func (f *fakeBackend) JoinLink(_ context.Context, _ *Session, link string) (string, error) {
	f.call("JoinLink")
	f.change("JoinLink %s", link)
	return roomV12, nil
}

func (f *fakeBackend) BlockedServers(*Session) ([]string, error) {
	f.call("BlockedServers")
	return []string{}, nil
}

func (f *fakeBackend) BlockServer(_ context.Context, _ *Session, server string) error {
	f.call("BlockServer")
	f.change("BlockServer %s", server)
	return nil
}

func (f *fakeBackend) UnblockServer(_ context.Context, _ *Session, server string) error {
	f.call("UnblockServer")
	f.change("UnblockServer %s", server)
	return nil
}

func (f *fakeBackend) Moderate(_ context.Context, _ *Session, roomID, target, membership, _ string) error {
	f.call("Moderate")
	if err := f.knownRoom(roomID); err != nil {
		return err
	}
	f.change("Moderate %s %s %s", roomID, target, membership)
	return nil
}

func (f *fakeBackend) Send(_ context.Context, _ *Session, roomID, evType string, stateKey *string, content json.RawMessage, txnID string) (string, error) {
	f.call("Send")
	if err := f.knownRoom(roomID); err != nil {
		return "", err
	}
	f.mu.Lock()
	f.sent = append(f.sent, sentEvent{Room: roomID, Type: evType, StateKey: stateKey, Content: string(content), TxnID: txnID})
	f.mu.Unlock()
	f.change("Send %s %s", roomID, evType)
	return f.newID("$event"), nil
}

func (f *fakeBackend) State(_ *Session, roomID string) ([]ClientEvent, error) {
	f.call("State")
	return nil, f.knownRoom(roomID)
}

func (f *fakeBackend) StateEvent(_ *Session, roomID, evType, stateKey string) (*ClientEvent, error) {
	f.call("StateEvent")
	f.mu.Lock()
	f.lookups = append(f.lookups, roomID+"|"+evType+"|"+stateKey)
	f.mu.Unlock()
	if err := f.knownRoom(roomID); err != nil {
		return nil, err
	}
	if evType != "m.room.name" {
		return nil, errs.NotFoundf("no %s state", evType)
	}
	return &ClientEvent{Type: evType, StateKey: &stateKey, EventID: "$name", Content: json.RawMessage(`{"name":"Test room"}`)}, nil
}

func (f *fakeBackend) Members(_ *Session, roomID string, _ MembersQuery) ([]ClientEvent, error) {
	f.call("Members")
	return nil, f.knownRoom(roomID)
}

func (f *fakeBackend) JoinedMembers(_ *Session, roomID string) (map[string]JoinedMember, error) {
	f.call("JoinedMembers")
	return map[string]JoinedMember{userID("alice"): {DisplayName: "Alice"}}, f.knownRoom(roomID)
}

func (f *fakeBackend) Event(_ *Session, roomID, eventID string) (*ClientEvent, error) {
	f.call("Event")
	f.mu.Lock()
	f.lookups = append(f.lookups, roomID+"|"+eventID)
	f.mu.Unlock()
	if err := f.knownRoom(roomID); err != nil {
		return nil, err
	}
	return &ClientEvent{EventID: eventID, RoomID: roomID, Type: "m.room.message", Content: json.RawMessage(`{}`)}, nil
}

func (f *fakeBackend) Messages(_ context.Context, _ *Session, req MessagesRequest) (*MessagesResponse, error) {
	f.call("Messages")
	f.mu.Lock()
	f.messages = append(f.messages, req)
	f.mu.Unlock()
	return &MessagesResponse{Start: "s1"}, f.knownRoom(req.RoomID)
}

func (f *fakeBackend) Sync(ctx context.Context, _ *Session, req SyncRequest) (*SyncResponse, error) {
	f.call("Sync")
	f.mu.Lock()
	f.syncs = append(f.syncs, req)
	f.mu.Unlock()
	if f.held != nil {
		f.held <- struct{}{}
		<-ctx.Done()
		return &SyncResponse{NextBatch: "cut short"}, nil
	}
	return &SyncResponse{NextBatch: "s2"}, nil
}

// The harness drives Server.Handler in process; Host headers name testAddr.

const testAddr = "127.0.0.1:18008"

type harness struct {
	t    *testing.T
	fake *fakeBackend
	h    http.Handler
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	f := newFake()
	return &harness{t: t, fake: f, h: New(Config{Addr: testAddr}, f).Handler()}
}

// option changes a request before it is sent.
type option func(*http.Request)

func token(tok string) option {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
}

func origin(o string) option { return func(r *http.Request) { r.Header.Set("Origin", o) } }

func host(h string) option { return func(r *http.Request) { r.Host = h } }

func header(k, v string) option { return func(r *http.Request) { r.Header.Set(k, v) } }

// do sends one request; path may carry a query and escaped segments.
func (h *harness) do(method, path, body string, opts ...option) *httptest.ResponseRecorder {
	h.t.Helper()
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	r.Host = testAddr
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	for _, o := range opts {
		o(r)
	}
	w := httptest.NewRecorder()
	h.h.ServeHTTP(w, r)
	return w
}

// decode parses a JSON object response.
func decode(t *testing.T, w *httptest.ResponseRecorder) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
		t.Fatalf("response is not a JSON object: %v: %q", err, w.Body.String())
	}
	return m
}

// wantStatus fails unless the response has this status.
func wantStatus(t *testing.T, w *httptest.ResponseRecorder, status int) {
	t.Helper()
	if w.Code != status {
		t.Fatalf("status = %d, want %d; body %s", w.Code, status, w.Body.String())
	}
}

// wantError fails unless the response is a Matrix error with this status and errcode.
func wantError(t *testing.T, w *httptest.ResponseRecorder, status int, code string) {
	t.Helper()
	wantStatus(t, w, status)
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	m := decode(t, w)
	if m["errcode"] != code {
		t.Errorf("errcode = %v, want %s; body %s", m["errcode"], code, w.Body.String())
	}
	if msg, _ := m["error"].(string); msg == "" {
		t.Errorf("error message is empty; body %s", w.Body.String())
	}
}

// wantNoChanges fails if the backend recorded any change.
func wantNoChanges(t *testing.T, f *fakeBackend) {
	t.Helper()
	if c := f.Changes(); len(c) > 0 {
		t.Errorf("backend changed: %q, want nothing", c)
	}
}

// esc percent-encodes every byte that is not a letter or digit, the most a
// client may escape (matrix-js-sdk's encodeURIComponent escapes ':', '$'
// and '@' but not '!').
func esc(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

var escRoomV12 = esc(roomV12)

func writeFile(path, content string) error { return os.WriteFile(path, []byte(content), 0o644) }

// decodeInto parses a JSON response into v.
func decodeInto(t *testing.T, w *httptest.ResponseRecorder, v any) {
	t.Helper()
	if err := json.Unmarshal(w.Body.Bytes(), v); err != nil {
		t.Fatalf("response %q: %v", w.Body.String(), err)
	}
}
