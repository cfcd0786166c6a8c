package node

import (
	"context"
	"encoding/json"
	"github.com/parley-p2p/parley/errs"
	"slices"

	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/p2p"
	"github.com/parley-p2p/parley/webui"
)

// Invites from other servers come from anyone on the network, unverified
// but for the invite event's own signature: what a node keeps of them is
// bounded.
const (
	// maxPendingInvites bounds a user's unanswered invites. Server names
	// cost nothing to make, so this is the bound that holds; the owner
	// frees slots by declining or blocking a server.
	maxPendingInvites = 50
	// maxInvitesPerServer bounds the unanswered invites one server may
	// hold for one user: a real contact rarely has more than a few
	// pending, and one server cannot take all of the user's slots.
	maxInvitesPerServer = 5
	// maxInviteEventBytes bounds the invite event itself (a member event:
	// membership, display name, avatar, reason).
	maxInviteEventBytes = 16 << 10
	// maxInviteStateEvents and maxInviteStateBytes bound the stripped state
	// kept with an invite: enough for a room's name, topic and avatar.
	maxInviteStateEvents = 10
	maxInviteStateBytes  = 8 << 10
)

// strippedStateTypes are the state types kept from an invite's stripped
// state, most useful first: the spec's list, with m.room.member standing
// for the inviter's own member event only.
var strippedStateTypes = []string{
	"m.room.create", "m.room.member", "m.room.join_rules", "m.room.name",
	"m.room.encryption", "m.room.avatar", "m.room.canonical_alias", "m.room.topic",
}

// strippedEntry is one stripped state event as an inviter sends it.
type strippedEntry struct {
	Type     string          `json:"type"`
	StateKey *string         `json:"state_key"`
	Sender   string          `json:"sender"`
	Content  json.RawMessage `json:"content"`
}

// keepInviteState picks what to keep of an invite's stripped state: the
// listed types with an empty state key and the inviter's member event, one
// of each, most useful first, within maxInviteStateBytes. Entries that do
// not fit are dropped, not refused: the invite stays usable.
func keepInviteState(raw []json.RawMessage, inviter string) ([]json.RawMessage, error) {
	byType := map[string]json.RawMessage{}
	for _, s := range raw {
		var st strippedEntry
		if json.Unmarshal(s, &st) != nil || st.Type == "" || st.StateKey == nil || len(st.Content) == 0 {
			return nil, remoteErr("M_BAD_JSON", "malformed invite_room_state entry")
		}
		if !slices.Contains(strippedStateTypes, st.Type) {
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
	budget := maxInviteStateBytes
	for _, typ := range strippedStateTypes {
		s, ok := byType[typ]
		if !ok || len(s) > budget || len(out) == maxInviteStateEvents {
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
	if pending >= maxPendingInvites {
		return remoteErr("M_LIMIT_EXCEEDED", "%s has %d unanswered invites, the most this node keeps", user, pending)
	}
	if fromServer >= maxInvitesPerServer {
		return remoteErr("M_LIMIT_EXCEEDED", "%s has %d unanswered invites from your server, the most this node keeps", user, fromServer)
	}
	return nil
}

// serverBlocked reports whether the owner blocked the server.
func (n *Node) serverBlocked(server string) bool {
	blocked := false
	err := n.store.View(func(t *store.Txn) error {
		var err error
		blocked, err = t.ServerBlocked(server)
		return err
	})
	if err != nil {
		n.log.Warn("read blocked servers", "err", err)
	}
	return blocked
}

// requireOwner refuses anyone but the node's owner.
func (n *Node) requireOwner(s *webui.Session) error {
	owner, err := n.owner()
	if err != nil {
		return err
	}
	if owner == "" || n.userID(owner) != s.UserID {
		return errs.Forbiddenf("only the node's owner may do this")
	}
	return nil
}

// BlockedServers implements webui.Backend.
func (n *Node) BlockedServers(s *webui.Session) ([]string, error) {
	if err := n.requireOwner(s); err != nil {
		return nil, err
	}
	var out []string
	err := n.store.View(func(t *store.Txn) error {
		var err error
		out, err = t.BlockedServers()
		return err
	})
	return out, err
}

// BlockServer implements webui.Backend: the server's invites are refused
// from now on, and those pending are dropped (clients see them as left).
func (n *Node) BlockServer(ctx context.Context, s *webui.Session, server string) error {
	if err := n.requireOwner(s); err != nil {
		return err
	}
	if _, err := p2p.PeerIDFromServerName(server); err != nil {
		return errs.Invalidf("%q is not a server name", server)
	}
	if server == n.serverName {
		return errs.Invalidf("this node cannot block itself")
	}
	return n.store.Update(func(t *store.Txn) error {
		if err := t.BlockServer(server); err != nil {
			return err
		}
		type userInvite struct {
			user string
			inv  *store.Invite
		}
		var drop []userInvite
		err := t.AllInvites(func(user string, inv *store.Invite) error {
			if !inv.Left && inv.Via == server {
				drop = append(drop, userInvite{user, inv})
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, d := range drop {
			closeInvite(t, d.inv)
			if err := t.PutInvite(d.user, d.inv); err != nil {
				return err
			}
		}
		if len(drop) > 0 {
			n.log.Info("blocked server's pending invites dropped", "server", server[:8], "invites", len(drop))
		}
		return nil
	})
}

// UnblockServer implements webui.Backend.
func (n *Node) UnblockServer(ctx context.Context, s *webui.Session, server string) error {
	if err := n.requireOwner(s); err != nil {
		return err
	}
	return n.store.Update(func(t *store.Txn) error { return t.UnblockServer(server) })
}

// closeInvite marks an invite answered and drops what the inviter sent
// with it; the record stays so /sync can tell clients it is gone.
func closeInvite(t *store.Txn, inv *store.Invite) {
	inv.Left = true
	inv.Event, inv.State = nil, nil
	inv.Pos = t.NextPos()
}
