package peers

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

func answerOf(t *testing.T, rooms ...PublicRoom) []byte {
	t.Helper()
	b, err := json.Marshal(PublicRoomsResp{Rooms: rooms})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestAPeersGarbageDirectoryAnswerIsIgnored: an answer that is not the
// protocol's, or over its bounds, is refused whole; an entry out of its
// bounds is left out and the others kept.
func TestAPeersGarbageDirectoryAnswerIsIgnored(t *testing.T) {
	good := PublicRoom{RoomID: "!good", Name: "Lobby", JoinedMembers: 3, JoinRule: "public", CanonicalAlias: "#lobby:s"}
	many := make([]PublicRoom, MaxDirectoryEntries+1)
	for k := range many {
		many[k] = PublicRoom{RoomID: fmt.Sprintf("!r%d", k), JoinRule: "public"}
	}
	for _, tc := range []struct {
		name   string
		answer []byte
	}{
		{"not JSON", []byte("\x00\xffgarbage")},
		{"JSON of another shape", []byte(`{"rooms":"all of them"}`)},
		{"unknown fields", []byte(`{"rooms":[],"extra":1}`)},
		{"a list", []byte(`[1,2,3]`)},
		{"more rooms than the bound", answerOf(t, many...)},
	} {
		t.Run(tc.name+" is refused whole", func(t *testing.T) {
			if got, err := parseDirectoryAnswer(tc.answer); err == nil {
				t.Fatalf("answer taken: %+v", got)
			}
		})
	}
	bad := []PublicRoom{
		{RoomID: "no-bang", JoinRule: "public"},
		{RoomID: "!", JoinRule: "public"},
		{RoomID: "!has space", JoinRule: "public"},
		{RoomID: "!" + strings.Repeat("x", MaxRoomIDLength), JoinRule: "public"},
		{RoomID: "!invite", JoinRule: "invite"},
		{RoomID: "!norule"},
		{RoomID: "!longname", JoinRule: "public", Name: strings.Repeat("n", MaxDirectoryField+1)},
		{RoomID: "!longtopic", JoinRule: "public", Topic: strings.Repeat("t", MaxDirectoryTopic+1)},
		{RoomID: "!badalias", JoinRule: "public", CanonicalAlias: "lobby"},
		{RoomID: "!badavatar", JoinRule: "public", AvatarURL: "https://example.org/a.png"},
		{RoomID: "!negative", JoinRule: "public", JoinedMembers: -1},
		{RoomID: "!huge", JoinRule: "public", JoinedMembers: MaxDirectoryMembers + 1},
	}
	got, err := parseDirectoryAnswer(answerOf(t, append(append(bad, good), good)...))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != good {
		t.Fatalf("kept %+v; want only the good entry, once", got)
	}
}

// TestAnAliasAnswerIsChecked: a room ID that is not one, or too many
// servers, is refused; servers that are not parley's are left out, and
// the answering server comes first.
func TestAnAliasAnswerIsChecked(t *testing.T) {
	const server = "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c"
	other := strings.Repeat("ab", 32)
	if _, err := parseAliasAnswer([]byte(`{"room_id":"nope","servers":[]}`), server); err == nil {
		t.Error("a bad room ID was taken")
	}
	if _, err := parseAliasAnswer([]byte(`garbage`), server); err == nil {
		t.Error("garbage was taken")
	}
	many, _ := json.Marshal(ResolveAliasResp{RoomID: "!r", Servers: make([]string, maxAliasServers+1)})
	if _, err := parseAliasAnswer(many, server); err == nil {
		t.Error("too many servers were taken")
	}
	raw, _ := json.Marshal(ResolveAliasResp{RoomID: "!r", Servers: []string{"example.org", other, server}})
	resp, err := parseAliasAnswer(raw, server)
	if err != nil {
		t.Fatal(err)
	}
	if resp.RoomID != "!r" || len(resp.Servers) != 2 || resp.Servers[0] != server || resp.Servers[1] != other {
		t.Fatalf("answer %+v; want !r on [%s %s]", resp, server, other)
	}
}
