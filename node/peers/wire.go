package peers

import "encoding/json"

// The node-to-node protocol: the methods a node asks another over p2p's
// request streams, what each carries, and the limits a node enforces on
// what it is asked and sent. Room events themselves travel over GossipSub
// (ingest.go); these requests fill what gossip missed.

// Request methods of the node-to-node protocol (p2p's request streams).
const (
	MethodInvite        = "invite"
	MethodMakeJoin      = "make_join"
	MethodSendJoin      = "send_join"
	MethodGetEvent      = "get_event"
	MethodAuthChain     = "get_auth_chain"
	MethodMissingEvents = "get_missing_events"
	MethodStateAfter    = "state_after"
	MethodExtremities   = "extremities"
)

// roomRequest is a request about one room: it goes sealed under the
// room's secret (envelope.go).
type roomRequest interface{ room() string }

func (r MakeJoinReq) room() string   { return r.RoomID }
func (r SendJoinReq) room() string   { return r.RoomID }
func (r IDsReq) room() string        { return r.RoomID }
func (r MissingReq) room() string    { return r.RoomID }
func (r BackfillReq) room() string   { return r.RoomID }
func (r LinkInviteReq) room() string { return r.RoomID }

// Limits on what a peer may ask for in one request.
const (
	MaxMissingLimit = 1000
	MaxIDsPerReq    = 100
)

type InviteReq struct {
	RoomVersion string            `json:"room_version"`
	Event       json.RawMessage   `json:"event"`
	InviteState []json.RawMessage `json:"invite_room_state"`
}

type EventResp struct {
	RoomVersion string          `json:"room_version,omitempty"`
	Event       json.RawMessage `json:"event"`
}

type MakeJoinReq struct {
	RoomID string `json:"room_id"`
	UserID string `json:"user_id"`
}

type ProtoJSON struct {
	RoomID     string          `json:"room_id"`
	Sender     string          `json:"sender"`
	Type       string          `json:"type"`
	StateKey   *string         `json:"state_key"`
	Content    json.RawMessage `json:"content"`
	PrevEvents []string        `json:"prev_events"`
	AuthEvents []string        `json:"auth_events"`
	Depth      int64           `json:"depth"`
}

type MakeJoinResp struct {
	RoomVersion string    `json:"room_version"`
	Event       ProtoJSON `json:"event"`
}

type SendJoinReq struct {
	RoomID string          `json:"room_id"`
	Event  json.RawMessage `json:"event"`
}

// StateResp carries the state at a point of the DAG: the state events,
// their auth chains, and the event(s) the state is after.
type StateResp struct {
	State     []json.RawMessage `json:"state"`
	AuthChain []json.RawMessage `json:"auth_chain"`
	Events    []json.RawMessage `json:"events,omitempty"`
}

type IDsReq struct {
	RoomID   string   `json:"room_id"`
	EventIDs []string `json:"event_ids"`
}

type MissingReq struct {
	RoomID   string   `json:"room_id"`
	Earliest []string `json:"earliest_events"`
	Latest   []string `json:"latest_events"`
	Limit    int      `json:"limit"`
}

type PDUsResp struct {
	PDUs []json.RawMessage `json:"pdus"`
}

type BackfillReq struct {
	RoomID   string   `json:"room_id"`
	EventIDs []string `json:"event_ids"`
	Limit    int      `json:"limit"`
}

// MethodKeys asks a node for its KEM key (room-less): the answer is a
// KeysResp, signed with the node's server key.
const MethodKeys = "keys"

type KeysResp struct {
	KEM json.RawMessage `json:"kem"` // an e2ee.KEMDoc
	Sig string          `json:"sig"` // base64url ed25519 signature of keysSigned(KEM)
}

// The body of MethodInvite is an InvitePayload (an InviteReq with the
// room's secret), sealed to the invitee node's KEM key with
// e2ee.Info("parley/invite/v1", inviter server, invitee server): the HPKE
// seal's bytes as they are, with no JSON around them.

// InvitePayload is what an invite request holds, sealed.
type InvitePayload struct {
	InviteReq
	Secret sharedSecret `json:"secret"`
}

// JoinedResp is send_join's answer: the state, plus the room's secret
// sealed to the joiner's KEM key (from its join event) with
// e2ee.Info("parley/join/v1", room ID, join event ID).
type JoinedResp struct {
	StateResp
	Secret []byte `json:"secret,omitempty"`
}

// MethodRoomSecret (sealed) offers a joined member's node a newer room
// secret (Offer, after a rotation), and asks for the responder's newer
// than Have: the answer carries it sealed to the requester's KEM key when
// the requester has a user joined. Seals use
// e2ee.Info("parley/secret/v1", room ID, epoch, recipient server).
const MethodRoomSecret = "room_secret"

type SecretReq struct {
	RoomID string       `json:"room_id"`
	Have   uint32       `json:"have"`
	Offer  *SecretOffer `json:"offer,omitempty"`
}

type SecretOffer struct {
	Epoch  uint32 `json:"epoch"`
	Sealed []byte `json:"sealed"`
}

type SecretResp struct {
	Epoch  uint32 `json:"epoch,omitempty"`
	Sealed []byte `json:"sealed,omitempty"`
}

func (r SecretReq) room() string { return r.RoomID }

// ExtremitiesResp answers MethodExtremities: the events, and the epoch of
// the room secret the responder holds (so a member that missed a rotation
// knows to ask for it).
type ExtremitiesResp struct {
	IDsReq
	Epoch uint32 `json:"epoch,omitempty"`
}

// MethodLinkInvite asks a member to honour a link.
const MethodLinkInvite = "link_invite"

type LinkInviteReq struct {
	RoomID string `json:"room_id"`
	LinkID string `json:"link_id"`
	Secret string `json:"secret"`
	UserID string `json:"user_id"`
}

type LinkInviteResp struct {
	RoomID string `json:"room_id"`
	Via    string `json:"via"`
}

// Invites from other servers come from anyone on the network, unverified
// but for the invite event's own signature: what a node keeps of them is
// bounded.
const (
	// MaxPendingInvites bounds a user's unanswered invites. Server names
	// cost nothing to make, so this is the bound that holds; the owner
	// frees slots by declining or blocking a server.
	MaxPendingInvites = 50
	// MaxInvitesPerServer bounds the unanswered invites one server may
	// hold for one user: a real contact rarely has more than a few
	// pending, and one server cannot take all of the user's slots.
	MaxInvitesPerServer = 5
	// MaxInviteEventBytes bounds the invite event itself (a member event:
	// membership, display name, avatar, reason).
	MaxInviteEventBytes = 16 << 10
	// MaxInviteStateEvents and MaxInviteStateBytes bound the stripped state
	// kept with an invite: enough for a room's name, topic and avatar.
	MaxInviteStateEvents = 10
	MaxInviteStateBytes  = 8 << 10
)

// StrippedStateTypes are the state types kept from an invite's stripped
// state, most useful first: the spec's list, with m.room.member standing
// for the inviter's own member event only.
var StrippedStateTypes = []string{
	"m.room.create", "m.room.member", "m.room.join_rules", "m.room.name",
	"m.room.encryption", "m.room.avatar", "m.room.canonical_alias", "m.room.topic",
}

// Backfill: history before given events.
const (
	MethodBackfill = "backfill"
	MaxBackfill    = 500
)

// Clients' own end-to-end encryption between nodes (devicekeys.go):
// room-less requests, answered only about users who share a joined room
// with a user of the asking server. Keys are asked for when a client
// asks; to-device messages and device list changes wait in the sender's
// outbox until the receiver acknowledges them, and a to-device message
// carries an ID so that one sent again after a lost answer is taken once.
const (
	MethodUserKeys   = "user_keys"
	MethodClaimKeys  = "claim_keys"
	MethodToDevice   = "to_device"
	MethodDeviceList = "device_list"
)

// Limits on key requests.
const (
	MaxKeyUsers     = 1000  // users in one keys query or claim
	MaxKeyDevices   = 10000 // devices in one keys query or claim
	MaxToDeviceBody = 64 << 10
	// MaxOutbox bounds the requests a node keeps for one server that
	// does not answer; beyond it new ones are dropped (and logged).
	MaxOutbox = 10000
)

type UserKeysReq struct {
	Users map[string][]string `json:"users"`
}

type UserKeysResp struct {
	DeviceKeys      map[string]map[string]json.RawMessage `json:"device_keys"`
	MasterKeys      map[string]json.RawMessage            `json:"master_keys"`
	SelfSigningKeys map[string]json.RawMessage            `json:"self_signing_keys"`
}

type ClaimKeysReq struct {
	OneTimeKeys map[string]map[string]string `json:"one_time_keys"`
}

type ClaimKeysResp struct {
	OneTimeKeys map[string]map[string]map[string]json.RawMessage `json:"one_time_keys"`
}

// ToDeviceReq is one to-device message for one device ("*": every
// device of the user).
type ToDeviceReq struct {
	ID       string          `json:"id"`
	Sender   string          `json:"sender"`
	Type     string          `json:"type"`
	UserID   string          `json:"user_id"`
	DeviceID string          `json:"device_id"`
	Content  json.RawMessage `json:"content"`
}

// DeviceListReq says a user's published keys changed.
type DeviceListReq struct {
	UserID string `json:"user_id"`
}

// AckResp acknowledges a request that was kept.
type AckResp struct{}

// MethodEphemeral (sealed) carries data that is not in the room's DAG to
// a member node (ephemeral.go): typing, presence, read receipts. The
// answer is {}.
const MethodEphemeral = "ephemeral"

// MaxEphemeralBytes bounds an ephemeral request's content.
const MaxEphemeralBytes = 16 << 10

// EphemeralReq is one piece of ephemeral data about a room. Type names
// the kind ("m.typing", "m.presence", "m.receipt"); Content is the kind's
// own (see node/client's typing.go, presence.go and receiptwire.go).
type EphemeralReq struct {
	RoomID  string          `json:"room_id"`
	Type    string          `json:"type"`
	Content json.RawMessage `json:"content"`
}

func (r EphemeralReq) room() string { return r.RoomID }

// The public room directory across nodes (directory.go): room-less
// requests. MethodPublicRooms asks a node for the rooms it lists (the
// body is {}); MethodResolveAlias asks a node where one of its aliases
// points, answered only for a room that is listed or public, or that the
// asking server is in.
const (
	MethodPublicRooms  = "public_rooms"
	MethodResolveAlias = "resolve_alias"
)

// Limits on a directory answer.
const (
	MaxDirectoryEntries = 100     // rooms in one answer
	MaxDirectoryField   = 255     // bytes of a name, alias, avatar URL or room type
	MaxDirectoryTopic   = 1024    // bytes of a topic
	MaxDirectoryMembers = 1 << 20 // a joined member count
	MaxRoomIDLength     = 255
)

type PublicRoomsReq struct{}

type PublicRoomsResp struct {
	Rooms []PublicRoom `json:"rooms"`
}

// PublicRoom is one room's directory entry, as the client-server API's
// publicRooms chunk has it.
type PublicRoom struct {
	RoomID         string `json:"room_id"`
	Name           string `json:"name,omitempty"`
	Topic          string `json:"topic,omitempty"`
	CanonicalAlias string `json:"canonical_alias,omitempty"`
	AvatarURL      string `json:"avatar_url,omitempty"`
	JoinedMembers  int    `json:"num_joined_members"`
	WorldReadable  bool   `json:"world_readable"`
	GuestCanJoin   bool   `json:"guest_can_join"`
	JoinRule       string `json:"join_rule"`
	RoomType       string `json:"room_type,omitempty"`
}

type ResolveAliasReq struct {
	Alias string `json:"alias"`
}

type ResolveAliasResp struct {
	RoomID  string   `json:"room_id"`
	Servers []string `json:"servers"`
}

// Knocking (knock.go): room-less methods that travel plain, as make_join
// and send_join may, since the knocker's node holds no secret of the
// room. make_knock and make_leave take a MakeJoinReq and answer a
// MakeJoinResp; send_knock and send_leave take a SendJoinReq, and answer
// a KnockResp and an AckResp. make_leave and send_leave serve only a
// knocking user (withdrawing). knock_denied takes a KnockDeniedReq to the
// knocker's node and answers an AckResp.
const (
	MethodMakeKnock   = "make_knock"
	MethodSendKnock   = "send_knock"
	MethodMakeLeave   = "make_leave"
	MethodSendLeave   = "send_leave"
	MethodKnockDenied = "knock_denied"
)

// MaxPendingKnocks bounds a user's pending knocks (the client API refuses
// more); the stripped state kept with each is bounded as an invite's
// (MaxInviteStateEvents, MaxInviteStateBytes).
const MaxPendingKnocks = 50

// KnockResp is send_knock's answer: the room's stripped state.
type KnockResp struct {
	KnockRoomState []json.RawMessage `json:"knock_room_state"`
}

// KnockDeniedReq carries a member's kick or ban of a knocking user.
type KnockDeniedReq struct {
	RoomVersion string          `json:"room_version"`
	Event       json.RawMessage `json:"event"`
}

// MethodMediaMeta and MethodMediaChunk (sealed) fetch media from a member
// of a room that references it (media.go): the signed metadata of an mxc,
// then its chunks one request each. The answer to MethodMediaChunk is the
// chunk's bytes as they are, with no JSON around them.
const (
	MethodMediaMeta  = "media_meta"
	MethodMediaChunk = "media_chunk"
)

// MediaReq names an mxc (mxc://Server/MediaID) referenced in a room;
// Index is the chunk asked for (MethodMediaChunk only).
type MediaReq struct {
	RoomID  string `json:"room_id"`
	Server  string `json:"server"`
	MediaID string `json:"media_id"`
	Index   int    `json:"index,omitempty"`
}

func (r MediaReq) room() string { return r.RoomID }

// MediaMetaResp carries the uploader's signed metadata, and which chunks
// the responder holds: "all", or for a download under way there a bitmap
// (chunk i is bit i%8 of byte i/8), unpadded standard base64.
type MediaMetaResp struct {
	Meta json.RawMessage `json:"meta"`
	Have string          `json:"have"`
}
