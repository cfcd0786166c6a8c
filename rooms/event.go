package rooms

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"unsafe"
)

// Limits on PDU fields (server-server spec, "PDUs" and room version 11+).
const (
	maxPrevEvents = 20
	maxAuthEvents = 10
)

// ErrBadFormat wraps every error ParseEvent returns for a malformed PDU.
var ErrBadFormat = errors.New("malformed event")

// Event is a PDU of room version 10, 11 or 12 whose format has been checked and
// whose event ID is known. It is immutable: accessors return copies, and
// operations that change an event (Redacted, Sign) return a new one.
type Event struct {
	version string
	id      string
	// fixture marks events from ParseEventWithID: their IDs are literal and they
	// carry no hashes or signatures, so they never verify.
	fixture bool

	pdu value  // the whole PDU as a tree: no unsigned, no event_id
	raw string // canonical JSON of pdu; pdu's strings may share its bytes
	// footprint estimates the bytes the event keeps alive (Footprint).
	footprint int
	// plMemo keeps what a power levels event's content was last read as.
	plMemo atomic.Pointer[plMemo]

	roomID    string // "" for a v12 create event (RoomID derives it)
	derivedID string // the room ID of a v12 create event
	sender    string
	typ       string
	stateKey  *string
	content   value
	// raw[contentAt:contentEnd] is content's canonical JSON.
	contentAt, contentEnd int
	prevEvents            []string
	authEvents            []string
	depth                 int64
	ts                    int64
	// redacts is the top-level redacts of a version 10 m.room.redaction.
	redacts string
}

// ParseEvent checks the format of a PDU and computes its event ID, the
// reference hash of its redacted form. It checks required fields and their JSON
// types, sizes (the whole canonical event at most MaxEventSize bytes; type,
// state_key, sender and IDs at most 255; at most 20 prev_events and 10
// auth_events) and canonical-JSON representability. It does not verify
// signatures or hashes (see Verify). The unsigned field is dropped; an
// event_id field is rejected, since room versions 3+ derive it.
//
// In room version 12 the create event carries no room_id and every other
// event's room_id is "!" and 43 URL-safe base64 characters.
func ParseEvent(raw []byte, version string) (*Event, error) {
	return parse(raw, version, "")
}

// ParseEventWithID parses a test fixture whose event IDs are literal (such as
// "$00-m-room-create") and which has no hashes or signatures. It makes the same
// checks as ParseEvent except those tied to derived IDs: event and room IDs need
// only their sigil, hashes and signatures are optional, depth is optional (0),
// and an event_id field is dropped rather than rejected.
func ParseEventWithID(raw []byte, version, eventID string) (*Event, error) {
	if eventID == "" || eventID[0] != '$' || len(eventID) > maxIDLength {
		return nil, fmt.Errorf("rooms: %w: event ID %q", ErrBadFormat, eventID)
	}
	return parse(raw, version, eventID)
}

// ParseTrusted parses a PDU that this node checked with ParseEvent (or built)
// before and stored: its own store, never a peer. It takes id as the event ID
// instead of computing the reference hash, and skips the checks that cannot
// fail for such bytes (the shapes and lengths of user, room and event IDs, of
// hashes and signatures; the counts of prev and auth events). It
// still parses the JSON fully, so damaged bytes are an error, not a crash, and
// the Event behaves exactly as ParseEvent's would: Verify still checks the
// signatures and hashes of the bytes. Bytes altered since ParseEvent accepted
// them may give an Event whose ID is not their reference hash.
func ParseTrusted(pdu []byte, version, id string) (*Event, error) {
	if id == "" || id[0] != '$' {
		return nil, fmt.Errorf("rooms: %w: event ID %q", ErrBadFormat, id)
	}
	if !KnownVersion(version) {
		return nil, fmt.Errorf("rooms: %w: unknown room version %q", ErrBadFormat, version)
	}
	v, canon, err := parseJSONCanonical(pdu)
	if err != nil {
		return nil, fmt.Errorf("rooms: %w: %w", ErrBadFormat, err)
	}
	if v.kind != kObject {
		return nil, fmt.Errorf("rooms: %w: not a JSON object", ErrBadFormat)
	}
	tree := v.without("unsigned", "event_id")
	if len(tree.obj) != len(v.obj) {
		canon = ""
	}
	return fromTree(tree, canon, version, id, trusted)
}

// How fromTree treats a tree.
type parseMode uint8

const (
	// untrusted: every check; the ID is the reference hash.
	untrusted parseMode = iota
	// fixture: literal IDs, optional hashes, signatures and depth.
	fixture
	// trusted: the ID is given, and only what reading the fields needs is
	// checked (bytes from the node's own store, or derived from an event
	// already checked).
	trusted
)

func parse(raw []byte, version, literalID string) (*Event, error) {
	if !KnownVersion(version) {
		return nil, fmt.Errorf("rooms: %w: unknown room version %q", ErrBadFormat, version)
	}
	v, canon, err := parseJSONCanonical(raw)
	if err != nil {
		return nil, fmt.Errorf("rooms: %w: %w", ErrBadFormat, err)
	}
	if v.kind != kObject {
		return nil, fmt.Errorf("rooms: %w: not a JSON object", ErrBadFormat)
	}
	tree := v.without("unsigned")
	if _, ok := tree.get("event_id"); ok {
		if literalID == "" {
			return nil, fmt.Errorf("rooms: %w: event_id field present", ErrBadFormat)
		}
		tree = tree.without("event_id")
	}
	if len(tree.obj) != len(v.obj) {
		canon = "" // a field was dropped: the input is not the event's JSON
	}
	if literalID != "" {
		return fromTree(tree, canon, version, literalID, fixture)
	}
	return fromTree(tree, canon, version, "", untrusted)
}

// fromTree builds an Event from a PDU tree (without unsigned or event_id)
// and its canonical JSON, if known ("": encode the tree). Untrusted, the ID
// is the reference hash and the strict checks apply; otherwise the ID is id.
func fromTree(pdu value, canon, version, id string, mode parseMode) (*Event, error) {
	fixture := mode == fixture
	strict := mode == untrusted
	e := &Event{version: version, pdu: pdu, fixture: fixture, raw: canon}
	// The tree's strings are slices of raw when raw was the input, else of
	// other bytes about as long.
	e.footprint = int(unsafe.Sizeof(*e)) + len(e.raw) + pdu.footprint()
	if e.raw == "" {
		e.raw = string(pdu.bytes())
		e.footprint += 2 * len(e.raw)
	}
	if len(e.raw) > MaxEventSize { // cheap, and a signature added can cross it
		return nil, fmt.Errorf("rooms: %w: %d bytes of canonical JSON, more than %d", ErrBadFormat, len(e.raw), MaxEventSize)
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("rooms: %w: %s", ErrBadFormat, fmt.Sprintf(format, args...))
	}
	var ok bool

	if e.typ, ok = pdu.getString("type"); !ok {
		return nil, bad("type missing or not a string")
	}
	if strict && len(e.typ) > maxIDLength {
		return nil, bad("type longer than %d bytes", maxIDLength)
	}
	if e.sender, ok = pdu.getString("sender"); !ok || strict && !validUserID(e.sender) {
		return nil, bad("sender missing or not a valid user ID")
	}
	if sk, present := pdu.get("state_key"); present {
		if sk.kind != kString || strict && len(sk.str) > maxIDLength {
			return nil, bad("state_key not a string of at most %d bytes", maxIDLength)
		}
		e.stateKey = &sk.str
	}
	if e.content, ok = pdu.get("content"); !ok || e.content.kind != kObject {
		return nil, bad("content missing or not an object")
	}
	e.contentAt, e.contentEnd = memberSpan(pdu, "content")

	roomID, hasRoomID := pdu.get("room_id")
	switch {
	case version == V12 && e.typ == "m.room.create":
		if hasRoomID {
			return nil, bad("a version 12 create event has no room_id")
		}
	case !hasRoomID || roomID.kind != kString:
		return nil, bad("room_id missing or not a string")
	default:
		e.roomID = roomID.str
		if err := checkRoomID(e.roomID, version, mode); err != nil {
			return nil, bad("%v", err)
		}
	}

	// Both lists share one backing array.
	prev, _ := pdu.get("prev_events")
	auth, _ := pdu.get("auth_events")
	ids := make([]string, 0, len(prev.arr)+len(auth.arr))
	var err error
	if e.prevEvents, err = eventIDList(ids, pdu, "prev_events", maxPrevEvents, mode); err != nil {
		return nil, bad("%v", err)
	}
	ids = ids[len(e.prevEvents):len(e.prevEvents)]
	if e.authEvents, err = eventIDList(ids, pdu, "auth_events", maxAuthEvents, mode); err != nil {
		return nil, bad("%v", err)
	}
	if d, present := pdu.get("depth"); present || !fixture {
		if d.kind != kNumber || d.num < 0 {
			return nil, bad("depth missing or not a non-negative integer")
		}
		e.depth = d.num
	}
	ts, present := pdu.get("origin_server_ts")
	if !present || ts.kind != kNumber {
		return nil, bad("origin_server_ts missing or not an integer")
	}
	e.ts = ts.num
	if version == V10 && e.typ == "m.room.redaction" {
		// Version 10 keeps the redacted event's ID at the top level
		// (the PDU format of versions 4 to 10).
		if r, present := pdu.get("redacts"); present {
			if r.kind != kString || strict && !validHashID(r.str, '$') || fixture && (r.str == "" || r.str[0] != '$') {
				return nil, bad("redacts is not an event ID")
			}
			e.redacts = strings.Clone(r.str)
		}
	}
	e.ownStrings()
	e.footprint += 16 * (len(e.prevEvents) + len(e.authEvents))
	if mode != trusted {
		if err := checkCrypto(pdu, fixture); err != nil {
			return nil, bad("%v", err)
		}
	}

	if strict {
		var id [44]byte // "$" and 43 base64 characters of 32 bytes
		id[0] = '$'
		sum := referenceHash(pdu, version)
		base64.RawURLEncoding.Encode(id[1:], sum[:])
		e.id = string(id[:])
	} else {
		e.id = id
	}
	if e.roomID == "" {
		e.derivedID = "!" + e.id[1:]
	}
	return e, nil
}

func checkRoomID(id, version string, mode parseMode) error {
	switch {
	case mode == trusted:
		return nil
	case len(id) > maxIDLength:
		return fmt.Errorf("room_id longer than %d bytes", maxIDLength)
	case id == "" || id[0] != '!':
		return fmt.Errorf("room_id %q does not start with '!'", id)
	case mode == fixture:
		return nil
	case version == V12 && !validHashID(id, '!'):
		return fmt.Errorf("room_id %q is not '!' and 43 URL-safe base64 characters", id)
	}
	return nil
}

// eventIDList reads a required array of event IDs into dst's free capacity
// (or a new array, if it lacks room).
func eventIDList(dst []string, pdu value, field string, limit int, mode parseMode) ([]string, error) {
	v, ok := pdu.get(field)
	if !ok || v.kind != kArray {
		return nil, fmt.Errorf("%s missing or not an array", field)
	}
	if mode != trusted && len(v.arr) > limit {
		return nil, fmt.Errorf("%s has %d entries, more than %d", field, len(v.arr), limit)
	}
	ids := dst[:len(v.arr):len(v.arr)] // dst has room: its capacity counts this array
	for i, x := range v.arr {
		if x.kind != kString {
			return nil, fmt.Errorf("%s[%d] is not a string", field, i)
		}
		var valid bool
		switch mode {
		case untrusted:
			valid = validHashID(x.str, '$')
		case fixture:
			valid = x.str != "" && x.str[0] == '$' && len(x.str) <= maxIDLength
		case trusted:
			valid = true
		}
		if !valid {
			return nil, fmt.Errorf("%s[%d] %q is not an event ID", field, i, x.str)
		}
		ids[i] = x.str
	}
	return ids, nil
}

// checkCrypto checks the shapes of hashes and signatures: required for real
// events, optional for fixtures. Their values are checked by Verify.
func checkCrypto(pdu value, fixture bool) error {
	h, present := pdu.get("hashes")
	if present || !fixture {
		if h.kind != kObject {
			return errors.New("hashes missing or not an object")
		}
		if _, ok := h.getString("sha256"); !ok && !fixture {
			return errors.New("hashes.sha256 missing or not a string")
		}
	}
	s, present := pdu.get("signatures")
	if present || !fixture {
		if s.kind != kObject {
			return errors.New("signatures missing or not an object")
		}
		for _, server := range s.obj {
			if server.val.kind != kObject {
				return fmt.Errorf("signatures.%s is not an object", server.key)
			}
			for _, sig := range server.val.obj {
				if sig.val.kind != kString {
					return fmt.Errorf("signatures.%s.%s is not a string", server.key, sig.key)
				}
			}
		}
	}
	return nil
}

// referenceHash is SHA-256 over the canonical JSON of the redacted event with
// signatures and unsigned removed: the bytes that are also signed.
func referenceHash(pdu value, version string) [sha256.Size]byte {
	return hashCanonical(signedPart(pdu, version))
}

// signingBytes is the canonical JSON that a server signs for an event: its
// redacted form, without signatures (unsigned is never in the tree).
func signingBytes(pdu value, version string) []byte {
	return signedPart(pdu, version).bytes()
}

// signedPart is the tree signingBytes encodes.
func signedPart(pdu value, version string) value {
	return redactDropping(pdu, version, "signatures", "unsigned")
}

// ownStrings copies the fields callers keep for long into allocations of
// their own: they would otherwise be slices of the event's whole JSON and
// keep it alive. Type and state key, which room states keep, share one;
// sender, room ID and the prev and auth event IDs another.
func (e *Event) ownStrings() {
	var buf [2 + maxPrevEvents + maxAuthEvents]*string // on the stack, for events of usual shape
	key := append(buf[:0], &e.typ)
	if e.stateKey != nil {
		key = append(key, e.stateKey) // the event's own copy, not the tree's
	}
	e.footprint += copyStrings(key)
	rest := append(buf[:0], &e.sender, &e.roomID)
	for i := range e.prevEvents {
		rest = append(rest, &e.prevEvents[i])
	}
	for i := range e.authEvents {
		rest = append(rest, &e.authEvents[i])
	}
	e.footprint += copyStrings(rest)
}

// copyStrings copies the strings into one new allocation, which they then
// point into, and returns its size.
func copyStrings(ss []*string) int {
	n := 0
	for _, s := range ss {
		n += len(*s)
	}
	var b strings.Builder
	b.Grow(n)
	for _, s := range ss {
		b.WriteString(*s)
	}
	all := b.String()
	for _, s := range ss {
		l := len(*s)
		*s, all = all[:l], all[l:]
	}
	return n
}

// Footprint estimates the bytes of memory the event keeps alive, for caches
// that bound what they hold: its JSON, its parsed tree and its fields.
func (e *Event) Footprint() int { return e.footprint + len(e.id) }

// footprint estimates the heap bytes of v's tree beyond v itself: the
// backing arrays of objects and arrays (strings share the input's bytes).
func (v value) footprint() int {
	n := 0
	switch v.kind {
	case kArray:
		n = len(v.arr) * int(unsafe.Sizeof(value{}))
		for _, e := range v.arr {
			n += e.footprint()
		}
	case kObject:
		n = len(v.obj) * int(unsafe.Sizeof(member{}))
		for _, m := range v.obj {
			n += m.val.footprint()
		}
	}
	return n
}

// ID returns the event ID: "$" and the URL-safe unpadded base64 reference hash.
func (e *Event) ID() string { return e.id }

// Version returns the room version the event was parsed under.
func (e *Event) Version() string { return e.version }

// RoomID returns the room ID. A version 12 create event has no room_id field:
// its room ID is its event ID with the sigil '!'.
func (e *Event) RoomID() string {
	if e.roomID == "" {
		return e.derivedID
	}
	return e.roomID
}

// Sender returns the user ID of the sender.
func (e *Event) Sender() string { return e.sender }

// Type returns the event type.
func (e *Event) Type() string { return e.typ }

// StateKey returns the state key, or nil for a non-state event.
func (e *Event) StateKey() *string {
	if e.stateKey == nil {
		return nil
	}
	s := *e.stateKey
	return &s
}

// IsState reports whether the event has a state key (even "").
func (e *Event) IsState() bool { return e.stateKey != nil }

// Key returns the (type, state_key) the event occupies in room state. It is only
// meaningful for state events.
func (e *Event) Key() StateKey {
	if e.stateKey == nil {
		return StateKey{Type: e.typ}
	}
	return StateKey{Type: e.typ, StateKey: *e.stateKey}
}

// Content returns the canonical JSON of the content object.
// It is a copy of the bytes raw holds, not encoded again.
func (e *Event) Content() json.RawMessage {
	return json.RawMessage(e.raw[e.contentAt:e.contentEnd])
}

// PrevEvents returns the IDs of the events this one follows.
func (e *Event) PrevEvents() []string { return slices.Clone(e.prevEvents) }

// AuthEvents returns the IDs of the events that authorise this one.
func (e *Event) AuthEvents() []string { return slices.Clone(e.authEvents) }

// Depth returns the depth field.
func (e *Event) Depth() int64 { return e.depth }

// OriginServerTS returns the origin_server_ts field (milliseconds).
func (e *Event) OriginServerTS() int64 { return e.ts }

// Redacts returns the ID of the event an m.room.redaction event redacts
// (the top-level redacts in room version 10, content.redacts in 11+), or "".
func (e *Event) Redacts() string {
	if e.typ != "m.room.redaction" {
		return ""
	}
	if e.version == V10 {
		return e.redacts // its own copy already
	}
	s, _ := e.content.getString("redacts")
	return strings.Clone(s) // not a slice of the whole event
}

// ContentString returns the string found in the content by following
// path (content[path[0]][path[1]]...), without encoding or decoding the
// content; false if there is none, or it is not a string. The string
// shares the event's bytes: clone what is kept longer than the event.
func (e *Event) ContentString(path ...string) (string, bool) {
	v, ok := e.contentPath(path)
	if !ok || v.kind != kString {
		return "", false
	}
	return v.str, true
}

// ContentHas reports whether the content has a value, of any kind, at
// path (as ContentString follows it).
func (e *Event) ContentHas(path ...string) bool {
	_, ok := e.contentPath(path)
	return ok
}

func (e *Event) contentPath(path []string) (value, bool) {
	v := e.content
	for _, k := range path {
		var ok bool
		if v, ok = v.get(k); !ok {
			return value{}, false
		}
	}
	return v, true
}

// Membership returns content.membership of an m.room.member event, or "".
func (e *Event) Membership() string {
	if e.typ != "m.room.member" {
		return ""
	}
	s, _ := e.content.getString("membership")
	return internMembership(s)
}

// JSON returns the canonical JSON of the whole PDU, with hashes and signatures
// and without unsigned or event_id.
func (e *Event) JSON() []byte { return []byte(e.raw) }

// Redacted returns the event with the room version's redaction algorithm
// applied. Its ID is unchanged, and its signatures still verify.
func (e *Event) Redacted() (*Event, error) {
	r, err := e.rebuilt(redactDropping(e.pdu, e.version))
	if err != nil {
		return nil, fmt.Errorf("rooms: redact %s: %w", e.id, err)
	}
	return r, nil
}

// rebuilt makes an event of e's from a changed tree whose reference hash
// is e's (redacted, or with signatures added): e was checked already, so
// the ID carries over rather than being hashed again.
func (e *Event) rebuilt(pdu value) (*Event, error) {
	if e.fixture {
		return fromTree(pdu, "", e.version, e.id, fixture)
	}
	return fromTree(pdu, "", e.version, e.id, trusted)
}

// String is for logs.
func (e *Event) String() string {
	if e.stateKey != nil {
		return fmt.Sprintf("%s (%s %q by %s)", e.id, e.typ, *e.stateKey, e.sender)
	}
	return fmt.Sprintf("%s (%s by %s)", e.id, e.typ, e.sender)
}

// redactionKeeps lists, per event type, the content keys that survive
// redaction in room versions 11 and 12 (m.room.create keeps all of them and
// m.room.member is handled in redactContent).
var redactionKeeps = map[string][]string{
	"m.room.join_rules":         {"join_rule", "allow"},
	"m.room.power_levels":       {"ban", "events", "events_default", "invite", "kick", "redact", "state_default", "users", "users_default"},
	"m.room.history_visibility": {"history_visibility"},
	"m.room.redaction":          {"redacts"},
}

// redactionKeepsV10 is redactionKeeps for room version 10 (the algorithm
// of version 9): m.room.create keeps only creator, m.room.power_levels
// not invite, m.room.redaction nothing of its content; m.room.member is
// handled in redactContent.
var redactionKeepsV10 = map[string][]string{
	"m.room.create":             {"creator"},
	"m.room.join_rules":         {"join_rule", "allow"},
	"m.room.power_levels":       {"ban", "events", "events_default", "kick", "redact", "state_default", "users", "users_default"},
	"m.room.history_visibility": {"history_visibility"},
}

// redactionKeepsTop lists the top-level keys that survive redaction.
var redactionKeepsTop = []string{"event_id", "type", "room_id", "sender", "state_key", "content", "hashes",
	"signatures", "depth", "prev_events", "auth_events", "origin_server_ts"}

// redactionKeepsTopV10 is redactionKeepsTop for room version 10, which
// also keeps origin, membership and prev_state (not redacts).
var redactionKeepsTopV10 = append(slices.Clone(redactionKeepsTop), "prev_state", "origin", "membership")

// redactDropping applies the version's redaction algorithm to a PDU tree,
// also dropping the keys drop, in one copy.
func redactDropping(pdu value, version string, drop ...string) value {
	typ, _ := pdu.getString("type")
	keepTop := redactionKeepsTop
	if version == V10 {
		keepTop = redactionKeepsTopV10
	}
	out := value{kind: kObject, obj: make([]member, 0, len(keepTop))}
	for _, m := range pdu.obj {
		if !slices.Contains(keepTop, m.key) || slices.Contains(drop, m.key) {
			continue
		}
		if m.key == "content" && m.val.kind == kObject {
			m.val = redactContent(typ, m.val, version)
		}
		out.obj = append(out.obj, m)
	}
	return out
}

// RedactContent is what the redaction algorithm of room version 11
// (unchanged in 12) keeps of an event's content: the keys the auth rules
// need. It keeps all that version 10's algorithm keeps and more (the
// whole create content, power levels' invite, a redaction's redacts), so
// it serves for what must stay readable in a version 10 room too.
func RedactContent(typ string, content json.RawMessage) (json.RawMessage, error) {
	v, err := parseJSON(content)
	if err != nil {
		return nil, err
	}
	if v.kind != kObject {
		return nil, errors.New("content is not an object")
	}
	return redactContent(typ, v, V11).bytes(), nil
}

func redactContent(typ string, content value, version string) value {
	keeps := redactionKeeps
	switch {
	case version == V10 && typ == "m.room.member":
		return content.only("membership", "join_authorised_via_users_server")
	case version == V10:
		keeps = redactionKeepsV10
	case typ == "m.room.create":
		return content
	case typ == "m.room.member":
		kept := content.only("membership", "join_authorised_via_users_server")
		if tpi, ok := content.get("third_party_invite"); ok && tpi.kind == kObject {
			if signed, ok := tpi.get("signed"); ok {
				kept = kept.with("third_party_invite", emptyObject().with("signed", signed))
			}
		}
		return kept
	}
	if keys, ok := keeps[typ]; ok {
		return content.only(keys...)
	}
	return emptyObject()
}

// Skim is what a client is shown of an event: its fields, and its
// content as canonical JSON.
type Skim struct {
	ID, Type, Sender string
	RoomID           string
	StateKey         *string
	Content          json.RawMessage
	OriginServerTS   int64
	// Membership is content.membership of a member event, as Membership
	// returns it.
	Membership string
}

// Skim returns what a client is shown of the event.
func (e *Event) Skim() Skim {
	return Skim{
		ID: e.id, Type: e.typ, Sender: e.sender, RoomID: e.RoomID(), StateKey: e.StateKey(),
		Content: e.Content(), OriginServerTS: e.ts, Membership: e.Membership(),
	}
}

// SkimStored reads what a client is shown of an event this node stored,
// from its canonical JSON (Event.JSON) as stored, without building the
// event: a few microseconds less per event than ParseTrusted, for
// rendering events that will not be kept. It answers false for anything
// it does not read the way ParseTrusted would, and the caller then
// parses the event; so it does for redaction events, whose Redacts it
// does not read. The content it returns shares pdu's bytes, which must
// be canonical JSON, as Event.JSON is: it is not re-encoded.
func SkimStored(pdu []byte, version, id string) (Skim, bool) {
	sk := Skim{ID: id}
	if id == "" || id[0] != '$' || !KnownVersion(version) {
		return sk, false
	}
	var hasRoom, hasTS bool
	ok := skimObject(pdu, func(key, val []byte) bool {
		var ok bool
		switch string(key) { // compared without a copy
		case "type":
			sk.Type, ok = skimString(val)
		case "sender":
			sk.Sender, ok = skimString(val)
		case "room_id":
			sk.RoomID, ok = skimString(val)
			hasRoom = true
		case "state_key":
			var s string
			s, ok = skimString(val)
			sk.StateKey = &s
		case "content":
			sk.Content, ok = val, len(val) > 0 && val[0] == '{'
		case "origin_server_ts":
			sk.OriginServerTS, ok = skimInt(val)
			hasTS = true
		case "event_id", "unsigned":
			ok = false // ParseTrusted drops them and re-encodes
		default:
			ok = true
		}
		return ok
	})
	switch {
	case !ok || sk.Type == "" || sk.Sender == "" || sk.Content == nil || !hasTS || sk.Type == "m.room.redaction":
		return sk, false
	case !hasRoom && version == V12 && sk.Type == "m.room.create":
		sk.RoomID = "!" + id[1:]
	case !hasRoom || sk.RoomID == "" || version == V12 && sk.Type == "m.room.create":
		return sk, false
	}
	if sk.Type == "m.room.member" {
		var m string
		ok := skimObject(sk.Content, func(key, val []byte) bool {
			if string(key) != "membership" {
				return true
			}
			s, ok := skimString(val)
			m = s
			return ok
		})
		if !ok {
			return sk, false
		}
		sk.Membership = internMembership(m)
	}
	return sk, true
}

// internMembership returns a membership as a string of its own, not a
// slice of the whole event it was read from: the known ones as constants.
func internMembership(m string) string {
	switch m {
	case "join":
		return "join"
	case "leave":
		return "leave"
	case "invite":
		return "invite"
	case "ban":
		return "ban"
	case "knock":
		return "knock"
	}
	return strings.Clone(m)
}

// skimObject calls fn with each key of a compact JSON object (keys
// without escapes) and the bytes of its value, until fn returns false.
// It reports whether it read the whole object and fn accepted every key.
func skimObject(b []byte, fn func(key, val []byte) bool) bool {
	if len(b) < 2 || b[0] != '{' {
		return false
	}
	at := 1
	if b[at] == '}' {
		return len(b) == 2
	}
	for {
		end := skipString(b, at)
		if end < 0 || end >= len(b) || b[end] != ':' {
			return false
		}
		key := b[at+1 : end-1]
		if slices.Contains(key, '\\') {
			return false
		}
		start := end + 1
		stop := SkipCompact(b, start)
		if stop <= start || !fn(key, b[start:stop]) || stop >= len(b) {
			return false
		}
		switch b[stop] {
		case ',':
			at = stop + 1
		case '}':
			return stop+1 == len(b)
		default:
			return false
		}
	}
}

// skipString returns the index just past the string starting at b[at],
// or -1.
func skipString(b []byte, at int) int {
	if at >= len(b) || b[at] != '"' {
		return -1
	}
	for i := at + 1; ; {
		q := bytes.IndexByte(b[i:], '"')
		if q < 0 {
			return -1
		}
		i += q
		// The quote ends the string unless an odd run of backslashes
		// escapes it.
		n := 0
		for n < i-at-1 && b[i-1-n] == '\\' {
			n++
		}
		i++
		if n%2 == 0 {
			return i
		}
	}
}

// SkipCompact returns the index just past the compact JSON value starting
// at b[at], or -1. It checks only what finding the end needs: strings and
// their escapes, and brackets, which must match, to maxDepth levels; it
// reads whitespace as not compact (-1).
func SkipCompact(b []byte, at int) int {
	var stack [maxDepth + 1]byte
	depth := 0
	for i := at; i < len(b); {
		switch c := b[i]; c {
		case '"':
			i = skipString(b, i)
			if i < 0 {
				return -1
			}
		case '{', '[':
			if depth == len(stack) {
				return -1
			}
			stack[depth] = c + 2 // '{'+2 is '}', '['+2 is ']'
			depth++
			i++
		case '}', ']':
			if depth == 0 || stack[depth-1] != c {
				return -1
			}
			depth--
			i++
		case ',', ':':
			if depth == 0 {
				return i
			}
			i++
		case ' ', '\t', '\n', '\r':
			return -1 // not compact
		default:
			i++
		}
		if depth == 0 && i < len(b) && (b[i] == ',' || b[i] == '}' || b[i] == ']') {
			return i
		}
	}
	if depth == 0 {
		return len(b)
	}
	return -1
}

// skimString reads a JSON string without escapes.
func skimString(val []byte) (string, bool) {
	if len(val) < 2 || val[0] != '"' || val[len(val)-1] != '"' || slices.Contains(val, '\\') {
		return "", false
	}
	return string(val[1 : len(val)-1]), true
}

// skimInt reads a JSON integer within the canonical range.
func skimInt(val []byte) (int64, bool) {
	neg := len(val) > 0 && val[0] == '-'
	if neg {
		val = val[1:]
	}
	if len(val) == 0 || len(val) > 16 || len(val) > 1 && val[0] == '0' {
		return 0, false
	}
	var n int64
	for _, c := range val {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if n > maxSafeInt {
		return 0, false
	}
	if neg {
		n = -n
	}
	return n, true
}
