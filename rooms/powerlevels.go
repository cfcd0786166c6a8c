package rooms

import (
	"fmt"
	"math"
)

// CreatorLevel stands for the infinite power level of room creators in room
// version 12. No power_levels value can reach it: canonical JSON integers stop
// at 2^53-1.
const CreatorLevel int64 = math.MaxInt64

// Default levels (client-server spec, m.room.power_levels). They apply both when
// a key is missing from the power_levels event and when there is no event.
const (
	defaultBan           = 50
	defaultKick          = 50
	defaultRedact        = 50
	defaultInvite        = 0
	defaultStateDefault  = 50
	defaultEventsDefault = 0
	defaultUsersDefault  = 0
	// noPowerLevelsCreator is the creator's level in a v11 room that has no
	// power_levels event yet.
	noPowerLevelsCreator = 100
)

var (
	createKey      = StateKey{Type: "m.room.create"}
	powerLevelsKey = StateKey{Type: "m.room.power_levels"}
	joinRulesKey   = StateKey{Type: "m.room.join_rules"}
)

func memberKey(userID string) StateKey { return StateKey{Type: "m.room.member", StateKey: userID} }

// PowerLevels are the power levels in force in some room state: the
// power_levels event's content with defaults filled in, and, in room version
// 12, the room creators, whose level is CreatorLevel.
type PowerLevels struct {
	version       string
	hasEvent      bool   // there is an m.room.power_levels event
	soleCreator   string // the creator, for the v10/v11 rule without a power_levels event
	creators      map[string]bool
	users         map[string]int64
	events        map[string]int64
	notifications map[string]int64
	usersDefault  int64
	eventsDefault int64
	stateDefault  int64
	ban           int64
	kick          int64
	redact        int64
	invite        int64
}

// PowerLevelsFrom reads the power levels from state: its create event (which
// must be present) and its power_levels event (if any). It fails if a value is
// not an integer; the auth rules never let such an event into state.
func PowerLevelsFrom(state StateFunc) (*PowerLevels, error) {
	create := state(createKey)
	if create == nil {
		return nil, fmt.Errorf("rooms: power levels: no m.room.create event in state")
	}
	return powerLevels(create, state(powerLevelsKey))
}

func powerLevels(create, plEvent *Event) (*PowerLevels, error) {
	if plEvent == nil {
		return readPowerLevels(create, nil)
	}
	// Every auth check reads the same power levels again: keep the last
	// result on the event (PowerLevels is never changed once made).
	if m := plEvent.plMemo.Load(); m != nil && m.create == create {
		return m.pl, m.err
	}
	pl, err := readPowerLevels(create, plEvent)
	plEvent.plMemo.Store(&plMemo{create: create, pl: pl, err: err})
	return pl, err
}

// plMemo is a power levels event's content as read for a create event.
type plMemo struct {
	create *Event
	pl     *PowerLevels
	err    error
}

func readPowerLevels(create, plEvent *Event) (*PowerLevels, error) {
	p := &PowerLevels{
		version:       create.version,
		soleCreator:   roomCreator(create),
		creators:      map[string]bool{},
		users:         map[string]int64{},
		events:        map[string]int64{},
		notifications: map[string]int64{},
		usersDefault:  defaultUsersDefault,
		eventsDefault: defaultEventsDefault,
		stateDefault:  defaultStateDefault,
		ban:           defaultBan,
		kick:          defaultKick,
		redact:        defaultRedact,
		invite:        defaultInvite,
	}
	if create.version == V12 {
		for _, c := range creators(create) {
			p.creators[c] = true
		}
	}
	if plEvent == nil {
		return p, nil
	}
	p.hasEvent = true
	content := plEvent.content
	if err := checkPowerLevelsContent(content); err != nil {
		return nil, fmt.Errorf("rooms: power levels %s: %w", plEvent.id, err)
	}
	for _, f := range [...]struct {
		key string
		dst *int64
	}{
		{"users_default", &p.usersDefault}, {"events_default", &p.eventsDefault},
		{"state_default", &p.stateDefault}, {"ban", &p.ban}, {"kick", &p.kick},
		{"redact", &p.redact}, {"invite", &p.invite},
	} {
		if v, ok := content.get(f.key); ok {
			*f.dst = v.num
		}
	}
	for _, f := range [...]struct {
		key string
		dst map[string]int64
	}{{"users", p.users}, {"events", p.events}, {"notifications", p.notifications}} {
		if v, ok := content.get(f.key); ok {
			for _, m := range v.obj {
				f.dst[m.key] = m.val.num
			}
		}
	}
	return p, nil
}

// scalarLevelKeys are the power_levels properties holding a single level.
var scalarLevelKeys = []string{"users_default", "events_default", "state_default", "ban", "redact", "kick", "invite"}

// checkPowerLevelsContent applies the type checks of the power_levels auth rule:
// scalars are integers; events and notifications are objects of integers; users
// is an object of integers keyed by valid user IDs. Strings are rejected.
func checkPowerLevelsContent(content value) error {
	for _, key := range scalarLevelKeys {
		if v, ok := content.get(key); ok && v.kind != kNumber {
			return fmt.Errorf("%s is not an integer", key)
		}
	}
	for _, key := range []string{"events", "notifications", "users"} {
		v, ok := content.get(key)
		if !ok {
			continue
		}
		if v.kind != kObject {
			return fmt.Errorf("%s is not an object", key)
		}
		for _, m := range v.obj {
			if m.val.kind != kNumber {
				return fmt.Errorf("%s[%q] is not an integer", key, m.key)
			}
			if key == "users" && !validUserID(m.key) {
				return fmt.Errorf("users key %q is not a valid user ID", m.key)
			}
		}
	}
	return nil
}

// roomCreator is the user the auth rules call the room's creator before
// version 12: the create event's content.creator in version 10 (rule 1
// makes it a user ID), its sender from version 11.
func roomCreator(create *Event) string {
	if create.version == V10 {
		c, _ := create.content.getString("creator")
		return c
	}
	return create.sender
}

// creators returns the room creators of a v12 room: the create event's sender
// and the valid user IDs in content.additional_creators.
func creators(create *Event) []string {
	out := []string{create.sender}
	if extra, ok := create.content.get("additional_creators"); ok && extra.kind == kArray {
		for _, c := range extra.arr {
			if c.kind == kString && validUserID(c.str) {
				out = append(out, c.str)
			}
		}
	}
	return out
}

// UserLevel returns a user's power level: CreatorLevel for v12 creators, their
// users entry, 100 for the creator of a v10 or v11 room without power levels, or
// users_default.
func (p *PowerLevels) UserLevel(userID string) int64 {
	if p.creators[userID] {
		return CreatorLevel
	}
	if l, ok := p.users[userID]; ok {
		return l
	}
	if !p.hasEvent && p.version != V12 && userID == p.soleCreator {
		return noPowerLevelsCreator
	}
	return p.usersDefault
}

// EventLevel returns the level needed to send an event of type evType: its
// events entry, else state_default or events_default.
func (p *PowerLevels) EventLevel(evType string, isState bool) int64 {
	if l, ok := p.events[evType]; ok {
		return l
	}
	if isState {
		return p.stateDefault
	}
	return p.eventsDefault
}

// IsCreator reports whether userID is a creator with infinite power (v12 only).
func (p *PowerLevels) IsCreator(userID string) bool { return p.creators[userID] }

// NotificationLevel returns the level for a notifications key ("room": 50 by default).
func (p *PowerLevels) NotificationLevel(key string) int64 {
	if l, ok := p.notifications[key]; ok {
		return l
	}
	return 50
}

// Invite returns the level needed to invite.
func (p *PowerLevels) Invite() int64 { return p.invite }

// Kick returns the level needed to kick.
func (p *PowerLevels) Kick() int64 { return p.kick }

// Ban returns the level needed to ban.
func (p *PowerLevels) Ban() int64 { return p.ban }

// Redact returns the level needed to redact other users' events.
func (p *PowerLevels) Redact() int64 { return p.redact }

// UsersDefault returns the level of users without a users entry.
func (p *PowerLevels) UsersDefault() int64 { return p.usersDefault }

// checkPowerLevelsChange applies the v11/v12 power_levels rule (v11 rule 9, v12
// rule 10) to a new power_levels event e, given the create event and the
// current power_levels event (nil if none) and the sender's current level.
//
// "Current value" and "new value" are the values present in the old and new
// content: a key that is absent on one side is an addition or a removal, and
// only the side where it is present is compared with the sender's level. This
// is how Synapse and ruma read the rule.
func checkPowerLevelsChange(e, create, old *Event, senderLevel int64) error {
	content := e.content
	if err := checkPowerLevelsContent(content); err != nil {
		return notAllowed("power levels: %v", err)
	}
	if e.version == V12 {
		if users, ok := content.get("users"); ok {
			for _, c := range creators(create) {
				if _, listed := users.get(c); listed {
					return notAllowed("power levels: room creator %s may not appear in users", c)
				}
			}
		}
	}
	if old == nil {
		return nil
	}
	oldContent := old.content

	tooHigh := func(what string, level int64, present bool) error {
		if present && level > senderLevel {
			return notAllowed("power levels: %s %d is above the sender's level %d", what, level, senderLevel)
		}
		return nil
	}
	for _, key := range scalarLevelKeys {
		ov, oldOK := oldContent.get(key)
		nv, newOK := content.get(key)
		if oldOK == newOK && (!oldOK || ov.num == nv.num) {
			continue
		}
		if err := tooHigh("current "+key, ov.num, oldOK); err != nil {
			return err
		}
		if err := tooHigh("new "+key, nv.num, newOK); err != nil {
			return err
		}
	}
	for _, field := range []string{"events", "notifications", "users"} {
		oldMap, _ := oldContent.get(field)
		newMap, _ := content.get(field)
		for _, k := range unionKeys(oldMap, newMap) {
			ov, oldOK := oldMap.get(k)
			nv, newOK := newMap.get(k)
			if oldOK && newOK && ov.num == nv.num {
				continue
			}
			what := fmt.Sprintf("%s[%q]", field, k)
			if field == "users" {
				// Changing or removing someone else's level needs a level
				// strictly above their current one; your own may go down.
				if oldOK && k != e.sender && ov.num >= senderLevel {
					return notAllowed("power levels: current %s %d is not below the sender's level %d", what, ov.num, senderLevel)
				}
			} else if err := tooHigh("current "+what, ov.num, oldOK); err != nil {
				return err
			}
			if err := tooHigh("new "+what, nv.num, newOK); err != nil {
				return err
			}
		}
	}
	return nil
}

// unionKeys lists the keys of two objects (either may be absent).
func unionKeys(a, b value) []string {
	seen := map[string]bool{}
	var keys []string
	for _, v := range []value{a, b} {
		if v.kind != kObject {
			continue
		}
		for _, m := range v.obj {
			if !seen[m.key] {
				seen[m.key] = true
				keys = append(keys, m.key)
			}
		}
	}
	return keys
}
