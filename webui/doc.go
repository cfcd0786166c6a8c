// Package webui serves a parley node's local HTTP surface: the Matrix
// client-server API under /_matrix/client, parley's own API under
// /_parley/v1, and the bundled web app at /.
//
// It speaks HTTP and nothing else: every decision about rooms, accounts and
// the network is made by the node, through one narrow interface per role
// that this package defines beside the handlers that use it (Accounts,
// Rooms, Membership, Syncer, Links, Admin, E2EE; see Backends). Errors come back
// as parley's domain errors (package errs), which errors.go maps to Matrix
// errcodes and statuses in one table. What this package owns is the
// wire format (Matrix JSON shapes and errors), request validation, the
// registration policy, and the defences a local API needs on a person's
// machine: the Host check against DNS rebinding, the Origin check on
// requests that carry no token (and no CORS headers on anonymous answers
// that reveal anything), the claim code a fresh node's first account must
// show, backoff on guessed passwords and codes, caps on connections and on
// the time a body may take, and access-token authentication.
package webui
