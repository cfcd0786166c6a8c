package webui

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"github.com/parley-p2p/parley/errs"
)

// diskFull stands for the store's *DiskFullError (webui may not import
// the store): an error of its own type that wraps ENOSPC, as that does.
type diskFull struct{}

func (diskFull) Error() string {
	return "store: only 12.0 MiB free on /data, below the 64.0 MiB parley keeps free"
}
func (diskFull) Unwrap() error { return syscall.ENOSPC }

func TestEveryErrorBecomesOneMatrixError(t *testing.T) {
	tests := []struct {
		name   string
		err    error
		status int
		want   map[string]any
		logged bool
	}{
		{"a domain not-found is 404 M_NOT_FOUND", errs.NotFoundf("no room %s", "!r"), 404,
			map[string]any{"errcode": "M_NOT_FOUND", "error": "no room !r"}, false},
		{"a domain forbidden is 403 M_FORBIDDEN", errs.Forbiddenf("not joined"), 403,
			map[string]any{"errcode": "M_FORBIDDEN", "error": "not joined"}, false},
		{"a domain invalid is 400 M_INVALID_PARAM", errs.Invalidf("limit must be positive"), 400,
			map[string]any{"errcode": "M_INVALID_PARAM", "error": "limit must be positive"}, false},
		{"a domain unavailable is 502 M_UNKNOWN", errs.Unavailablef("no peer has room %s", "!r"), 502,
			map[string]any{"errcode": "M_UNKNOWN", "error": "no peer has room !r"}, false},
		{"a domain error wrapped with the operation keeps its kind", fmt.Errorf("node: send: %w", errs.Forbiddenf("not joined")), 403,
			map[string]any{"errcode": "M_FORBIDDEN", "error": "not joined"}, false},
		{"a domain internal error is 500 M_UNKNOWN, its message hidden", &errs.Error{Kind: errs.Internal, Message: "index 7 of /data/badger"}, 500,
			map[string]any{"errcode": "M_UNKNOWN", "error": "internal error"}, true},
		{"an unknown error is 500 M_UNKNOWN, its message hidden", errors.New("disk on fire at /data"), 500,
			map[string]any{"errcode": "M_UNKNOWN", "error": "internal error"}, true},
		{"ENOSPC is 507 M_RESOURCE_LIMIT_EXCEEDED", fmt.Errorf("write: %w", syscall.ENOSPC), 507,
			map[string]any{"errcode": "M_RESOURCE_LIMIT_EXCEEDED", "error": "this node's disk is full: free some space on it"}, false},
		{"the store's disk-full error is 507 M_RESOURCE_LIMIT_EXCEEDED", fmt.Errorf("node: commit: %w", diskFull{}), 507,
			map[string]any{"errcode": "M_RESOURCE_LIMIT_EXCEEDED", "error": "this node's disk is full: free some space on it"}, false},
		{"an ENOSPC inside a path error is 507", &os.PathError{Op: "write", Path: "/data/000001.vlog", Err: syscall.ENOSPC}, 507,
			map[string]any{"errcode": "M_RESOURCE_LIMIT_EXCEEDED", "error": "this node's disk is full: free some space on it"}, false},
		{"a Matrix error is rendered with its status", &Error{Status: 401, Code: "M_UNKNOWN_TOKEN", Message: "unknown token"}, 401,
			map[string]any{"errcode": "M_UNKNOWN_TOKEN", "error": "unknown token"}, false},
		{"a Matrix error's extra fields are merged into the body", &Error{Status: 429, Code: "M_LIMIT_EXCEEDED", Message: "slow down", Extra: map[string]any{"retry_after_ms": 500}}, 429,
			map[string]any{"errcode": "M_LIMIT_EXCEEDED", "error": "slow down", "retry_after_ms": float64(500)}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			w := httptest.NewRecorder()
			writeError(w, slog.New(slog.NewTextHandler(&logs, nil)), httptest.NewRequest("GET", "/_matrix/client/v3/joined_rooms", nil), tt.err)
			wantStatus(t, w, tt.status)
			if got := decode(t, w); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("body = %v, want %v", got, tt.want)
			}
			lines := strings.Count(logs.String(), "\n")
			switch {
			case tt.logged && (lines != 1 || !strings.Contains(logs.String(), "/data") || !strings.Contains(logs.String(), "path=/_matrix/client/v3/joined_rooms")):
				t.Errorf("log = %q, want one line with the error and the request", logs.String())
			case !tt.logged && lines != 0:
				t.Errorf("log = %q, want nothing: the client was told", logs.String())
			}
		})
	}
}

// The table covers every kind errs has: a new kind must be given its
// Matrix spelling here, or it would go out as a bare 500.
func TestEveryDomainKindHasAMatrixSpelling(t *testing.T) {
	for k := errs.NotFound; k.String() != "internal"; k++ {
		if _, ok := kinds[k]; !ok {
			t.Errorf("kind %v has no entry in kinds", k)
		}
	}
}
