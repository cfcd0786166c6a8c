package peers

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/rooms"
)

// strippedEntry is one stripped state event as an inviter sends it.
type strippedEntry struct {
	Type     string          `json:"type"`
	StateKey *string         `json:"state_key"`
	Sender   string          `json:"sender"`
	Content  json.RawMessage `json:"content"`
}

// keepInviteState picks what to keep of an invite's stripped state: the
// listed types with an empty state key and the inviter's member event, one
// of each, most useful first, within MaxInviteStateBytes. Entries that do
// not fit are dropped, not refused: the invite stays usable.
func keepInviteState(raw []json.RawMessage, inviter string) ([]json.RawMessage, error) {
	byType := map[string]json.RawMessage{}
	for _, s := range raw {
		var st strippedEntry
		if json.Unmarshal(s, &st) != nil || st.Type == "" || st.StateKey == nil || len(st.Content) == 0 {
			return nil, remoteErr("M_BAD_JSON", "malformed invite_room_state entry")
		}
		if !slices.Contains(StrippedStateTypes, st.Type) {
			continue
		}
		switch {
		case st.Type == "m.room.member":
			if *st.StateKey != inviter {
				continue
			}
		case *st.StateKey != "":
			continue
		}
		if _, dup := byType[st.Type]; !dup {
			byType[st.Type] = s
		}
	}
	var out []json.RawMessage
	budget := MaxInviteStateBytes
	for _, typ := range StrippedStateTypes {
		s, ok := byType[typ]
		if !ok || len(s) > budget || len(out) == MaxInviteStateEvents {
			continue
		}
		out = append(out, s)
		budget -= len(s)
	}
	return out, nil
}

// admitInvite checks, inside the write that stores it, that the user has a
// slot for an invite from server to room.
func admitInvite(t *store.Txn, user, server, roomID string) error {
	invs, err := t.Invites(user)
	if err != nil {
		return err
	}
	pending, fromServer := 0, 0
	for _, inv := range invs {
		if inv.Left || inv.RoomID == roomID {
			continue
		}
		pending++
		if inv.Via == server {
			fromServer++
		}
	}
	if pending >= MaxPendingInvites {
		return remoteErr("M_LIMIT_EXCEEDED", "%s has %d unanswered invites, the most this node keeps", user, pending)
	}
	if fromServer >= MaxInvitesPerServer {
		return remoteErr("M_LIMIT_EXCEEDED", "%s has %d unanswered invites from your server, the most this node keeps", user, fromServer)
	}
	return nil
}

// serverBlocked reports whether the owner blocked the server.
func (ps *Peers) serverBlocked(server string) bool {
	blocked := false
	err := ps.store.View(func(t *store.Txn) error {
		var err error
		blocked, err = t.ServerBlocked(server)
		return err
	})
	if err != nil {
		ps.log.Warn("read blocked servers", "err", err)
	}
	return blocked
}

// TakeInvite admits into a followed room's timeline an invite that
// reached this node through the invite protocol, before the room's own
// copy of it came by gossip, fetching what it builds on from the room's
// members: a join sent at once then finds its invite. An invite already
// held, or of another user, changes nothing.
func (ps *Peers) TakeInvite(ctx context.Context, r *Room, user string, pdu json.RawMessage) error {
	ev, err := ps.parseOne(r, pdu)
	if err != nil {
		return err
	}
	if ev.Type() != "m.room.member" || ev.StateKey() == nil || *ev.StateKey() != user || ev.Membership() != "invite" {
		return fmt.Errorf("invite record of %s in %s holds no invite of theirs", user, r.ID)
	}
	if ps.dag.Known(ev.ID()) {
		return nil
	}
	server, err := rooms.ServerOf(ev.Sender())
	if err != nil {
		return err
	}
	from, err := peerOf(server)
	if err != nil {
		return err
	}
	out, err := ps.ingestRemote(ctx, r, ev, from, false)
	if err != nil {
		return err
	}
	if out.Rejected != nil {
		return fmt.Errorf("invite %s rejected: %v", ev.ID(), out.Rejected)
	}
	return <-out.Committed
}
