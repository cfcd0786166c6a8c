package client

// markKnock closes a pending knock record once the user joined, was
// invited, left or was refused.
func (api *API) markKnock(user, roomID string) {}
