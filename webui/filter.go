package webui

import (
	"encoding/json"
	"fmt"
)

// filterSchema is every field of the spec's Filter with its type, so that
// a filter with a field of the wrong type (a limit of "x", a types list
// that is a string) is refused rather than half read: parley honours
// only part of a filter (Filter), but checks all of it.
type filterSchema struct {
	EventFields []string           `json:"event_fields"`
	EventFormat *string            `json:"event_format"`
	Presence    *eventFilterSchema `json:"presence"`
	AccountData *eventFilterSchema `json:"account_data"`
	Room        *struct {
		AccountData  *roomEventFilterSchema `json:"account_data"`
		Ephemeral    *roomEventFilterSchema `json:"ephemeral"`
		State        *roomEventFilterSchema `json:"state"`
		Timeline     *roomEventFilterSchema `json:"timeline"`
		IncludeLeave *bool                  `json:"include_leave"`
		Rooms        []string               `json:"rooms"`
		NotRooms     []string               `json:"not_rooms"`
	} `json:"room"`
}

type eventFilterSchema struct {
	Limit      *int     `json:"limit"`
	Types      []string `json:"types"`
	NotTypes   []string `json:"not_types"`
	Senders    []string `json:"senders"`
	NotSenders []string `json:"not_senders"`
}

type roomEventFilterSchema struct {
	eventFilterSchema
	Rooms                     []string `json:"rooms"`
	NotRooms                  []string `json:"not_rooms"`
	ContainsURL               *bool    `json:"contains_url"`
	LazyLoadMembers           *bool    `json:"lazy_load_members"`
	IncludeRedundantMembers   *bool    `json:"include_redundant_members"`
	UnreadThreadNotifications *bool    `json:"unread_thread_notifications"`
}

func (f *eventFilterSchema) check() error {
	if f != nil && f.Limit != nil && *f.Limit < 0 {
		return fmt.Errorf("limit must not be negative")
	}
	return nil
}

// UnmarshalJSON reads a filter, refusing one whose fields, including
// those parley does not honour, have the wrong type.
func (f *Filter) UnmarshalJSON(b []byte) error {
	var s filterSchema
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	if s.EventFormat != nil && *s.EventFormat != "client" && *s.EventFormat != "federation" {
		return fmt.Errorf("event_format must be client or federation")
	}
	checks := []error{s.Presence.check(), s.AccountData.check()}
	if r := s.Room; r != nil {
		for _, p := range []*roomEventFilterSchema{r.AccountData, r.Ephemeral, r.State, r.Timeline} {
			if p != nil {
				checks = append(checks, p.check())
			}
		}
	}
	for _, err := range checks {
		if err != nil {
			return err
		}
	}
	type plain Filter
	return json.Unmarshal(b, (*plain)(f))
}

// UnmarshalJSON reads a room event filter (as /messages takes it),
// refusing fields of the wrong type, and notes whether it sets a limit:
// a limit of 0 is honoured, an absent one is the default.
func (f *RoomEventFilter) UnmarshalJSON(b []byte) error {
	var s roomEventFilterSchema
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	if err := s.check(); err != nil {
		return err
	}
	type plain RoomEventFilter
	if err := json.Unmarshal(b, (*plain)(f)); err != nil {
		return err
	}
	f.HasLimit = s.Limit != nil
	return nil
}
