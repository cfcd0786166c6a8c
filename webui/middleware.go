package webui

import (
	"context"
	"net/http"
	"strings"
)

type ctxKey int

const sessionKey ctxKey = 0

// protect is the middleware chain, in order: a deadline for the body,
// Host check, CORS headers, the start-up gate, then (per route) authentication.
func (s *Server) protect(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.bodyDeadline(w, r)
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if !s.allowedHost(r.Host) {
			writeError(w, s.log, r, Errorf(http.StatusMisdirectedRequest, "M_FORBIDDEN", "host %q is not an address of this node; a name can be allowed with parley run --allowed-host NAME", r.Host))
			return
		}
		if strings.HasPrefix(r.URL.Path, "/_matrix/") {
			h := w.Header()
			h.Set("Access-Control-Allow-Origin", "*")
			h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, OPTIONS")
			h.Set("Access-Control-Allow-Headers", "X-Requested-With, Content-Type, Authorization")
			if r.Method == http.MethodOptions {
				w.WriteHeader(http.StatusOK)
				return
			}
		}
		if !s.ready.Load() && strings.HasPrefix(r.URL.Path, "/_") {
			w.Header().Set("Retry-After", "1")
			e := Errorf(http.StatusServiceUnavailable, "M_UNKNOWN", "the node is starting; try again in a moment")
			e.Extra = map[string]any{"retry_after_ms": 200}
			writeError(w, s.log, r, e)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// accessToken finds the token in the Authorization header or the query.
func accessToken(r *http.Request) string {
	if h := r.Header.Get("Authorization"); strings.HasPrefix(h, "Bearer ") {
		return strings.TrimSpace(h[len("Bearer "):])
	}
	return r.URL.Query().Get("access_token")
}

type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// authed wraps a handler that needs a valid access token.
func (s *Server) authed(h func(w http.ResponseWriter, r *http.Request, sess *Session) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := accessToken(r)
		if tok == "" {
			writeError(w, s.log, r, Errorf(http.StatusUnauthorized, "M_MISSING_TOKEN", "missing access token"))
			return
		}
		sess, err := s.accounts.Authenticate(tok)
		if err != nil {
			writeError(w, s.log, r, err)
			return
		}
		s.seen(r, sess)
		ctx := context.WithValue(r.Context(), sessionKey, sess)
		if err := h(w, r.WithContext(ctx), sess); err != nil {
			writeError(w, s.log, r, err)
		}
	})
}

// anon wraps a handler that needs no token. Requests that change
// something (anything but GET/HEAD) from another web origin are refused:
// a page elsewhere must not be able to claim the node or log in.
func (s *Server) anon(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if origin := r.Header.Get("Origin"); origin != "" && r.Method != http.MethodGet && r.Method != http.MethodHead && !s.sameOrigin(r, origin) {
			writeError(w, s.log, r, Errorf(http.StatusForbidden, "M_FORBIDDEN", "requests without an access token are not accepted from origin %q", origin))
			return
		}
		if err := h(w, r); err != nil {
			writeError(w, s.log, r, err)
		}
	})
}

// local wraps anonymous endpoints that reveal something (the node's
// status, which users exist): readable by the node's own app and by
// non-browser clients, never by pages of other origins, so they carry no
// CORS headers.
func (s *Server) local(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		dropCORS(w.Header())
		if origin := r.Header.Get("Origin"); origin != "" && !s.sameOrigin(r, origin) {
			writeError(w, s.log, r, Errorf(http.StatusForbidden, "M_FORBIDDEN", "origin %q may not read this without an access token", origin))
			return
		}
		if err := h(w, r); err != nil {
			writeError(w, s.log, r, err)
		}
	})
}

// optionalAuth wraps a handler that answers with a token as authed does,
// and without one as local does (sess is then nil).
func (s *Server) optionalAuth(h func(w http.ResponseWriter, r *http.Request, sess *Session) error) http.Handler {
	withToken := s.authed(h)
	without := s.local(func(w http.ResponseWriter, r *http.Request) error { return h(w, r, nil) })
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if accessToken(r) != "" {
			withToken.ServeHTTP(w, r)
			return
		}
		without.ServeHTTP(w, r)
	})
}

func dropCORS(h http.Header) {
	for k := range h {
		if strings.HasPrefix(k, "Access-Control-") {
			h.Del(k)
		}
	}
}
