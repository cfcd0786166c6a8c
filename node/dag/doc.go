// Package dag is parley's engine: it admits events into rooms and keeps
// each room's head (forward extremities and current state).
//
// Admission (admit.go) checks a verified event against its auth events,
// the state before it (resolved from its prev events' states) and the
// room's current state, then stores it with its verdict: accepted,
// soft-failed or rejected, in the timeline or as an outlier. Each
// outcome is typed: *Rejection names the stage that refused an event,
// *Missing the events to fetch before it can be checked. Local events
// are built and signed here too (build.go), and history placed before
// the timeline (history.go); redactions apply by the spec's rule
// (redaction.go). Memory moves ahead of the disk while writes are in
// flight; a failed write rolls the room's head back (writes.go).
//
// Content encryption is a Codec it is handed (codec.go), implemented by
// node/e2ee: local events are sealed as they are built, events from
// peers opened as they are admitted, and what clients are shown (Plain)
// is kept in each event's record; a plain view that comes later is
// stored and the event redelivered to /sync (plain.go). The engine holds
// no keys and imports no cipher.
//
// The engine knows nothing of the network or HTTP: it never imports
// p2p, webui or net/http. Publishing an event is a hook it is handed
// (Config.Publish). Fetching what an event lacks is the caller's job.
package dag
