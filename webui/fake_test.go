package webui

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/parley-p2p/parley/errs"
)

// One hand-written fake per role, each only as smart as the tests need.
// The fakes of one harness share a record, so a test can check that a
// refused request reached no role at all.

// fakeServer is the fake node's server name: like a real one, 64 hex digits.
var fakeServer = strings.Repeat("a1", 32)

// Rooms the fakes know. roomV12 has a hash-style ID; roomV11 has the older
// "!opaque:server" form, whose ':' must survive URL escaping.
const (
	roomV12 = "!GdZkq5vOvr1pR2xYk7eD3sWbN0aF8mHcTjLuQi4zE6o"
	roomV11 = "!old:example.org"
)

// testClaimCode is the fake node's claim code.
const testClaimCode = "claim-me-now"

// errInternal is what a fake returns when told to fail: a plain error
// whose text must never reach a client.
var errInternal = errors.New("badger: value log file 000042.vlog is corrupt at offset 1234")

func userID(local string) string { return "@" + local + ":" + fakeServer }

// record is every call the fakes got, and every one that would change the
// node.
type record struct {
	mu      sync.Mutex
	calls   []string
	changes []string
	nextID  int
}

func (r *record) call(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, name)
}

func (r *record) change(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.changes = append(r.changes, fmt.Sprintf(format, args...))
}

// changed records a call that changed the node.
func (r *record) changed(name, format string, args ...any) {
	r.call(name)
	r.change(format, args...)
}

func (r *record) newID(prefix string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.nextID++
	return fmt.Sprintf("%s%d", prefix, r.nextID)
}

// Calls and Changes return copies, safe to read while a server runs.
func (r *record) Calls() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

func (r *record) Changes() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.changes)
}

// fakeAccounts keeps accounts, tokens and filters in maps, and refuses as
// the node does. Like every fake here it is called from the test's own
// goroutine (through Handler) or after the test is done changing it, so
// only the shared record takes a lock.
type fakeAccounts struct {
	*record
	regToken  string
	passwords map[string]string   // localpart -> password
	tokens    map[string]*Session // access token -> session
	filters   map[string]json.RawMessage
}

func newFakeAccounts(rec *record) *fakeAccounts {
	return &fakeAccounts{record: rec, passwords: map[string]string{},
		tokens: map[string]*Session{}, filters: map[string]json.RawMessage{}}
}

// addUser creates an account and returns its token, "<local>-token".
func (f *fakeAccounts) addUser(local, password string) string {
	f.passwords[local] = password
	tok := local + "-token"
	f.tokens[tok] = &Session{UserID: userID(local), DeviceID: "DEV" + strings.ToUpper(local)}
	return tok
}

func (f *fakeAccounts) ServerName() string { return fakeServer }

func (f *fakeAccounts) RegistrationToken() string { f.call("RegistrationToken"); return f.regToken }

func (f *fakeAccounts) ClaimCode() string {
	f.call("ClaimCode")
	if len(f.passwords) > 0 {
		return ""
	}
	return testClaimCode
}

func (f *fakeAccounts) AccountCount() (int, error) {
	f.call("AccountCount")
	return len(f.passwords), nil
}

func (f *fakeAccounts) AccountExists(local string) (bool, error) {
	f.call("AccountExists")
	_, ok := f.passwords[local]
	return ok, nil
}

func (f *fakeAccounts) CreateAccount(_ context.Context, req AccountRequest) (*LoginResult, error) {
	f.call("CreateAccount")
	_, taken := f.passwords[req.Localpart]
	owned := len(f.passwords) > 0
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

func (f *fakeAccounts) Login(_ context.Context, local, password, deviceID, _ string) (*LoginResult, error) {
	f.call("Login")
	want, ok := f.passwords[local]
	if !ok || want != password {
		return nil, errs.Forbiddenf("invalid username or password")
	}
	if deviceID == "" {
		deviceID = f.newID("DEVICE")
	}
	tok := f.newID("login-token-")
	f.tokens[tok] = &Session{UserID: userID(local), DeviceID: deviceID}
	f.change("Login %s", local)
	return &LoginResult{UserID: userID(local), AccessToken: tok, DeviceID: deviceID}, nil
}

func (f *fakeAccounts) Authenticate(token string) (*Session, error) {
	f.call("Authenticate")
	if s, ok := f.tokens[token]; ok {
		return s, nil
	}
	return nil, &Error{Status: http.StatusUnauthorized, Code: "M_UNKNOWN_TOKEN", Message: "unknown or expired access token"}
}

func (f *fakeAccounts) Logout(token string) error {
	f.call("Logout")
	delete(f.tokens, token)
	f.change("Logout")
	return nil
}

func (f *fakeAccounts) PutFilter(user string, filter json.RawMessage) (string, error) {
	f.call("PutFilter")
	id := f.newID("f")
	f.filters[user+"|"+id] = slices.Clone(filter)
	f.change("PutFilter %s", user)
	return id, nil
}

func (f *fakeAccounts) Filter(user, id string) (json.RawMessage, error) {
	f.call("Filter")
	if b, ok := f.filters[user+"|"+id]; ok {
		return b, nil
	}
	return nil, errs.NotFoundf("no filter %q", id)
}

func (f *fakeAccounts) Profile(user string) (map[string]any, error) {
	f.call("Profile")
	if user != userID("alice") {
		return nil, errs.NotFoundf("no profile for %s", user)
	}
	return map[string]any{"displayname": "Alice"}, nil
}

func (f *fakeAccounts) SetProfile(_ context.Context, user, field, value string) error {
	f.changed("SetProfile", "SetProfile %s %s=%s", user, field, value)
	return nil
}

// sentEvent is one Send call as the fake saw it.
type sentEvent struct {
	Room, Type string
	StateKey   *string
	Content    string
	TxnID      string
}

// fakeRooms knows roomV12 and roomV11, and refuses to send to any other
// room.
type fakeRooms struct {
	*record
	fail     bool     // JoinedRooms returns errInternal
	joined   []string // every user's rooms
	sent     []sentEvent
	created  []*CreateRoomRequest
	messages []MessagesRequest
	lookups  []string // "room|type|key" of StateEvent, "room|event" of Event
}

func knownRoom(roomID string) error {
	if roomID != roomV12 && roomID != roomV11 {
		return errs.Forbiddenf("you are not in room %s", roomID)
	}
	return nil
}

func (f *fakeRooms) CreateRoom(_ context.Context, _ *Session, req *CreateRoomRequest) (string, error) {
	f.call("CreateRoom")
	f.created = append(f.created, req)
	f.change("CreateRoom")
	return f.newID("!new"), nil
}

func (f *fakeRooms) JoinedRooms(s *Session) ([]string, error) {
	f.call("JoinedRooms")
	if f.fail {
		return nil, fmt.Errorf("node: joined rooms of %s: %w", s.UserID, errInternal)
	}
	return f.joined, nil
}

func (f *fakeRooms) Send(_ context.Context, _ *Session, roomID, evType string, stateKey *string, content json.RawMessage, txnID string) (string, error) {
	f.call("Send")
	if err := knownRoom(roomID); err != nil {
		return "", err
	}
	f.sent = append(f.sent, sentEvent{Room: roomID, Type: evType, StateKey: stateKey, Content: string(content), TxnID: txnID})
	f.change("Send %s %s", roomID, evType)
	return f.newID("$event"), nil
}

func (f *fakeRooms) State(*Session, string) ([]ClientEvent, error) { f.call("State"); return nil, nil }

func (f *fakeRooms) StateEvent(_ *Session, roomID, evType, stateKey string) (*ClientEvent, error) {
	f.call("StateEvent")
	f.lookups = append(f.lookups, roomID+"|"+evType+"|"+stateKey)
	if evType != "m.room.name" {
		return nil, errs.NotFoundf("no %s state", evType)
	}
	return &ClientEvent{Type: evType, StateKey: &stateKey, EventID: "$name", Content: json.RawMessage(`{"name":"Test room"}`)}, nil
}

func (f *fakeRooms) Members(*Session, string, MembersQuery) ([]ClientEvent, error) {
	f.call("Members")
	return nil, nil
}

func (f *fakeRooms) JoinedMembers(*Session, string) (map[string]JoinedMember, error) {
	f.call("JoinedMembers")
	return map[string]JoinedMember{userID("alice"): {DisplayName: "Alice"}}, nil
}

func (f *fakeRooms) Event(_ *Session, roomID, eventID string) (*ClientEvent, error) {
	f.call("Event")
	f.lookups = append(f.lookups, roomID+"|"+eventID)
	return &ClientEvent{EventID: eventID, RoomID: roomID, Type: "m.room.message", Content: json.RawMessage(`{}`)}, nil
}

func (f *fakeRooms) Messages(_ context.Context, _ *Session, req MessagesRequest) (*MessagesResponse, error) {
	f.call("Messages")
	f.messages = append(f.messages, req)
	return &MessagesResponse{Start: "s1"}, nil
}

func (f *fakeRooms) RoomDebug(_ *Session, roomID string) (any, error) {
	f.call("RoomDebug")
	return map[string]any{"room_id": roomID}, nil
}

// fakeMembership records each change and allows it.
type fakeMembership struct{ *record }

func (f fakeMembership) Invite(_ context.Context, _ *Session, roomID, userID, _ string) error {
	f.changed("Invite", "Invite %s %s", roomID, userID)
	return nil
}

func (f fakeMembership) Join(_ context.Context, _ *Session, target string, _ []string) (string, error) {
	f.changed("Join", "Join %s", target)
	return target, nil
}

func (f fakeMembership) Leave(_ context.Context, _ *Session, roomID, _ string) error {
	f.changed("Leave", "Leave %s", roomID)
	return nil
}

func (f fakeMembership) Moderate(_ context.Context, _ *Session, roomID, target, membership, _ string) error {
	f.changed("Moderate", "Moderate %s %s %s", roomID, target, membership)
	return nil
}

// fakeSyncer records each request and answers next_batch "s2".
type fakeSyncer struct {
	*record
	syncs []SyncRequest
	held  chan struct{} // if set, Sync signals here, then waits for its context to end
}

func (f *fakeSyncer) Sync(ctx context.Context, _ *Session, req SyncRequest) (*SyncResponse, error) {
	f.call("Sync")
	f.syncs = append(f.syncs, req)
	if f.held != nil {
		f.held <- struct{}{}
		<-ctx.Done()
		return &SyncResponse{NextBatch: "cut short"}, nil
	}
	return &SyncResponse{NextBatch: "s2"}, nil
}

// fakeAdmin has a status; no test blocks servers yet.
type fakeAdmin struct{ *record }

func (f fakeAdmin) Status() any {
	f.call("Status")
	return map[string]any{"server_name": fakeServer}
}

func (f fakeAdmin) BlockedServers(*Session) ([]string, error)             { return nil, nil }
func (f fakeAdmin) BlockServer(context.Context, *Session, string) error   { return nil }
func (f fakeAdmin) UnblockServer(context.Context, *Session, string) error { return nil }
