package webui

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-p2p/parley/errs"
)

// otherServer is a member's server in the fake's room, beside fakeServer.
var otherServer = strings.Repeat("b2", 32)

// fakeE2EE knows one room, roomV12, where alice (on this node) and bob
// (on otherServer) are joined; anyone else is not a member.
type fakeE2EE struct {
	*record
	mu       sync.Mutex
	verified map[string]Verification // by server
}

func newFakeE2EE(rec *record) *fakeE2EE {
	return &fakeE2EE{record: rec, verified: map[string]Verification{}}
}

func (f *fakeE2EE) member(s *Session, roomID string) error {
	if roomID != roomV12 || s.UserID != userID("alice") {
		return errs.Forbiddenf("you are not joined to room %s", roomID)
	}
	return nil
}

func (f *fakeE2EE) RoomE2EE(s *Session, roomID string) (*RoomE2EE, error) {
	f.call("RoomE2EE")
	if err := f.member(s, roomID); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	bob := E2EEMember{UserID: "@bob:" + otherServer, Membership: "join", Server: otherServer, SafetyNumber: strings.TrimSpace(strings.Repeat("12345 ", 12))}
	if v, ok := f.verified[otherServer]; ok {
		bob.Verified = &v
	}
	return &RoomE2EE{Encrypted: true, Algorithm: "m.megolm.v1.aes-sha2", KEM: "X-Wing", Members: []E2EEMember{
		{UserID: userID("alice"), Membership: "join", Server: fakeServer, ThisDevice: true}, bob,
	}}, nil
}

func (f *fakeE2EE) SetVerified(_ context.Context, s *Session, roomID, server, via string, on bool) error {
	f.call("SetVerified")
	if err := f.member(s, roomID); err != nil {
		return err
	}
	if server != otherServer {
		return errs.NotFoundf("no member of room %s is on server %s", roomID, server)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if on {
		f.verified[server] = Verification{Via: via, TS: time.Now().UnixMilli()}
	} else {
		delete(f.verified, server)
	}
	f.change("verified %s %v %s", server, on, via)
	return nil
}

func (f *fakeE2EE) VerifyLinkMaker(_ context.Context, s *Session, link string) (string, error) {
	f.call("VerifyLinkMaker")
	if link != "parley:join/in-person" {
		return "", errs.Invalidf("this invite link does not say who made it")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.verified[otherServer] = Verification{Via: ViaLink, TS: time.Now().UnixMilli()}
	f.change("verified %s via link", otherServer)
	return otherServer, nil
}

// fakeLinks joins any link to roomV12.
type fakeLinks struct{ *record }

func (f fakeLinks) CreateLink(context.Context, *Session, string, int, time.Duration) (*LinkInfo, error) {
	return nil, errInternal
}
func (f fakeLinks) Links(*Session, string) ([]LinkInfo, error)                 { return nil, nil }
func (f fakeLinks) RevokeLink(context.Context, *Session, string, string) error { return nil }
func (f fakeLinks) JoinLink(_ context.Context, _ *Session, link string) (string, error) {
	f.changed("JoinLink", "joined by %s", link)
	return roomV12, nil
}

var e2eePath = "/_parley/v1/rooms/" + escRoomV12 + "/e2ee"

// bobVerified is what GET …/e2ee says of bob's server: nil or its via.
func bobVerified(t *testing.T, h *harness, tok string) *Verification {
	t.Helper()
	w := h.do("GET", e2eePath, "", token(tok))
	wantStatus(t, w, http.StatusOK)
	var info RoomE2EE
	decodeInto(t, w, &info)
	if !info.Encrypted || info.Algorithm != "m.megolm.v1.aes-sha2" || len(info.Members) != 2 {
		t.Fatalf("GET e2ee: %s", w.Body.String())
	}
	return info.Members[1].Verified
}

func TestE2EEVerifyRoundTrip(t *testing.T) {
	h := newHarness(t, withE2EE)
	tok := h.acc.addUser("alice", "pw")
	if v := bobVerified(t, h, tok); v != nil {
		t.Fatalf("bob's server is verified before anyone checked it: %+v", v)
	}
	for _, via := range []string{ViaQR, ViaManual} {
		wantStatus(t, h.do("POST", e2eePath+"/verify", `{"server":"`+otherServer+`","via":"`+via+`"}`, token(tok)), http.StatusOK)
		if v := bobVerified(t, h, tok); v == nil || v.Via != via || v.TS == 0 {
			t.Fatalf("after verifying via %s, bob's server shows %+v", via, v)
		}
	}
	wantStatus(t, h.do("DELETE", e2eePath+"/verify/"+otherServer, "", token(tok)), http.StatusOK)
	if v := bobVerified(t, h, tok); v != nil {
		t.Fatalf("after DELETE, bob's server still shows %+v", v)
	}
	wantStatus(t, h.do("POST", e2eePath+"/verify", `{"server":"`+otherServer+`","via":"qr"}`, token(tok)), http.StatusOK)
	wantStatus(t, h.do("POST", e2eePath+"/verify", `{"server":"`+otherServer+`","verified":false}`, token(tok)), http.StatusOK)
	if v := bobVerified(t, h, tok); v != nil {
		t.Fatalf(`after "verified": false, bob's server still shows %+v`, v)
	}
}

func TestE2EERefusesBadInputAndNonMembers(t *testing.T) {
	verify := e2eePath + "/verify"
	tests := []struct {
		name, method, path, body string
		user                     string
		status                   int
		code                     string
		reachesBackend           bool
	}{
		{"a body that is not JSON", "POST", verify, `{"server":`, "alice", 400, "M_NOT_JSON", false},
		{"no server", "POST", verify, `{"via":"qr"}`, "alice", 400, "M_MISSING_PARAM", false},
		{"a server that is not 64 hex digits", "POST", verify, `{"server":"example.org","via":"qr"}`, "alice", 400, "M_INVALID_PARAM", false},
		{"a server in upper case", "POST", verify, `{"server":"` + strings.ToUpper(otherServer) + `","via":"qr"}`, "alice", 400, "M_INVALID_PARAM", false},
		{"no via", "POST", verify, `{"server":"` + otherServer + `"}`, "alice", 400, "M_INVALID_PARAM", false},
		{"via link, which only a join in person gives", "POST", verify, `{"server":"` + otherServer + `","via":"link"}`, "alice", 400, "M_INVALID_PARAM", false},
		{"a server with no member in the room", "POST", verify, `{"server":"` + strings.Repeat("c3", 32) + `","via":"qr"}`, "alice", 404, "M_NOT_FOUND", true},
		{"DELETE of a bad server name", "DELETE", verify + "/nope", "", "alice", 400, "M_INVALID_PARAM", false},
		{"a non-member reading the panel", "GET", e2eePath, "", "mallory", 403, "M_FORBIDDEN", true},
		{"a non-member verifying", "POST", verify, `{"server":"` + otherServer + `","via":"qr"}`, "mallory", 403, "M_FORBIDDEN", true},
		{"a non-member unverifying", "DELETE", verify + "/" + otherServer, "", "mallory", 403, "M_FORBIDDEN", true},
		{"a room the node does not know", "GET", "/_parley/v1/rooms/" + esc("!nowhere") + "/e2ee", "", "alice", 403, "M_FORBIDDEN", true},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is refused and changes nothing", func(t *testing.T) {
			h := newHarness(t, withE2EE)
			tok := h.acc.addUser(tt.user, "pw")
			wantError(t, h.do(tt.method, tt.path, tt.body, token(tok)), tt.status, tt.code)
			wantNoChanges(t, h.rec)
			reached := slices.ContainsFunc(h.rec.Calls(), func(c string) bool { return c != "Authenticate" })
			if reached != tt.reachesBackend {
				t.Errorf("the E2EE role was reached: %v, want %v (calls %q)", reached, tt.reachesBackend, h.rec.Calls())
			}
		})
	}
	t.Run("without a token, the panel is refused", func(t *testing.T) {
		h := newHarness(t, withE2EE)
		wantError(t, h.do("GET", e2eePath, ""), http.StatusUnauthorized, "M_MISSING_TOKEN")
	})
}

// A join by link verifies its maker only when the user says they got the
// link in person; a maker that cannot be verified does not undo the join.
func TestJoinLinkInPersonVerifiesTheMaker(t *testing.T) {
	tests := []struct {
		name, body   string
		wantVerified string
		wantError    bool
	}{
		{"a pasted link verifies nobody", `{"link":"parley:join/in-person"}`, "", false},
		{"a link taken in person verifies its maker", `{"link":"parley:join/in-person","in_person":true}`, otherServer, false},
		{"a link without a maker joins and says why it verified nobody", `{"link":"parley:join/anonymous","in_person":true}`, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, withLinks, withE2EE)
			tok := h.acc.addUser("alice", "pw")
			w := h.do("POST", "/_parley/v1/join_link", tt.body, token(tok))
			wantStatus(t, w, http.StatusOK)
			var got struct {
				RoomID         string `json:"room_id"`
				VerifiedServer string `json:"verified_server"`
				VerifyError    string `json:"verify_error"`
			}
			decodeInto(t, w, &got)
			if got.RoomID != roomV12 || got.VerifiedServer != tt.wantVerified || (got.VerifyError != "") != tt.wantError {
				t.Errorf("join_link answered %s", w.Body.String())
			}
			v := bobVerified(t, h, tok)
			if tt.wantVerified == "" && v != nil || tt.wantVerified != "" && (v == nil || v.Via != ViaLink) {
				t.Errorf("after the join, the maker's server shows %+v", v)
			}
		})
	}
}
