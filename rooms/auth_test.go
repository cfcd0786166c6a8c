package rooms

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestAuthCreate(t *testing.T) {
	tests := []struct {
		name     string
		versions []string
		edit     func(p *ProtoEvent)
		allowed  bool
	}{
		{name: "a create event without prev events is allowed", allowed: true},
		{name: "a create event without room_version is allowed (it defaults to 1)",
			edit: func(p *ProtoEvent) { p.Content = json.RawMessage(`{}`) }, allowed: true},
		{name: "a create event with prev events is not allowed",
			edit: func(p *ProtoEvent) {
				p.PrevEvents = []string{"$" + strings.Repeat("A", 43)}
			}},
		{name: "an unknown room_version is not allowed",
			edit: func(p *ProtoEvent) { p.Content = json.RawMessage(`{"room_version":"99"}`) }},
		{name: "a numeric room_version is not allowed",
			edit: func(p *ProtoEvent) { p.Content = json.RawMessage(`{"room_version":11}`) }},
		{name: "a v10 or v11 room ID on another server than the sender's is not allowed", versions: []string{V10, V11},
			edit: func(p *ProtoEvent) { p.RoomID = "!room:" + serverB.name }},
		{name: "valid additional_creators are allowed", versions: []string{V12},
			edit:    func(p *ProtoEvent) { p.Content = json.RawMessage(expand(`{"additional_creators":["BOB","CAROL"]}`)) },
			allowed: true},
		{name: "additional_creators that is not a list is not allowed", versions: []string{V12},
			edit: func(p *ProtoEvent) { p.Content = json.RawMessage(expand(`{"additional_creators":"BOB"}`)) }},
		{name: "an additional creator that is not a user ID is not allowed", versions: []string{V12},
			edit: func(p *ProtoEvent) { p.Content = json.RawMessage(`{"additional_creators":["bob"]}`) }},
		{name: "a numeric additional creator is not allowed", versions: []string{V12},
			edit: func(p *ProtoEvent) { p.Content = json.RawMessage(`{"additional_creators":[1]}`) }},
		{name: "additional_creators means nothing to v11", versions: []string{V11},
			edit: func(p *ProtoEvent) { p.Content = json.RawMessage(`{"additional_creators":"x"}`) }, allowed: true},
	}
	for _, tt := range tests {
		versions := tt.versions
		if versions == nil {
			versions = []string{V11, V12}
		}
		for _, version := range versions {
			t.Run("v"+version+": "+tt.name, func(t *testing.T) {
				p := ProtoEvent{Sender: alice, Type: "m.room.create", StateKey: NewStateKey(""),
					Content: json.RawMessage(`{"room_version":"` + version + `"}`), Depth: 1}
				if version == V10 {
					p.Content = json.RawMessage(expand(`{"room_version":"10","creator":"ALICE"}`))
				}
				if RoomIDHasServer(version) {
					p.RoomID = "!room:" + serverA.name
				}
				if tt.edit != nil {
					tt.edit(&p)
				}
				e, err := Build(p, version, serverA.name, serverA.key)
				if err != nil {
					t.Fatal(err)
				}
				err = Allowed(e, func(StateKey) *Event { return nil })
				if (err == nil) != tt.allowed {
					t.Errorf("Allowed = %v, want allowed=%v", err, tt.allowed)
				}
				if err := CheckAuthEvents(e, nil); err != nil {
					t.Errorf("CheckAuthEvents: %v", err)
				}
			})
		}
	}
}

func TestAuthNonMemberEvents(t *testing.T) {
	withBob := func(r *testRoom) { r.join(bob) }
	runAuthCases(t, []authCase{
		{name: "a joined user may send a message", setup: withBob,
			event: ev(bob, "m.room.message", "-", `{"body":"hi"}`), allowed: true},
		{name: "a stranger may not send a message",
			event: ev(eve, "m.room.message", "-", `{"body":"hi"}`)},
		{name: "an invited user may not send a message", setup: func(r *testRoom) { r.member(alice, bob, "invite", "") },
			event: ev(bob, "m.room.message", "-", `{"body":"hi"}`)},
		{name: "a user who left may not send a message", setup: func(r *testRoom) { withBob(r); r.member(bob, bob, "leave", "") },
			event: ev(bob, "m.room.message", "-", `{"body":"hi"}`)},
		{name: "events_default applies to messages", setup: func(r *testRoom) { withBob(r); r.powerLevels("", `"events_default":10`) },
			event: ev(bob, "m.room.message", "-", `{"body":"hi"}`)},
		{name: "an events entry can raise one message type",
			setup: func(r *testRoom) { withBob(r); r.powerLevels("", `"events":{"m.room.message":10}`) },
			event: ev(bob, "m.room.message", "-", `{"body":"hi"}`)},
		{name: "a state event needs state_default", setup: withBob,
			event: ev(bob, "m.room.topic", "", `{"topic":"t"}`)},
		{name: "an events entry can lower one state type",
			setup: func(r *testRoom) { withBob(r); r.powerLevels("", `"events":{"m.room.topic":0}`) },
			event: ev(bob, "m.room.topic", "", `{"topic":"t"}`), allowed: true},
		{name: "a state key naming another user is not allowed",
			setup: func(r *testRoom) { withBob(r); r.powerLevels("", `"events":{"com.example.x":0}`) },
			event: ev(bob, "com.example.x", "ALICE", `{}`)},
		{name: "a state key naming the sender is allowed",
			setup: func(r *testRoom) { withBob(r); r.powerLevels("", `"events":{"com.example.x":0}`) },
			event: ev(bob, "com.example.x", "BOB", `{}`), allowed: true},
		{name: "a state key starting with @ is checked even when it is not a user ID",
			event: ev(alice, "com.example.x", "@x", `{}`)},
		{name: "a third-party invite event needs the invite level",
			setup: func(r *testRoom) { withBob(r); r.powerLevels("", `"invite":10`) },
			event: ev(bob, "m.room.third_party_invite", "tok", `{"display_name":"x","public_key":"abc","key_validity_url":"https://x"}`)},
		{name: "a third-party invite event needs only the invite level, whatever events says",
			setup: func(r *testRoom) { withBob(r); r.powerLevels("", `"events":{"m.room.third_party_invite":100}`) },
			event: ev(bob, "m.room.third_party_invite", "tok", `{"display_name":"x","public_key":"abc"}`), allowed: true},
		{name: "a third-party invite event from a stranger is not allowed",
			event: ev(eve, "m.room.third_party_invite", "tok", `{"display_name":"x","public_key":"abc"}`)},
		{name: "a redaction passes auth at events_default, whoever sent the original",
			setup: func(r *testRoom) { withBob(r); r.send(alice, "m.room.message", "-", `{"body":"x"}`) },
			event: func(r *testRoom) *Event {
				return r.build(bob, "m.room.redaction", "-", `{"redacts":"`+r.last.ID()+`"}`)
			}, allowed: true},
		{name: "a room that does not federate refuses senders from other servers",
			room:  bareWithAliceJoined(`{"m.federate":false}`),
			setup: withJoinRule("public"), event: memberEv(bob, bob, "join", "")},
		{name: "a room that does not federate accepts users of the creator's server",
			room:  bareWithAliceJoined(`{"m.federate":false}`),
			setup: withJoinRule("public"), event: memberEv(alice2, alice2, "join", ""), allowed: true},
		{name: "m.federate true changes nothing",
			room:  bareWithAliceJoined(`{"m.federate":true}`),
			setup: withJoinRule("public"), event: memberEv(bob, bob, "join", ""), allowed: true},
	})
}

func TestAuthPowerLevels(t *testing.T) {
	// bob and dave are moderators at 50, carol is at 10; ban is 75; an events
	// entry and a notifications entry sit at 100.
	extras := []string{`"ban":75`, `"events":{"m.room.name":100}`, `"notifications":{"room":100}`}
	mods := func(r *testRoom) {
		r.join(bob)
		r.join(carol)
		r.join(dave)
		r.powerLevels(`"BOB":50,"CAROL":10,"DAVE":50`, extras...)
	}
	// plEv builds a power_levels event from sender with the given users and
	// the extras, with override replacing extras when given.
	plEv := func(sender, users string, override ...string) func(*testRoom) *Event {
		return func(r *testRoom) *Event {
			ex := extras
			if override != nil {
				ex = override
			}
			return r.build(sender, "m.room.power_levels", "", r.plContent(users, ex...))
		}
	}
	runAuthCases(t, []authCase{
		{name: "the first power levels event is allowed whatever levels it sets",
			room:  bareWithAliceJoined(""),
			event: ev(alice, "m.room.power_levels", "", `{"ban":9000,"users":{"BOB":9000}}`), allowed: true},
		{name: "a level written as a string is not allowed",
			event: ev(alice, "m.room.power_levels", "", `{"ban":"50"}`)},
		{name: "a users value written as a string is not allowed",
			event: ev(alice, "m.room.power_levels", "", `{"users":{"BOB":"50"}}`)},
		{name: "a users key that is not a user ID is not allowed",
			event: ev(alice, "m.room.power_levels", "", `{"users":{"bob":50}}`)},
		{name: "users that is not an object is not allowed",
			event: ev(alice, "m.room.power_levels", "", `{"users":[]}`)},
		{name: "an events value that is not an integer is not allowed",
			event: ev(alice, "m.room.power_levels", "", `{"events":{"m.room.name":true}}`)},
		{name: "a notifications value that is not an integer is not allowed",
			event: ev(alice, "m.room.power_levels", "", `{"notifications":{"room":"50"}}`)},
		{name: "events that is not an object is not allowed",
			event: ev(alice, "m.room.power_levels", "", `{"events":5}`)},
		{name: "even the first power levels event must use integers",
			room:  bareWithAliceJoined(""),
			event: ev(alice, "m.room.power_levels", "", `{"kick":"50"}`)},
		{name: "a moderator may promote a user up to their own level", setup: mods,
			event: plEv(bob, `"BOB":50,"CAROL":50,"DAVE":50`), allowed: true},
		{name: "a moderator may add a new user at their own level", setup: mods,
			event: plEv(bob, `"BOB":50,"CAROL":10,"DAVE":50,"EVE":50`), allowed: true},
		{name: "a moderator may not promote a user above their own level", setup: mods,
			event: plEv(bob, `"BOB":50,"CAROL":51,"DAVE":50`)},
		{name: "a moderator may not promote themselves", setup: mods,
			event: plEv(bob, `"BOB":51,"CAROL":10,"DAVE":50`)},
		{name: "a moderator may demote themselves", setup: mods,
			event: plEv(bob, `"BOB":10,"CAROL":10,"DAVE":50`), allowed: true},
		{name: "a moderator may not demote a user at the same level", setup: mods,
			event: plEv(bob, `"BOB":50,"CAROL":10,"DAVE":0`)},
		{name: "a moderator may not remove a user at the same level", setup: mods,
			event: plEv(bob, `"BOB":50,"CAROL":10`)},
		{name: "a moderator may remove a lower user's entry", setup: mods,
			event: plEv(bob, `"BOB":50,"DAVE":50`), allowed: true},
		{name: "a moderator may not change a level that is above their own", setup: mods,
			event: plEv(bob, `"BOB":50,"CAROL":10,"DAVE":50`, `"ban":50`, extras[1], extras[2])},
		{name: "a moderator may not remove a level that is above their own", setup: mods,
			event: plEv(bob, `"BOB":50,"CAROL":10,"DAVE":50`, extras[1], extras[2])},
		{name: "a moderator may not set kick above their own level", setup: mods,
			event: plEv(bob, `"BOB":50,"CAROL":10,"DAVE":50`, append([]string{`"kick":60`}, extras...)...)},
		{name: "a moderator may set kick at their own level", setup: mods,
			event: plEv(bob, `"BOB":50,"CAROL":10,"DAVE":50`, append([]string{`"kick":50`}, extras...)...), allowed: true},
		{name: "a moderator may not change an events entry above their own level", setup: mods,
			event: plEv(bob, `"BOB":50,"CAROL":10,"DAVE":50`, extras[0], `"events":{"m.room.name":50}`, extras[2])},
		{name: "a moderator may not remove an events entry above their own level", setup: mods,
			event: plEv(bob, `"BOB":50,"CAROL":10,"DAVE":50`, extras[0], `"events":{}`, extras[2])},
		{name: "a moderator may add an events entry at their own level", setup: mods,
			event: plEv(bob, `"BOB":50,"CAROL":10,"DAVE":50`, extras[0], `"events":{"m.room.name":100,"m.room.topic":50}`, extras[2]), allowed: true},
		{name: "a moderator may not add an events entry above their own level", setup: mods,
			event: plEv(bob, `"BOB":50,"CAROL":10,"DAVE":50`, extras[0], `"events":{"m.room.name":100,"m.room.topic":51}`, extras[2])},
		{name: "a moderator may not change a notifications entry above their own level", setup: mods,
			event: plEv(bob, `"BOB":50,"CAROL":10,"DAVE":50`, extras[0], extras[1], `"notifications":{"room":50}`)},
		{name: "an unchanged entry above the sender's level does not block other changes", setup: mods,
			event: plEv(bob, `"BOB":50,"CAROL":20,"DAVE":50`), allowed: true},
		{name: "a user below state_default may not send power levels at all", setup: mods,
			event: plEv(carol, `"BOB":50,"CAROL":10,"DAVE":50`)},
		{name: "in v10 and v11 a moderator may not demote the admin", versions: []string{V10, V11}, setup: mods,
			event: ev(bob, "m.room.power_levels", "", `{"users":{"ALICE":0,"BOB":50,"CAROL":10,"DAVE":50},"ban":75,"events":{"m.room.name":100},"notifications":{"room":100}}`)},
		{name: "in v10 and v11 the admin may list themselves", versions: []string{V10, V11},
			event: ev(alice, "m.room.power_levels", "", `{"users":{"ALICE":100}}`), allowed: true},
		{name: "in v12 a creator may raise anyone to the maximum level", versions: []string{V12}, setup: mods,
			event: plEv(alice, `"BOB":9007199254740991`), allowed: true},
	})
}

func TestCheckAuthEvents(t *testing.T) {
	for _, version := range []string{V10, V11, V12} {
		r := newTestRoom(t, version)
		r.join(bob)
		aliceJoin := r.state[memberKey(alice)]
		r.member(alice, alice, "join", `,"displayname":"Alice"`)
		withAuth := func(sender string, ids ...string) *Event {
			p := r.proto(sender, "m.room.message", "-", `{}`)
			p.AuthEvents = ids
			return r.buildProto(p)
		}
		lookup := func(e *Event) []*Event { return r.authEventsOf(e) }
		create, pl, jr := r.state[createKey], r.state[powerLevelsKey], r.state[joinRulesKey]
		base := []string{pl.ID(), r.state[memberKey(alice)].ID()}
		if version != V12 {
			base = append([]string{create.ID()}, base...)
		}
		otherMember := bareWithAliceJoined(`{"x":1}`)(t, version).state[memberKey(alice)]
		tests := []struct {
			name    string
			event   *Event
			given   []*Event // nil: looked up in the room
			allowed bool
		}{
			{name: "the selected auth events pass", event: withAuth(alice, base...), allowed: true},
			{name: "fewer auth events than the selection picks pass", event: withAuth(alice, base[:len(base)-1]...), allowed: true},
			{name: "a missing auth event is refused", event: withAuth(alice, base...),
				given: append(lookup(withAuth(alice, base...))[:len(base)-1], nil)},
			{name: "an auth event other than the one cited is refused", event: withAuth(alice, base...),
				given: append(lookup(withAuth(alice, base...))[:len(base)-1], jr)},
			{name: "a duplicate type and state key is refused",
				event: withAuth(alice, append(base, aliceJoin.ID())...),
				given: append(lookup(withAuth(alice, base...)), aliceJoin)},
			{name: "an entry the selection would not pick is refused", event: withAuth(alice, append(base, jr.ID())...)},
			{name: "another user's member event is refused for a message", event: withAuth(alice, append(base, r.state[memberKey(bob)].ID())...)},
			{name: "an event from another room is refused",
				event: withAuth(alice, append(slices.Clone(base[:len(base)-1]), otherMember.ID())...),
				given: append(lookup(withAuth(alice, base...))[:len(base)-1], otherMember)},
		}
		if version != V12 {
			tests = append(tests, struct {
				name    string
				event   *Event
				given   []*Event
				allowed bool
			}{name: "a missing create event is refused", event: withAuth(alice, base[1:]...)})
		} else {
			tests = append(tests, struct {
				name    string
				event   *Event
				given   []*Event
				allowed bool
			}{name: "a create event among the auth events is refused", event: withAuth(alice, append(base, create.ID())...),
				given: append(lookup(withAuth(alice, base...)), create)})
		}
		for _, tt := range tests {
			t.Run("v"+version+": "+tt.name, func(t *testing.T) {
				given := tt.given
				if given == nil {
					given = lookup(tt.event)
				}
				err := CheckAuthEvents(tt.event, given)
				if tt.allowed && err != nil {
					t.Fatalf("CheckAuthEvents = %v", err)
				}
				var na *NotAllowed
				if !tt.allowed && !errors.As(err, &na) {
					t.Fatalf("CheckAuthEvents = %v, want *NotAllowed", err)
				}
				if err != nil {
					t.Logf("refused as expected: %v", err)
				}
			})
		}
	}
}

func TestAuthEventKeys(t *testing.T) {
	member := func(target, content string) ProtoEvent {
		return ProtoEvent{Sender: alice, Type: "m.room.member", StateKey: NewStateKey(expand(target)), Content: json.RawMessage(expand(content))}
	}
	sk := func(typ, key string) StateKey { return StateKey{Type: typ, StateKey: expand(key)} }
	tests := []struct {
		name    string
		version string
		p       ProtoEvent
		want    []StateKey
	}{
		{"a v11 message needs the create event, power levels and the sender's membership", V11,
			ProtoEvent{Sender: alice, Type: "m.room.message"}, []StateKey{createKey, powerLevelsKey, memberKey(alice)}},
		{"a v12 message never cites the create event", V12,
			ProtoEvent{Sender: alice, Type: "m.room.message"}, []StateKey{powerLevelsKey, memberKey(alice)}},
		{"a create event has no auth events", V11, ProtoEvent{Sender: alice, Type: "m.room.create", StateKey: NewStateKey("")}, nil},
		{"an invite adds the target's membership and the join rules", V12, member("BOB", `{"membership":"invite"}`),
			[]StateKey{powerLevelsKey, memberKey(alice), memberKey(bob), joinRulesKey}},
		{"a leave does not need the join rules", V12, member("BOB", `{"membership":"leave"}`),
			[]StateKey{powerLevelsKey, memberKey(alice), memberKey(bob)}},
		{"a knock needs the join rules", V12, member("ALICE", `{"membership":"knock"}`),
			[]StateKey{powerLevelsKey, memberKey(alice), joinRulesKey}},
		{"a third-party invite adds the invite event named by its token", V12,
			member("BOB", `{"membership":"invite","third_party_invite":{"signed":{"token":"tok"}}}`),
			[]StateKey{powerLevelsKey, memberKey(alice), memberKey(bob), joinRulesKey, sk("m.room.third_party_invite", "tok")}},
		{"a restricted join adds the authoriser's membership", V12,
			ProtoEvent{Sender: bob, Type: "m.room.member", StateKey: NewStateKey(bob), Content: json.RawMessage(expand(`{"membership":"join","join_authorised_via_users_server":"CAROL"}`))},
			[]StateKey{powerLevelsKey, memberKey(bob), joinRulesKey, memberKey(carol)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := AuthEventKeys(tt.p, tt.version); !slices.Equal(got, tt.want) {
				t.Errorf("got %v\nwant %v", got, tt.want)
			}
		})
	}
}

func TestPowerLevelsFrom(t *testing.T) {
	t.Run("without a power levels event the v11 creator has 100 and the defaults apply", func(t *testing.T) {
		r := newBareRoom(t, V11, "")
		pl, err := PowerLevelsFrom(r.lookup)
		if err != nil {
			t.Fatal(err)
		}
		if pl.UserLevel(alice) != 100 || pl.UserLevel(bob) != 0 || pl.EventLevel("m.room.topic", true) != 50 ||
			pl.EventLevel("m.room.message", false) != 0 || pl.Ban() != 50 || pl.Kick() != 50 || pl.Redact() != 50 || pl.Invite() != 0 {
			t.Errorf("unexpected defaults: %+v", pl)
		}
	})
	t.Run("v12 creators have the creator level with or without power levels", func(t *testing.T) {
		r := newBareRoom(t, V12, `{"additional_creators":["BOB"]}`)
		for _, withPL := range []bool{false, true} {
			if withPL {
				r.member(alice, alice, "join", "")
				r.send(alice, "m.room.power_levels", "", `{"users_default":5}`)
			}
			pl, err := PowerLevelsFrom(r.lookup)
			if err != nil {
				t.Fatal(err)
			}
			if pl.UserLevel(alice) != CreatorLevel || pl.UserLevel(bob) != CreatorLevel || !pl.IsCreator(bob) || pl.IsCreator(carol) {
				t.Errorf("creators not infinite (power levels: %v)", withPL)
			}
			if want := map[bool]int64{false: 0, true: 5}[withPL]; pl.UserLevel(carol) != want {
				t.Errorf("carol has %d, want %d", pl.UserLevel(carol), want)
			}
		}
	})
	t.Run("explicit values override the defaults", func(t *testing.T) {
		r := newTestRoom(t, V11)
		r.powerLevels(`"BOB":42`, `"users_default":3`, `"ban":1`, `"kick":2`, `"redact":4`, `"invite":5`,
			`"state_default":6`, `"events_default":7`, `"events":{"m.room.name":8}`, `"notifications":{"room":9}`)
		pl, err := PowerLevelsFrom(r.lookup)
		if err != nil {
			t.Fatal(err)
		}
		got := []int64{pl.UserLevel(bob), pl.UserLevel(carol), pl.Ban(), pl.Kick(), pl.Redact(), pl.Invite(),
			pl.EventLevel("x", true), pl.EventLevel("x", false), pl.EventLevel("m.room.name", false), pl.NotificationLevel("room"), pl.UsersDefault()}
		if want := []int64{42, 3, 1, 2, 4, 5, 6, 7, 8, 9, 3}; !slices.Equal(got, want) {
			t.Errorf("got %v, want %v", got, want)
		}
	})
	t.Run("a state without a create event is an error", func(t *testing.T) {
		if _, err := PowerLevelsFrom(func(StateKey) *Event { return nil }); err == nil {
			t.Error("no error")
		}
	})
}

func TestCanApplyRedaction(t *testing.T) {
	r := newTestRoom(t, V12)
	r.join(bob)
	r.join(dave)
	r.join(carol)
	bobsMessage := r.send(bob, "m.room.message", "-", `{"body":"x"}`)
	pl, _ := PowerLevelsFrom(r.lookup)
	redaction := func(sender string, target *Event) *Event {
		return r.build(sender, "m.room.redaction", "-", `{"redacts":"`+target.ID()+`"}`)
	}
	tests := []struct {
		name      string
		redaction *Event
		want      bool
	}{
		{"the sender may redact their own event", redaction(bob, bobsMessage), true},
		{"a user of the same server may redact it", redaction(dave, bobsMessage), true},
		{"a user of another server below the redact level may not", redaction(carol, bobsMessage), false},
		{"a user at the redact level may", redaction(alice, bobsMessage), true},
		{"a redaction of another event does not apply", redaction(bob, r.create), false},
		{"an event that is not a redaction does not apply", r.build(bob, "m.room.message", "-", `{"redacts":"`+bobsMessage.ID()+`"}`), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := CanApplyRedaction(tt.redaction, bobsMessage, pl); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}
