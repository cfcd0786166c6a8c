package webui

import (
	"context"
	"fmt"
)

// The fakes' parts for forgetting rooms and /context.

func (f fakeMembership) Forget(_ context.Context, _ *Session, roomID string) error {
	f.changed("Forget", "Forget %s", roomID)
	return nil
}

// Context answers with the event asked for, and names the request in
// the event's content, for the test to read back.
func (f *fakeRooms) Context(_ context.Context, _ *Session, req ContextRequest) (*ContextResponse, error) {
	f.call("Context")
	if err := knownRoom(req.RoomID); err != nil {
		return nil, err
	}
	content := fmt.Sprintf(`{"limit":%d,"filtered":%t}`, req.Limit, req.Filter != nil)
	return &ContextResponse{Event: &ClientEvent{EventID: req.EventID, Content: []byte(content)}}, nil
}
