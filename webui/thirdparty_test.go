package webui

import (
	"net/http"
	"testing"
)

// A node runs no bridges: the protocol list is empty and every lookup
// finds nothing; all of them need a token.
func TestThirdPartyLookupsFindNothing(t *testing.T) {
	h := newHarness(t)
	tok := h.acc.addUser("alice", "alice's password")

	w := h.do("GET", v3+"/thirdparty/protocols", "", token(tok))
	wantStatus(t, w, http.StatusOK)
	if m := decode(t, w); len(m) != 0 {
		t.Errorf("protocols = %v, want none", m)
	}
	for _, path := range []string{
		"/thirdparty/protocol/irc", "/thirdparty/location/irc?searchFields=x",
		"/thirdparty/user/irc", "/thirdparty/location?alias=%23a:b", "/thirdparty/user?userid=@a:b",
	} {
		wantError(t, h.do("GET", v3+path, "", token(tok)), http.StatusNotFound, "M_NOT_FOUND")
	}
	for _, path := range []string{"/thirdparty/protocols", "/thirdparty/protocol/irc", "/thirdparty/user"} {
		wantError(t, h.do("GET", v3+path, ""), http.StatusUnauthorized, "M_MISSING_TOKEN")
	}
}
