package rooms

import (
	"fmt"
	"slices"
	"strings"
)

// StateFunc looks up an entry of room state; it returns nil when absent.
type StateFunc func(StateKey) *Event

// NotAllowed is the error of an event the authorization rules reject.
type NotAllowed struct{ Reason string }

func (n *NotAllowed) Error() string { return "rooms: not allowed: " + n.Reason }

func notAllowed(format string, args ...any) *NotAllowed {
	return &NotAllowed{Reason: fmt.Sprintf(format, args...)}
}

// Memberships.
const (
	joinMembership   = "join"
	inviteMembership = "invite"
	leaveMembership  = "leave"
	banMembership    = "ban"
	knockMembership  = "knock"
)

// Allowed applies the authorization rules of e's room version (10, 11 or 12) to e
// against state, which must hold the room's create event at
// {m.room.create, ""} (in version 12 too: callers supply it, since auth_events
// no longer cite it). It returns nil or a *NotAllowed.
//
// What Allowed leaves to its callers: that e is validly signed by its sender's
// server (Verify), that its auth events are the right ones and were not
// rejected (CheckAuthEvents), and which state to check against (the auth
// events, the state before the event, the current state).
func Allowed(e *Event, state StateFunc) error {
	if e.typ == "m.room.create" {
		return allowCreate(e)
	}
	create := state(createKey)
	if create == nil {
		return notAllowed("no m.room.create event in the room state")
	}
	// v12 rule 2: the room ID names the create event. In v11 the auth_events
	// rule compares room IDs; checking the create event here as well is free.
	if create.RoomID() != e.RoomID() {
		return notAllowed("create event %s is for room %s, not %s", create.id, create.RoomID(), e.RoomID())
	}
	if f, ok := create.content.get("m.federate"); ok && f.kind == kBool && !f.b && serverOf(e.sender) != serverOf(create.sender) {
		return notAllowed("the room does not federate and %s is not on the creator's server", e.sender)
	}
	pl, err := powerLevels(create, state(powerLevelsKey))
	if err != nil {
		return notAllowed("%v", err)
	}
	if e.typ == "m.room.member" {
		return allowMember(e, create, pl, state)
	}
	if m := membershipIn(state, e.sender); m != joinMembership {
		return notAllowed("sender %s is not joined (membership %q)", e.sender, m)
	}
	senderLevel := pl.UserLevel(e.sender)
	if e.typ == "m.room.third_party_invite" {
		if senderLevel < pl.Invite() {
			return notAllowed("sender level %d is below the invite level %d", senderLevel, pl.Invite())
		}
		return nil
	}
	if need := pl.EventLevel(e.typ, e.IsState()); senderLevel < need {
		return notAllowed("sender level %d is below the %d needed for %s", senderLevel, need, e.typ)
	}
	if e.stateKey != nil && strings.HasPrefix(*e.stateKey, "@") && *e.stateKey != e.sender {
		return notAllowed("state key %q starts with '@' and is not the sender", *e.stateKey)
	}
	if e.typ == "m.room.power_levels" {
		return checkPowerLevelsChange(e, create, state(powerLevelsKey), senderLevel)
	}
	return nil
}

// recognisedVersions are the room versions the spec defines. The create rule
// asks only that content.room_version be recognised; which versions parley can
// run is a separate question (KnownVersion).
var recognisedVersions = []string{"1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12"}

// allowCreate is rule 1 (all versions).
func allowCreate(e *Event) error {
	if len(e.prevEvents) > 0 {
		return notAllowed("a create event has no prev_events")
	}
	if e.version == V12 {
		if e.roomID != "" {
			return notAllowed("a version 12 create event has no room_id")
		}
	} else if serverOf(e.roomID) != serverOf(e.sender) {
		return notAllowed("room ID %s is not on the sender's server", e.roomID)
	}
	if v, ok := e.content.get("room_version"); ok && (v.kind != kString || !slices.Contains(recognisedVersions, v.str)) {
		return notAllowed("unrecognised room_version %s", v.bytes())
	}
	if e.version == V10 {
		// v10 rule 1.4 asks only for the property; the rules then compare
		// it with user IDs, so parley wants a valid one.
		if c, ok := e.content.get("creator"); !ok || c.kind != kString || !validUserID(c.str) {
			return notAllowed("a version 10 create event needs content.creator, a user ID")
		}
	}
	if e.version == V12 {
		if extra, ok := e.content.get("additional_creators"); ok {
			if extra.kind != kArray {
				return notAllowed("additional_creators is not an array")
			}
			for _, c := range extra.arr {
				if c.kind != kString || !validUserID(c.str) {
					return notAllowed("additional_creators entry %s is not a valid user ID", c.bytes())
				}
			}
		}
	}
	return nil
}

// membershipIn returns userID's membership in state, or "" if none.
func membershipIn(state StateFunc, userID string) string {
	if m := state(memberKey(userID)); m != nil {
		return m.Membership()
	}
	return ""
}

// joinRule returns the room's join rule. Without a join_rules event a room is
// invite-only, as in Synapse and the createRoom presets.
func joinRule(state StateFunc) string {
	if jr := state(joinRulesKey); jr != nil {
		s, _ := jr.content.getString("join_rule")
		return s
	}
	return "invite"
}

// allowMember is the m.room.member rule (v11 rule 4, v12 rule 5).
func allowMember(e, create *Event, pl *PowerLevels, state StateFunc) error {
	if e.stateKey == nil {
		return notAllowed("a member event needs a state_key")
	}
	membership, ok := e.content.getString("membership")
	if !ok {
		return notAllowed("a member event needs a string content.membership")
	}
	target := *e.stateKey
	// Not a numbered rule, but every implementation takes the state key of a
	// member event as a user ID; one that is not cannot be a member.
	if !validUserID(target) {
		return notAllowed("member state key %q is not a valid user ID", target)
	}
	authUser, hasAuthUser := e.content.get("join_authorised_via_users_server")
	if hasAuthUser {
		if authUser.kind != kString || !validUserID(authUser.str) {
			return notAllowed("join_authorised_via_users_server is not a valid user ID")
		}
		if err := VerifySignature(e, serverOf(authUser.str)); err != nil {
			return notAllowed("not signed by the server of join_authorised_via_users_server %s: %v", authUser.str, err)
		}
	}

	senderMembership := membershipIn(state, e.sender)
	targetMembership := membershipIn(state, target)
	senderLevel := pl.UserLevel(e.sender)
	targetLevel := pl.UserLevel(target)

	switch membership {
	case joinMembership:
		if len(e.prevEvents) == 1 && e.prevEvents[0] == create.id && target == roomCreator(create) {
			return nil // the creator's own first join
		}
		if e.sender != target {
			return notAllowed("%s cannot join on behalf of %s", e.sender, target)
		}
		if senderMembership == banMembership {
			return notAllowed("%s is banned", e.sender)
		}
		switch rule := joinRule(state); rule {
		case "invite", "knock":
			if targetMembership == inviteMembership || targetMembership == joinMembership {
				return nil
			}
			return notAllowed("join rule %q and %s is neither invited nor joined", rule, target)
		case "restricted", "knock_restricted":
			if targetMembership == inviteMembership || targetMembership == joinMembership {
				return nil
			}
			if !hasAuthUser {
				return notAllowed("join rule %q needs join_authorised_via_users_server", rule)
			}
			if m := membershipIn(state, authUser.str); m != joinMembership {
				return notAllowed("authorising user %s is not joined", authUser.str)
			}
			if l := pl.UserLevel(authUser.str); l < pl.Invite() {
				return notAllowed("authorising user %s has level %d, below the invite level %d", authUser.str, l, pl.Invite())
			}
			return nil
		case "public":
			return nil
		default:
			return notAllowed("join rule %q does not let %s join", rule, target)
		}

	case inviteMembership:
		if _, ok := e.content.get("third_party_invite"); ok {
			if targetMembership == banMembership {
				return notAllowed("%s is banned", target)
			}
			return allowThirdPartyInvite(e, state)
		}
		if senderMembership != joinMembership {
			return notAllowed("inviter %s is not joined", e.sender)
		}
		if targetMembership == joinMembership || targetMembership == banMembership {
			return notAllowed("%s cannot be invited with membership %q", target, targetMembership)
		}
		if senderLevel < pl.Invite() {
			return notAllowed("inviter level %d is below the invite level %d", senderLevel, pl.Invite())
		}
		return nil

	case leaveMembership:
		if e.sender == target {
			switch targetMembership {
			case inviteMembership, joinMembership, knockMembership:
				return nil
			}
			return notAllowed("%s cannot leave from membership %q", target, targetMembership)
		}
		if senderMembership != joinMembership {
			return notAllowed("%s is not joined", e.sender)
		}
		if targetMembership == banMembership && senderLevel < pl.Ban() {
			return notAllowed("unbanning needs the ban level %d, sender has %d", pl.Ban(), senderLevel)
		}
		if senderLevel >= pl.Kick() && targetLevel < senderLevel {
			return nil
		}
		return notAllowed("kicking %s (level %d) needs the kick level %d and a higher level; sender has %d", target, targetLevel, pl.Kick(), senderLevel)

	case banMembership:
		if senderMembership != joinMembership {
			return notAllowed("%s is not joined", e.sender)
		}
		if senderLevel >= pl.Ban() && targetLevel < senderLevel {
			return nil
		}
		return notAllowed("banning %s (level %d) needs the ban level %d and a higher level; sender has %d", target, targetLevel, pl.Ban(), senderLevel)

	case knockMembership:
		if rule := joinRule(state); rule != "knock" && rule != "knock_restricted" {
			return notAllowed("join rule %q does not allow knocking", rule)
		}
		if e.sender != target {
			return notAllowed("%s cannot knock on behalf of %s", e.sender, target)
		}
		switch senderMembership {
		case banMembership, inviteMembership, joinMembership:
			return notAllowed("%s cannot knock with membership %q", e.sender, senderMembership)
		}
		return nil
	}
	return notAllowed("unknown membership %q", membership)
}

// CheckAuthEvents applies the auth_events rule (v11 rule 2, v12 rule 3) to e.
// authEvents are e's auth events looked up in order (nil for one not found).
// It rejects missing entries, non-state entries, duplicate (type, state_key)
// pairs, entries the auth events selection would not pick, entries from
// another room, and, in v11, a missing create event (in v12 the create event
// is never an auth event). Whether an entry was itself rejected is the
// caller's to check. The create event has no auth events. Returns a *NotAllowed.
func CheckAuthEvents(e *Event, authEvents []*Event) error {
	if e.typ == "m.room.create" {
		if len(e.authEvents) > 0 || len(authEvents) > 0 {
			return notAllowed("a create event has no auth_events")
		}
		return nil
	}
	if len(authEvents) != len(e.authEvents) {
		return notAllowed("%d auth events given for %d auth_events", len(authEvents), len(e.authEvents))
	}
	wanted := authKeys(e.version, e.typ, e.sender, e.stateKey, e.content)
	seen := map[StateKey]string{}
	hasCreate := false
	for i, ae := range authEvents {
		id := e.authEvents[i]
		switch {
		case ae == nil:
			return notAllowed("auth event %s is missing", id)
		case ae.id != id:
			return notAllowed("auth event %d is %s, expected %s", i, ae.id, id)
		case ae.stateKey == nil:
			return notAllowed("auth event %s is not a state event", id)
		}
		key := ae.Key()
		if other, dup := seen[key]; dup {
			return notAllowed("auth events %s and %s are both (%s, %q)", other, id, key.Type, key.StateKey)
		}
		seen[key] = id
		if !slices.Contains(wanted, key) {
			return notAllowed("auth event %s (%s, %q) is not one the selection rules pick", id, key.Type, key.StateKey)
		}
		if ae.RoomID() != e.RoomID() {
			return notAllowed("auth event %s is from room %s", id, ae.RoomID())
		}
		hasCreate = hasCreate || key == createKey
	}
	if e.version != V12 && !hasCreate {
		return notAllowed("no m.room.create event among the auth events")
	}
	return nil
}

// AuthEventKeys lists the state entries the auth events selection picks for
// an event about to be built (the entries absent from the state are skipped
// by the caller). In room version 12 the create event is never picked.
func AuthEventKeys(p ProtoEvent, version string) []StateKey {
	content := emptyObject()
	if len(p.Content) > 0 {
		if c, err := parseJSON(p.Content); err == nil && c.kind == kObject {
			content = c
		}
	}
	return authKeys(version, p.Type, p.Sender, p.StateKey, content)
}

// authKeys is the auth events selection (server-server spec).
func authKeys(version, typ, sender string, stateKey *string, content value) []StateKey {
	if typ == "m.room.create" {
		return nil
	}
	keys := make([]StateKey, 0, 6) // at most: create, power levels, 3 members, join rules
	add := func(k StateKey) {
		if !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	if version != V12 {
		add(createKey)
	}
	add(powerLevelsKey)
	add(memberKey(sender))
	if typ != "m.room.member" || stateKey == nil {
		return keys
	}
	add(memberKey(*stateKey))
	membership, _ := content.getString("membership")
	// The spec lists join and invite; knocks are checked against the join
	// rule too, so like Synapse we pick it for them.
	if membership == joinMembership || membership == inviteMembership || membership == knockMembership {
		add(joinRulesKey)
	}
	if membership == inviteMembership {
		if tpi, ok := content.get("third_party_invite"); ok {
			signed, _ := tpi.get("signed")
			if token, ok := signed.getString("token"); ok {
				add(StateKey{Type: "m.room.third_party_invite", StateKey: token})
			}
		}
	}
	if user, ok := content.getString("join_authorised_via_users_server"); ok {
		add(memberKey(user))
	}
	return keys
}

// CanApplyRedaction reports whether a redaction that passed the auth rules may
// actually be applied to original (spec "Handling redactions"): the redaction
// must name original, be in its room, and its sender must either have the
// redact level or be on the same server as original's sender. pl are the power
// levels in force at the redaction.
func CanApplyRedaction(redaction, original *Event, pl *PowerLevels) bool {
	if redaction.typ != "m.room.redaction" || redaction.Redacts() != original.id || redaction.RoomID() != original.RoomID() {
		return false
	}
	return serverOf(redaction.sender) == serverOf(original.sender) || pl.UserLevel(redaction.sender) >= pl.Redact()
}
