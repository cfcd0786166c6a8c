package webui

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"syscall"

	"github.com/parley-p2p/parley/errs"
)

// Error is a Matrix API error: an errcode, a message and an HTTP status.
// Handlers return it for what only the Matrix API names (M_BAD_JSON,
// M_MISSING_TOKEN, UIA flows...); what the domain names (not found,
// forbidden, invalid, unavailable) they return as an *errs.Error, which
// kinds below maps.
type Error struct {
	Status  int
	Code    string
	Message string
	// Extra fields merged into the JSON body (for example UIA flows).
	Extra map[string]any
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Code, e.Message) }

// Errorf builds an Error.
func Errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// errBadJSON answers a body json.Unmarshal refused: M_NOT_JSON if it is
// not JSON at all (a syntax error, cut short), M_BAD_JSON if it is JSON
// of the wrong shape.
func errBadJSON(err error) *Error {
	var syntax *json.SyntaxError
	if errors.As(err, &syntax) {
		return Errorf(http.StatusBadRequest, "M_NOT_JSON", "request body is not JSON: %v", err)
	}
	return Errorf(http.StatusBadRequest, "M_BAD_JSON", "request body: %v", err)
}

func errMissingParam(format string, args ...any) *Error {
	return Errorf(http.StatusBadRequest, "M_MISSING_PARAM", format, args...)
}

// kinds is the one table from a domain error's kind to its Matrix status
// and errcode. errs.Internal is absent: it is never shown (see matrixError).
var kinds = map[errs.Kind]struct {
	status int
	code   string
}{
	errs.NotFound:    {http.StatusNotFound, "M_NOT_FOUND"},
	errs.Forbidden:   {http.StatusForbidden, "M_FORBIDDEN"},
	errs.Invalid:     {http.StatusBadRequest, "M_INVALID_PARAM"},
	errs.Unavailable: {http.StatusBadGateway, "M_UNKNOWN"},
	errs.TooLarge:    {http.StatusRequestEntityTooLarge, "M_TOO_LARGE"},
}

// errDiskFull is the answer to a write refused because the node's disk is
// (nearly) full: the node refuses writes rather than crash, and says so.
// The store's *DiskFullError wraps syscall.ENOSPC.
func errDiskFull() *Error {
	return Errorf(http.StatusInsufficientStorage, "M_RESOURCE_LIMIT_EXCEEDED", "this node's disk is full: free some space on it")
}

// matrixError is the one place any error becomes a Matrix error: a domain
// error by its kind, a full disk as 507, an *Error as it is. Anything else
// is internal: internal is then true, and the client sees only M_UNKNOWN.
func matrixError(err error) (me *Error, internal bool) {
	var de *errs.Error
	if errors.As(err, &de) && de.Kind != errs.Internal {
		k := kinds[de.Kind]
		return Errorf(k.status, k.code, "%s", de.Message), false
	}
	if errors.Is(err, syscall.ENOSPC) {
		return errDiskFull(), false
	}
	if errors.As(err, &me) {
		return me, false
	}
	return Errorf(http.StatusInternalServerError, "M_UNKNOWN", "internal error"), true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"errcode":"M_UNKNOWN","error":"encoding the response failed"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b)
}

// writeError renders any error as a Matrix error; an internal one is
// logged with the request, since the client is told nothing of it.
func writeError(w http.ResponseWriter, log *slog.Logger, r *http.Request, err error) {
	me, internal := matrixError(err)
	if internal {
		log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	body := map[string]any{}
	if me.Code != "" {
		body["errcode"], body["error"] = me.Code, me.Message
	}
	for k, v := range me.Extra {
		body[k] = v
	}
	writeJSON(w, me.Status, body)
}
