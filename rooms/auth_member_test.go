package rooms

import (
	"errors"
	"testing"
)

// authCase is one auth-rule check: starting from newTestRoom (alice joined,
// power levels, join rule "invite") or from room, run setup, then build the
// event and check Allowed against the room state.
type authCase struct {
	name     string
	versions []string                           // nil means 10, 11 and 12
	room     func(testing.TB, string) *testRoom // nil means newTestRoom
	setup    func(r *testRoom)
	event    func(r *testRoom) *Event
	allowed  bool
}

func runAuthCases(t *testing.T, cases []authCase) {
	t.Helper()
	for _, tc := range cases {
		versions := tc.versions
		if versions == nil {
			versions = []string{V10, V11, V12}
		}
		for _, version := range versions {
			t.Run("v"+version+": "+tc.name, func(t *testing.T) {
				newRoom := tc.room
				if newRoom == nil {
					newRoom = newTestRoom
				}
				r := newRoom(t, version)
				if tc.setup != nil {
					tc.setup(r)
				}
				e := tc.event(r)
				err := Allowed(e, r.lookup)
				if tc.allowed && err != nil {
					t.Fatalf("Allowed(%s) = %v, want nil", e, err)
				}
				if !tc.allowed {
					var na *NotAllowed
					if !errors.As(err, &na) {
						t.Fatalf("Allowed(%s) = %v, want *NotAllowed", e, err)
					}
					t.Logf("rejected as expected: %v", err)
				}
				// Whatever the verdict, the test room picked the right auth events.
				if err := CheckAuthEvents(e, r.authEventsOf(e)); err != nil {
					t.Errorf("CheckAuthEvents: %v", err)
				}
			})
		}
	}
}

// ev returns an event builder for a case.
func ev(sender, typ, stateKey, content string) func(*testRoom) *Event {
	return func(r *testRoom) *Event { return r.build(sender, typ, stateKey, content) }
}

// memberEv builds a member event from sender about target.
func memberEv(sender, target, membership, extra string) func(*testRoom) *Event {
	return ev(sender, "m.room.member", target, memberContent(membership, extra))
}

// cosigned builds the event and adds the signature of server s.
func cosigned(s testServer, build func(*testRoom) *Event) func(*testRoom) *Event {
	return func(r *testRoom) *Event {
		e, err := Sign(build(r), s.name, s.key)
		if err != nil {
			r.t.Fatal(err)
		}
		return e
	}
}

func withJoinRule(rule string, then ...func(*testRoom)) func(*testRoom) {
	return func(r *testRoom) {
		r.joinRule(rule)
		for _, f := range then {
			f(r)
		}
	}
}

func bareWithAliceJoined(createContent string) func(testing.TB, string) *testRoom {
	return func(t testing.TB, version string) *testRoom {
		r := newBareRoom(t, version, createContent)
		r.member(alice, alice, "join", "")
		return r
	}
}

func TestAuthMemberJoin(t *testing.T) {
	authorised := `,"join_authorised_via_users_server":"ALICE"`
	runAuthCases(t, []authCase{
		{name: "the creator's first join right after the create event is allowed",
			room:  func(t testing.TB, v string) *testRoom { return newBareRoom(t, v, "") },
			event: memberEv(alice, alice, "join", ""), allowed: true},
		{name: "the creator's first join is allowed whoever sends it, as the rule reads",
			room:  func(t testing.TB, v string) *testRoom { return newBareRoom(t, v, "") },
			event: memberEv(bob, alice, "join", ""), allowed: true},
		{name: "another user's join right after the create event is not allowed",
			room:  func(t testing.TB, v string) *testRoom { return newBareRoom(t, v, "") },
			event: memberEv(bob, bob, "join", "")},
		{name: "joining on behalf of someone else is not allowed",
			setup: withJoinRule("public"), event: memberEv(bob, carol, "join", "")},
		{name: "a banned user cannot join a public room",
			setup: withJoinRule("public", func(r *testRoom) { r.member(alice, bob, "ban", "") }),
			event: memberEv(bob, bob, "join", "")},
		{name: "anyone may join a public room", setup: withJoinRule("public"),
			event: memberEv(bob, bob, "join", ""), allowed: true},
		{name: "a user who left may join a public room again",
			setup: withJoinRule("public", func(r *testRoom) { r.join(bob); r.member(bob, bob, "leave", "") }),
			event: memberEv(bob, bob, "join", ""), allowed: true},
		{name: "an invited user may join an invite-only room",
			setup: func(r *testRoom) { r.member(alice, bob, "invite", "") },
			event: memberEv(bob, bob, "join", ""), allowed: true},
		{name: "an uninvited user may not join an invite-only room",
			event: memberEv(bob, bob, "join", "")},
		{name: "a joined user may send a join again to change their profile",
			setup: func(r *testRoom) { r.join(bob) },
			event: memberEv(bob, bob, "join", `,"displayname":"B"`), allowed: true},
		{name: "a user who was kicked may not rejoin an invite-only room",
			setup: func(r *testRoom) { r.join(bob); r.member(alice, bob, "leave", "") },
			event: memberEv(bob, bob, "join", "")},
		{name: "a room without a join rule is invite-only",
			room:  bareWithAliceJoined(""),
			event: memberEv(bob, bob, "join", "")},
		{name: "an invited user may join a knock room", setup: withJoinRule("knock", func(r *testRoom) { r.member(alice, bob, "invite", "") }),
			event: memberEv(bob, bob, "join", ""), allowed: true},
		{name: "an uninvited user may not join a knock room", setup: withJoinRule("knock"),
			event: memberEv(bob, bob, "join", "")},
		{name: "a knocking user may not join a knock room until invited",
			setup: withJoinRule("knock", func(r *testRoom) { r.member(bob, bob, "knock", "") }),
			event: memberEv(bob, bob, "join", "")},
		{name: "nobody may join a private room", setup: withJoinRule("private"),
			event: memberEv(bob, bob, "join", "")},
		{name: "an unknown join rule lets nobody in", setup: withJoinRule("whatever"),
			event: memberEv(bob, bob, "join", "")},
		{name: "an invited user may join a restricted room",
			setup: withJoinRule("restricted", func(r *testRoom) { r.member(alice, bob, "invite", "") }),
			event: memberEv(bob, bob, "join", ""), allowed: true},
		{name: "a restricted join authorised and signed by a joined inviter is allowed",
			setup: withJoinRule("restricted"),
			event: cosigned(serverA, memberEv(bob, bob, "join", authorised)), allowed: true},
		{name: "a knock_restricted join authorised and signed by a joined inviter is allowed",
			setup: withJoinRule("knock_restricted"),
			event: cosigned(serverA, memberEv(bob, bob, "join", authorised)), allowed: true},
		{name: "a restricted join not signed by the authoriser's server is not allowed",
			setup: withJoinRule("restricted"),
			event: memberEv(bob, bob, "join", authorised)},
		{name: "a restricted join without an authoriser is not allowed",
			setup: withJoinRule("restricted"), event: memberEv(bob, bob, "join", "")},
		{name: "a restricted join whose authoriser is not a user ID is not allowed",
			setup: withJoinRule("restricted"), event: memberEv(bob, bob, "join", `,"join_authorised_via_users_server":5`)},
		{name: "an authoriser below the invite level cannot authorise a restricted join",
			setup: withJoinRule("restricted", func(r *testRoom) {
				r.join(carol)
				r.powerLevels("", `"invite":50`)
			}),
			event: cosigned(serverC, memberEv(bob, bob, "join", `,"join_authorised_via_users_server":"CAROL"`))},
		{name: "an authoriser who is not joined cannot authorise a restricted join",
			setup: withJoinRule("restricted", func(r *testRoom) { r.member(alice, carol, "invite", "") }),
			event: cosigned(serverC, memberEv(bob, bob, "join", `,"join_authorised_via_users_server":"CAROL"`))},
		{name: "a banned user cannot use a restricted authorisation",
			setup: withJoinRule("restricted", func(r *testRoom) { r.member(alice, bob, "ban", "") }),
			event: cosigned(serverA, memberEv(bob, bob, "join", authorised))},
		{name: "even a public join must be signed by the named authoriser's server",
			setup: withJoinRule("public"), event: memberEv(bob, bob, "join", authorised)},
	})
}

func TestAuthMemberInvite(t *testing.T) {
	runAuthCases(t, []authCase{
		{name: "a joined user at the invite level may invite",
			event: memberEv(alice, bob, "invite", ""), allowed: true},
		{name: "a joined user at the default invite level 0 may invite",
			setup: func(r *testRoom) { r.join(bob) },
			event: memberEv(bob, carol, "invite", ""), allowed: true},
		{name: "inviting someone already invited is allowed",
			setup: func(r *testRoom) { r.member(alice, bob, "invite", "") },
			event: memberEv(alice, bob, "invite", ""), allowed: true},
		{name: "inviting someone who left is allowed",
			setup: func(r *testRoom) { r.join(bob); r.member(bob, bob, "leave", "") },
			event: memberEv(alice, bob, "invite", ""), allowed: true},
		{name: "a user who is not joined may not invite",
			setup: func(r *testRoom) { r.member(alice, bob, "invite", "") },
			event: memberEv(bob, carol, "invite", "")},
		{name: "inviting a joined user is not allowed",
			setup: func(r *testRoom) { r.join(bob) },
			event: memberEv(alice, bob, "invite", "")},
		{name: "inviting a banned user is not allowed",
			setup: func(r *testRoom) { r.member(alice, bob, "ban", "") },
			event: memberEv(alice, bob, "invite", "")},
		{name: "a user below the invite level may not invite",
			setup: func(r *testRoom) { r.join(bob); r.powerLevels("", `"invite":10`) },
			event: memberEv(bob, carol, "invite", "")},
	})
}

func TestAuthMemberLeaveKickBan(t *testing.T) {
	mods := func(r *testRoom) {
		r.join(bob)
		r.join(carol)
		r.join(dave)
		r.powerLevels(`"BOB":50,"DAVE":50`, `"ban":75`)
	}
	runAuthCases(t, []authCase{
		{name: "a joined user may leave", setup: func(r *testRoom) { r.join(bob) },
			event: memberEv(bob, bob, "leave", ""), allowed: true},
		{name: "an invited user may reject the invite", setup: func(r *testRoom) { r.member(alice, bob, "invite", "") },
			event: memberEv(bob, bob, "leave", ""), allowed: true},
		{name: "a knocking user may withdraw the knock",
			setup: withJoinRule("knock", func(r *testRoom) { r.member(bob, bob, "knock", "") }),
			event: memberEv(bob, bob, "leave", ""), allowed: true},
		{name: "a user who already left may not leave again",
			setup: func(r *testRoom) { r.join(bob); r.member(bob, bob, "leave", "") },
			event: memberEv(bob, bob, "leave", "")},
		{name: "a stranger may not leave", event: memberEv(bob, bob, "leave", "")},
		{name: "a banned user may not unban themselves by leaving",
			setup: func(r *testRoom) { r.join(bob); r.member(alice, bob, "ban", "") },
			event: memberEv(bob, bob, "leave", "")},
		{name: "a moderator at the kick level may kick a lower user", setup: mods,
			event: memberEv(bob, carol, "leave", ""), allowed: true},
		{name: "a moderator may revoke a lower user's invite", setup: func(r *testRoom) { mods(r); r.member(alice, eve, "invite", "") },
			event: memberEv(bob, eve, "leave", ""), allowed: true},
		{name: "a moderator may not kick a user at the same level", setup: mods,
			event: memberEv(bob, dave, "leave", "")},
		{name: "a moderator may not kick the admin", setup: mods,
			event: memberEv(bob, alice, "leave", "")},
		{name: "a user below the kick level may not kick", setup: mods,
			event: memberEv(carol, bob, "leave", "")},
		{name: "a moderator who is not joined may not kick",
			setup: func(r *testRoom) { mods(r); r.member(bob, bob, "leave", "") },
			event: memberEv(bob, carol, "leave", "")},
		{name: "unbanning needs the ban level as well as the kick level",
			setup: func(r *testRoom) { mods(r); r.member(alice, eve, "ban", "") },
			event: memberEv(bob, eve, "leave", "")},
		{name: "a user with the kick and ban levels may unban",
			setup: func(r *testRoom) { mods(r); r.member(alice, eve, "ban", "") },
			event: memberEv(alice, eve, "leave", ""), allowed: true},
		{name: "a user at the ban level may ban a lower user",
			setup: func(r *testRoom) { mods(r); r.powerLevels(`"BOB":75,"DAVE":50`, `"ban":75`) },
			event: memberEv(bob, carol, "ban", ""), allowed: true},
		{name: "a user may be banned before ever joining",
			event: memberEv(alice, eve, "ban", ""), allowed: true},
		{name: "a user below the ban level may not ban", setup: mods,
			event: memberEv(bob, carol, "ban", "")},
		{name: "a user may not ban someone at their own level",
			setup: func(r *testRoom) { mods(r); r.powerLevels(`"BOB":75,"DAVE":75`, `"ban":75`) },
			event: memberEv(bob, dave, "ban", "")},
		{name: "a user who is not joined may not ban",
			setup: func(r *testRoom) {
				mods(r)
				r.powerLevels(`"BOB":75,"DAVE":50`, `"ban":75`)
				r.member(bob, bob, "leave", "")
			},
			event: memberEv(bob, carol, "ban", "")},
	})
}

func TestAuthMemberKnockAndOthers(t *testing.T) {
	runAuthCases(t, []authCase{
		{name: "a stranger may knock on a knock room", setup: withJoinRule("knock"),
			event: memberEv(bob, bob, "knock", ""), allowed: true},
		{name: "a stranger may knock on a knock_restricted room", setup: withJoinRule("knock_restricted"),
			event: memberEv(bob, bob, "knock", ""), allowed: true},
		{name: "a user who left may knock again",
			setup: withJoinRule("knock", func(r *testRoom) { r.member(bob, bob, "knock", ""); r.member(bob, bob, "leave", "") }),
			event: memberEv(bob, bob, "knock", ""), allowed: true},
		{name: "knocking on an invite-only room is not allowed",
			event: memberEv(bob, bob, "knock", "")},
		{name: "knocking on a public room is not allowed", setup: withJoinRule("public"),
			event: memberEv(bob, bob, "knock", "")},
		{name: "knocking on behalf of someone else is not allowed", setup: withJoinRule("knock"),
			event: memberEv(bob, carol, "knock", "")},
		{name: "an invited user may not knock",
			setup: withJoinRule("knock", func(r *testRoom) { r.member(alice, bob, "invite", "") }),
			event: memberEv(bob, bob, "knock", "")},
		{name: "a joined user may not knock",
			setup: withJoinRule("knock", func(r *testRoom) { r.join(bob) }),
			event: memberEv(bob, bob, "knock", "")},
		{name: "a banned user may not knock",
			setup: withJoinRule("knock", func(r *testRoom) { r.member(alice, bob, "ban", "") }),
			event: memberEv(bob, bob, "knock", "")},
		{name: "an unknown membership is not allowed", event: memberEv(alice, bob, "dance", "")},
		{name: "a member event without membership is not allowed", event: ev(alice, "m.room.member", bob, `{}`)},
		{name: "a numeric membership is not allowed", event: ev(alice, "m.room.member", bob, `{"membership":1}`)},
		{name: "a member event without a state key is not allowed", event: ev(alice, "m.room.member", "-", `{"membership":"join"}`)},
		{name: "a member event whose state key is not a user ID is not allowed", event: memberEv(alice, "bob", "invite", "")},
	})
}

func TestAuthCreatorsInVersion12(t *testing.T) {
	withMods := func(r *testRoom) { r.join(bob); r.powerLevels(`"BOB":100`) }
	coCreated := bareWithAliceJoined(`{"room_version":"12","additional_creators":["BOB"]}`)
	runAuthCases(t, []authCase{
		{name: "a creator cannot be kicked, even by a user at 100", versions: []string{V12}, setup: withMods,
			event: memberEv(bob, alice, "leave", "")},
		{name: "a creator can kick a user at 100", versions: []string{V12}, setup: withMods,
			event: memberEv(alice, bob, "leave", ""), allowed: true},
		{name: "in v10 and v11 the creator at 100 cannot kick another user at 100", versions: []string{V10, V11}, setup: withMods,
			event: memberEv(alice, bob, "leave", "")},
		{name: "a creator may not be listed in power levels users", versions: []string{V12},
			event: ev(alice, "m.room.power_levels", "", `{"users":{"ALICE":100}}`)},
		{name: "an additional creator has infinite power", versions: []string{V12}, room: coCreated,
			setup: func(r *testRoom) { r.member(alice, bob, "invite", ""); r.member(bob, bob, "join", "") },
			event: ev(bob, "m.room.power_levels", "", `{"users":{"CAROL":9007199254740991}}`), allowed: true},
		{name: "an additional creator may not be listed in power levels users", versions: []string{V12}, room: coCreated,
			event: ev(alice, "m.room.power_levels", "", `{"users":{"BOB":50}}`)},
		{name: "an additional creator cannot be banned by the other creator", versions: []string{V12}, room: coCreated,
			setup: func(r *testRoom) { r.member(alice, bob, "invite", ""); r.member(bob, bob, "join", "") },
			event: memberEv(alice, bob, "ban", "")},
	})
}
