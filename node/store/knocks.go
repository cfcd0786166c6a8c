package store

import "encoding/json"

// Knocks are kept per user, as invites are (knockRecords, userrooms.go):
// a record for each room a local user knocked on that this node does not
// follow. Only the user's own request makes a record, so their number is
// bounded by what the client API allows (peers.MaxPendingKnocks).

// Knock is a local user's knock on a room this node does not follow.
type Knock struct {
	RoomID  string `json:"room"`
	Version string `json:"v"`
	Pos     uint64 `json:"pos"`
	// Event is the knock event; once Left, the event that ended it (a
	// member's kick or ban, or the user's own leave).
	Event json.RawMessage `json:"event,omitempty"`
	// State is the stripped state the resident answered with (client
	// format).
	State []json.RawMessage `json:"state,omitempty"`
	// Via is the server the knock went through.
	Via string `json:"via"`
	// Left is set once the knock was withdrawn or refused: the state is
	// then dropped, and the record stays for sync's leave section.
	Left bool `json:"left,omitempty"`
}

func (k *Knock) room() string { return k.RoomID }
func (k *Knock) pos() uint64  { return k.Pos }

// PutKnock stores a knock (a new one, or an update with a new Pos).
func (t *Txn) PutKnock(user string, k *Knock) error {
	return putUserRoom(t, knockRecords, user, k)
}

// DeleteKnock forgets a user's knock on a room entirely (they joined or
// were invited: the room shows under join or invite instead).
func (t *Txn) DeleteKnock(user, room string) error {
	return deleteUserRoom[Knock](t, knockRecords, user, room)
}

// Knock loads a user's knock on a room.
func (t *Txn) Knock(user, room string) (*Knock, error) {
	return getUserRoom[Knock](t, knockRecords, user, room)
}

// Knocks lists a user's knocks, pending and closed.
func (t *Txn) Knocks(user string) ([]*Knock, error) {
	return userRoomsOf[Knock](t, knockRecords, user)
}

// KnocksSince lists a user's knocks stored or changed after stream
// position since, reading only those.
func (t *Txn) KnocksSince(user string, since uint64) ([]*Knock, error) {
	return userRoomsSince[Knock](t, knockRecords, user, since)
}
