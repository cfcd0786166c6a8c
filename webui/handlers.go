package webui

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/parley-p2p/parley/errs"
	"github.com/parley-p2p/parley/rooms"
)

// maxBody bounds request bodies; events themselves are limited to 64 KiB.
const maxBody = 1 << 20

// readBody reads a request body of at most maxBody bytes, which must be
// valid UTF-8: every body the API takes is JSON.
func readBody(r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return nil, Errorf(http.StatusRequestTimeout, "M_UNKNOWN", "the request body took too long to arrive")
	}
	if err != nil {
		return nil, errBadJSON(err)
	}
	if len(body) > maxBody {
		return nil, Errorf(http.StatusRequestEntityTooLarge, "M_TOO_LARGE", "request body over %d bytes", maxBody)
	}
	// JSON is UTF-8 (RFC 8259); encoding/json would quietly turn invalid
	// bytes into U+FFFD, so they are refused here, for every body.
	if !utf8.Valid(body) {
		return nil, Errorf(http.StatusBadRequest, "M_NOT_JSON", "request body is not valid UTF-8")
	}
	return body, nil
}

// readJSON decodes a JSON object body into v, with Matrix errors for
// malformed or oversized input.
func readJSON(r *http.Request, v any) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		body = []byte("{}")
	}
	if err := json.Unmarshal(body, v); err != nil {
		return errBadJSON(err)
	}
	return nil
}

// readContent reads an event content body: a JSON object in canonical form.
func readContent(r *http.Request) (json.RawMessage, error) {
	body, err := readBody(r)
	if err != nil {
		return nil, err
	}
	if len(body) > rooms.MaxEventSize {
		return nil, Errorf(http.StatusRequestEntityTooLarge, "M_TOO_LARGE", "event content over %d bytes", rooms.MaxEventSize)
	}
	if !json.Valid(body) {
		return nil, Errorf(http.StatusBadRequest, "M_NOT_JSON", "event content is not JSON")
	}
	c, err := rooms.CanonicalJSON(body)
	if err != nil {
		return nil, Errorf(http.StatusBadRequest, "M_BAD_JSON", "event content: %v", err)
	}
	if len(c) == 0 || c[0] != '{' {
		return nil, Errorf(http.StatusBadRequest, "M_BAD_JSON", "event content must be a JSON object")
	}
	return c, nil
}

// specVersions are the client-server API versions the node implements.
// v1.1 is the one with breaking changes: the /v3 paths (r0 gone), which
// are the only ones served. v1.2 to v1.10 add, besides clarifications,
// only optional modules and endpoints (spaces, relations, threads,
// timestamp_to_event, async media, ...); those the node lacks answer
// M_UNRECOGNIZED, 404 for an unknown path and 405 with Allow for a
// known one, as v1.6 (MSC3743) defines for saying so, and clients fall
// back. What the node serves follows the latest of them: /context
// returns the event even with limit 0 (v1.6), room version 11 (v1.8),
// /versions answers with or without a token (v1.10). Not v1.11: it
// makes media downloads authenticated under /_matrix/client/v1/media
// and freezes the old endpoints (MSC3916), and the node has no media
// repository. v1.11's unsigned.membership (MSC4115) is served already;
// list v1.11, and later versions checked the same way, once media is.
var specVersions = []string{"v1.1", "v1.2", "v1.3", "v1.4", "v1.5", "v1.6", "v1.7", "v1.8", "v1.9", "v1.10"}

func (s *Server) versions(w http.ResponseWriter, r *http.Request) error {
	unstable := map[string]bool{}
	if s.dehydrated != nil {
		unstable["org.matrix.msc3814"] = true // dehydrated.go
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"versions":          specVersions,
		"unstable_features": unstable,
	})
	return nil
}

func (s *Server) capabilities(w http.ResponseWriter, r *http.Request, _ *Session) error {
	writeJSON(w, http.StatusOK, map[string]any{"capabilities": map[string]any{
		"m.room_versions": map[string]any{
			"default":   rooms.DefaultVersion,
			"available": map[string]string{rooms.V10: "stable", rooms.V11: "stable", rooms.V12: "stable"},
		},
		"m.change_password": map[string]bool{"enabled": true},
		"m.set_displayname": map[string]bool{"enabled": true},
		"m.set_avatar_url":  map[string]bool{"enabled": true},
		"m.3pid_changes":    map[string]bool{"enabled": false},
		"m.get_login_token": map[string]bool{"enabled": false},
		"m.profile_fields":  map[string]any{"enabled": false},
		"org.parley.p2p":    map[string]bool{"enabled": true},
	}})
	return nil
}

// queryBool reads a boolean query parameter: "true" or "false"; false
// when the request does not give it.
func queryBool(q url.Values, name string) (bool, error) {
	switch q.Get(name) {
	case "", "false":
		return false, nil
	case "true":
		return true, nil
	}
	return false, errs.Invalidf("%s must be true or false", name)
}

// queryDir reads the direction of a paginated read: "b" (the default,
// backwards) or "f".
func queryDir(q url.Values) (string, error) {
	switch d := q.Get("dir"); d {
	case "", "b":
		return "b", nil
	case "f":
		return "f", nil
	}
	return "", errs.Invalidf("dir must be b or f")
}

// queryInt reads an integer query parameter of at least least (0 or 1);
// ok is false when the request does not give it.
func queryInt(q url.Values, name string, least int) (n int, ok bool, err error) {
	v := q.Get(name)
	if v == "" {
		return 0, false, nil
	}
	n, err = strconv.Atoi(v)
	if err != nil || n < least {
		what := "non-negative"
		if least > 0 {
			what = "positive"
		}
		return 0, false, errs.Invalidf("%s must be a %s integer", name, what)
	}
	return n, true, nil
}
