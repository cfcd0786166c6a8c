package webui

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/parley-p2p/parley/errs"
	"log/slog"
	"net/http"
	"syscall"
)

// Error is a Matrix API error: an errcode, a message and an HTTP status.
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

// Common errors. Use Errorf for a specific message.
func errNotFound(what string) *Error {
	return Errorf(http.StatusNotFound, "M_NOT_FOUND", "%s not found", what)
}

func errForbidden(format string, args ...any) *Error {
	return Errorf(http.StatusForbidden, "M_FORBIDDEN", format, args...)
}

func errBadJSON(err error) *Error {
	return Errorf(http.StatusBadRequest, "M_BAD_JSON", "request body: %v", err)
}

func errMissingParam(format string, args ...any) *Error {
	return Errorf(http.StatusBadRequest, "M_MISSING_PARAM", format, args...)
}

func errInvalidParam(format string, args ...any) *Error {
	return Errorf(http.StatusBadRequest, "M_INVALID_PARAM", format, args...)
}

// NotFound, Forbidden and friends are for the Backend to return.
func NotFound(format string, args ...any) *Error {
	return Errorf(http.StatusNotFound, "M_NOT_FOUND", format, args...)
}

// Forbidden is M_FORBIDDEN with status 403.
func Forbidden(format string, args ...any) *Error { return errForbidden(format, args...) }

// BadRequest is M_BAD_JSON-free M_INVALID_PARAM with status 400.
func BadRequest(format string, args ...any) *Error { return errInvalidParam(format, args...) }

// Unavailable is for failures reaching other nodes.
func Unavailable(format string, args ...any) *Error {
	return Errorf(http.StatusBadGateway, "M_UNKNOWN", format, args...)
}

// matrixError is the one place a domain error becomes a Matrix errcode
// and an HTTP status.
func matrixError(e *errs.Error) *Error {
	switch e.Kind {
	case errs.NotFound:
		return Errorf(http.StatusNotFound, "M_NOT_FOUND", "%s", e.Message)
	case errs.Forbidden:
		return Errorf(http.StatusForbidden, "M_FORBIDDEN", "%s", e.Message)
	case errs.Invalid:
		return Errorf(http.StatusBadRequest, "M_INVALID_PARAM", "%s", e.Message)
	case errs.Unavailable:
		return Errorf(http.StatusBadGateway, "M_UNKNOWN", "%s", e.Message)
	case errs.TooLarge:
		return Errorf(http.StatusRequestEntityTooLarge, "M_TOO_LARGE", "%s", e.Message)
	}
	return Errorf(http.StatusInternalServerError, "M_UNKNOWN", "internal error")
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

// writeError renders any error as a Matrix error. Errors that are not an
// *Error are internal: they are logged and go out as M_UNKNOWN/500.
func writeError(w http.ResponseWriter, log *slog.Logger, r *http.Request, err error) {
	var me *Error
	var de *errs.Error
	if errors.As(err, &de) && de.Kind != errs.Internal {
		me = matrixError(de)
	} else if errors.Is(err, syscall.ENOSPC) {
		// The node's disk is (nearly) full: the node refuses writes
		// rather than crash, and says so.
		me = Errorf(http.StatusInsufficientStorage, "M_RESOURCE_LIMIT_EXCEEDED", "this node's disk is full: free some space on it")
	} else if !errors.As(err, &me) {
		log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		me = Errorf(http.StatusInternalServerError, "M_UNKNOWN", "internal error")
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
