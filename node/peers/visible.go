package peers

// Visible reports whether a server joined now may read an event of a
// room (its history visibility, as requests are served): the e2ee keeper
// hands a joiner the keys of exactly these events.
func (ps *Peers) Visible(roomID, eventID, server string) bool {
	i, err := ps.dag.Event(eventID)
	if err != nil || i.Event.RoomID() != roomID {
		return false
	}
	return ps.visibleTo(i, server, true)
}
