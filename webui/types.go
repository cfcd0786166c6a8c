package webui

import "encoding/json"

// Session is the identity behind an access token.
type Session struct {
	UserID   string
	DeviceID string
}

// LoginResult is what register and login return.
type LoginResult struct {
	UserID      string `json:"user_id"`
	AccessToken string `json:"access_token"`
	DeviceID    string `json:"device_id"`
	// RefreshToken and ExpiresInMS are set when the client asked for a
	// refresh token (devices.go); without one the access token never
	// expires.
	RefreshToken string `json:"refresh_token,omitempty"`
	ExpiresInMS  int64  `json:"expires_in_ms,omitempty"`
}

// AccountRequest creates a local account.
type AccountRequest struct {
	Localpart  string
	Password   string
	DeviceID   string
	DeviceName string
	// First asks for the node's first account: it fails if one exists.
	First bool
	// InhibitLogin creates the account without a device or token.
	InhibitLogin bool
}

// ClientEvent is an event in the client-server API's format.
type ClientEvent struct {
	Content        json.RawMessage `json:"content"`
	EventID        string          `json:"event_id"`
	OriginServerTS int64           `json:"origin_server_ts"`
	RoomID         string          `json:"room_id,omitempty"`
	Sender         string          `json:"sender"`
	StateKey       *string         `json:"state_key,omitempty"`
	Type           string          `json:"type"`
	Redacts        string          `json:"redacts,omitempty"`
	Unsigned       map[string]any  `json:"unsigned,omitempty"`
}

// StrippedEvent is a state event as shown in invite_state.
type StrippedEvent struct {
	Content  json.RawMessage `json:"content"`
	Sender   string          `json:"sender"`
	StateKey string          `json:"state_key"`
	Type     string          `json:"type"`
}

// CreateRoomRequest is the body of POST /createRoom.
type CreateRoomRequest struct {
	Visibility                string            `json:"visibility,omitempty"`
	RoomAliasName             string            `json:"room_alias_name,omitempty"`
	Name                      string            `json:"name,omitempty"`
	Topic                     string            `json:"topic,omitempty"`
	Invite                    []string          `json:"invite,omitempty"`
	RoomVersion               string            `json:"room_version,omitempty"`
	CreationContent           json.RawMessage   `json:"creation_content,omitempty"`
	InitialState              []InitialState    `json:"initial_state,omitempty"`
	Preset                    string            `json:"preset,omitempty"`
	IsDirect                  bool              `json:"is_direct,omitempty"`
	PowerLevelContentOverride json.RawMessage   `json:"power_level_content_override,omitempty"`
	Extra                     map[string]string `json:"-"`
}

// InitialState is one entry of createRoom's initial_state.
type InitialState struct {
	Type     string          `json:"type"`
	StateKey string          `json:"state_key"`
	Content  json.RawMessage `json:"content"`
}

// MessagesRequest is GET /rooms/{roomId}/messages.
type MessagesRequest struct {
	RoomID string
	From   string
	To     string
	Dir    string // "b" or "f"
	Limit  int
	Filter *RoomEventFilter
}

// MessagesResponse is the reply to /messages.
type MessagesResponse struct {
	Start string        `json:"start"`
	End   string        `json:"end,omitempty"`
	Chunk []ClientEvent `json:"chunk"`
	State []ClientEvent `json:"state,omitempty"`
}

// MembersQuery filters /members.
type MembersQuery struct {
	Membership    string
	NotMembership string
	// At is a /sync or /messages token: the members at that point.
	At string
}

// JoinedMember is a value of /joined_members.
type JoinedMember struct {
	DisplayName string `json:"display_name,omitempty"`
	AvatarURL   string `json:"avatar_url,omitempty"`
}

// SyncRequest is GET /sync.
type SyncRequest struct {
	Since     string
	Timeout   int64 // milliseconds
	FullState bool
	Filter    *Filter
	// SetPresence is set_presence: "online" (when empty), "unavailable"
	// or "offline".
	SetPresence string
}

// Filter is the part of a Matrix filter parley honours.
type Filter struct {
	Room        RoomFilter      `json:"room"`
	Presence    RoomEventFilter `json:"presence"`
	AccountData RoomEventFilter `json:"account_data"`
}

// RoomFilter is the room part of a filter.
type RoomFilter struct {
	Timeline     RoomEventFilter `json:"timeline"`
	State        RoomEventFilter `json:"state"`
	IncludeLeave bool            `json:"include_leave"`
	Ephemeral    RoomEventFilter `json:"ephemeral"`
	AccountData  RoomEventFilter `json:"account_data"`
	Rooms        []string        `json:"rooms,omitempty"`
}

// RoomEventFilter limits and selects events.
type RoomEventFilter struct {
	Limit    int      `json:"limit,omitempty"`
	Types    []string `json:"types,omitempty"`
	NotTypes []string `json:"not_types,omitempty"`
	Senders  []string `json:"senders,omitempty"`
	// LazyLoadMembers: /sync's state, /messages' and /context's carry
	// only the member events their events' senders need.
	LazyLoadMembers bool `json:"lazy_load_members,omitempty"`
	// IncludeRedundantMembers: with LazyLoadMembers, /sync sends member
	// events again that the device already holds.
	IncludeRedundantMembers bool `json:"include_redundant_members,omitempty"`
	// HasLimit says the filter sets Limit, which may then be 0.
	HasLimit bool `json:"-"`
	// UnreadThreadNotifications asks /sync for counts per thread.
	UnreadThreadNotifications bool `json:"unread_thread_notifications,omitempty"`
}

// Allows reports whether the filter lets an event of this type and sender through.
func (f *RoomEventFilter) Allows(evType, sender string) bool {
	if f == nil {
		return true
	}
	if f.Types != nil && !matchAny(f.Types, evType) {
		return false
	}
	if matchAny(f.NotTypes, evType) {
		return false
	}
	if f.Senders != nil && !matchAny(f.Senders, sender) {
		return false
	}
	return true
}

func matchAny(patterns []string, s string) bool {
	for _, p := range patterns {
		if p == s || (len(p) > 0 && p[len(p)-1] == '*' && len(s) >= len(p)-1 && s[:len(p)-1] == p[:len(p)-1]) {
			return true
		}
	}
	return false
}

// SyncResponse is the reply to /sync.
type SyncResponse struct {
	NextBatch   string         `json:"next_batch"`
	Rooms       SyncRooms      `json:"rooms"`
	AccountData EventList      `json:"account_data"`
	Presence    EventList      `json:"presence"`
	ToDevice    EventList      `json:"to_device"`
	DeviceLists map[string]any `json:"device_lists"`
	OTKCount    map[string]int `json:"device_one_time_keys_count"`
	// UnusedFallbackKeyTypes are the algorithms of the device's fallback
	// keys not given out yet.
	UnusedFallbackKeyTypes []string `json:"device_unused_fallback_key_types"`
}

// EventList is {"events": [...]}.
type EventList struct {
	Events []json.RawMessage `json:"events"`
}

// SyncRooms is the rooms section of /sync.
type SyncRooms struct {
	Join   map[string]*JoinedRoom  `json:"join"`
	Invite map[string]*InvitedRoom `json:"invite"`
	Leave  map[string]*LeftRoom    `json:"leave"`
	Knock  map[string]any          `json:"knock"`
}

// Timeline is a room's timeline in /sync.
type Timeline struct {
	Events    []ClientEvent `json:"events"`
	Limited   bool          `json:"limited"`
	PrevBatch string        `json:"prev_batch,omitempty"`
}

// StateList is {"events": [...]} of state events.
type StateList struct {
	Events []ClientEvent `json:"events"`
}

// JoinedRoom is a joined room in /sync.
type JoinedRoom struct {
	Timeline            Timeline       `json:"timeline"`
	State               StateList      `json:"state"`
	Ephemeral           EventList      `json:"ephemeral"`
	AccountData         EventList      `json:"account_data"`
	Summary             map[string]any `json:"summary"`
	UnreadNotifications map[string]int `json:"unread_notifications,omitempty"`
	// UnreadThreadNotifications are the counts per thread root, shown
	// when the filter asks for them (unread_thread_notifications).
	UnreadThreadNotifications map[string]map[string]int `json:"unread_thread_notifications,omitempty"`
}

// InvitedRoom is a room the user is invited to.
type InvitedRoom struct {
	InviteState struct {
		Events []StrippedEvent `json:"events"`
	} `json:"invite_state"`
}

// LeftRoom is a room the user left (or was removed from).
type LeftRoom struct {
	Timeline    Timeline  `json:"timeline"`
	State       StateList `json:"state"`
	AccountData EventList `json:"account_data"`
}

// LinkInfo describes an invite link to its room's members.
type LinkInfo struct {
	ID        string `json:"id"`
	Link      string `json:"link,omitempty"`
	WebLink   string `json:"web_link,omitempty"`
	ExpiresTS int64  `json:"expires_ts,omitempty"`
	MaxUses   int    `json:"max_uses,omitempty"`
	Uses      int    `json:"uses"`
	CreatedBy string `json:"created_by"`
	CreatedTS int64  `json:"created_ts"`
}
