package client

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/parley-p2p/parley/errs"

	"github.com/parley-p2p/parley/node/peers"
	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/rooms"
	"github.com/parley-p2p/parley/webui"
)

// Invite implements webui.Backend. A user on another node is invited
// through that node, which co-signs the invite before it enters the room.
func (api *API) Invite(ctx context.Context, s *webui.Session, roomID, target, reason string) error {
	return api.peers.Invite(ctx, s.UserID, roomID, target, reason)
}

func stripped(ev *rooms.Event) webui.StrippedEvent {
	sk := ""
	if ev.StateKey() != nil {
		sk = *ev.StateKey()
	}
	return webui.StrippedEvent{Content: ev.Content(), Sender: ev.Sender(), StateKey: sk, Type: ev.Type()}
}

// Join implements webui.Backend. A room already on this node is joined
// locally; otherwise the join goes through the node that invited the user
// (make_join, then send_join), and returns once the room's state is here.
func (api *API) Join(ctx context.Context, s *webui.Session, target string, given []string) (string, error) {
	if strings.HasPrefix(target, "#") {
		roomID, servers, err := api.ResolveAlias(ctx, target)
		if err != nil {
			return "", err
		}
		target, given = roomID, append(given, servers...)
	}
	if !strings.HasPrefix(target, "!") {
		return "", errs.NotFoundf("%q is neither a room ID nor a room alias; join by room ID, alias or invite link", target)
	}
	if r := api.peers.Room(target); r != nil && r.Followed() {
		switch api.peers.Membership(r, s.UserID) {
		case "join":
			return r.ID, nil
		case "invite":
		default:
			// An invite to a room this node follows for another of its
			// users comes straight to the user, and may be ahead of the
			// room's copy of it.
			if inv := api.invite(s.UserID, r.ID); inv != nil && len(inv.Event) > 0 {
				if err := api.peers.TakeInvite(ctx, r, s.UserID, inv.Event); err != nil {
					api.log.Info("invite not taken into the room before joining", "room", r.ID, "user", s.UserID, "err", err)
				}
			}
		}
		c, _ := rooms.MarshalCanonical(api.memberContent(s.UserID, "join"))
		user := s.UserID
		if _, err := api.dag.Send(ctx, r.Room, s.UserID, "m.room.member", &user, c, "", ""); err != nil {
			return "", err
		}
		api.markInvite(s.UserID, r.ID)
		api.peers.ConnectSoon(r)
		return r.ID, nil
	}
	var via []string
	if inv := api.invite(s.UserID, target); inv != nil {
		via = append(via, inv.Via)
		if ev, err := rooms.ParseEvent(inv.Event, inv.Version); err == nil {
			if srv, err := rooms.ServerOf(ev.Sender()); err == nil && !slices.Contains(via, srv) {
				via = append(via, srv)
			}
		}
	}
	via, err := api.addVia(api.directoryServers(target, via), given)
	if err != nil {
		return "", err
	}
	if len(via) == 0 {
		return "", errs.NotFoundf("room %s is unknown here; join it through an invite, or name a server in it (server_name, via)", target)
	}
	err = api.throughServers(ctx, "join", target, via, func(server string) error {
		content, err := rooms.MarshalCanonical(api.memberContent(s.UserID, "join"))
		if err != nil {
			return err
		}
		return api.peers.JoinRemote(ctx, s.UserID, target, server, content)
	})
	if err != nil {
		return "", err
	}
	api.markInvite(s.UserID, target)
	api.markKnock(s.UserID, target)
	return target, nil
}

// joinBudget bounds how long a join or knock goes on trying servers: no
// server is tried once it has passed (each one is bounded by the request
// timeout, and a request names at most webui's maxVia servers).
const joinBudget = time.Minute

// addVia appends the servers a client named (server_name, via) to those
// the node knows, after checking each is a parley server name.
func (api *API) addVia(via, given []string) ([]string, error) {
	for _, srv := range given {
		if !peers.ValidServerName(srv) {
			return nil, errs.Invalidf("%q is not a server name: a parley server is named by its node's key (64 hex digits)", srv)
		}
		if srv != api.serverName && !slices.Contains(via, srv) {
			via = append(via, srv)
		}
	}
	return via, nil
}

// directoryServers adds to via the servers this node knows for a room it
// is not in: the room's own servers if every local user left it, then
// those that listed it in the public room directory this node last read
// (a client joining from the directory by room ID names none).
func (api *API) directoryServers(roomID string, via []string) []string {
	var known []string
	if r := api.peers.Room(roomID); r != nil {
		known = api.peers.RoomServers(r)
	}
	for _, srv := range append(known, api.peers.DirectoryServers(roomID)...) {
		if srv != api.serverName && peers.ValidServerName(srv) && !slices.Contains(via, srv) {
			via = append(via, srv)
		}
	}
	return via
}

// throughServers tries try with each server in turn until one succeeds.
// When none does, a refusal by any (403: the room cannot be entered
// through it) wins over servers that could not be reached (502), as it
// is the likelier truth; a server that is not in the room refuses just
// as one that will not let the user in.
func (api *API) throughServers(ctx context.Context, what, roomID string, via []string, try func(server string) error) error {
	start := time.Now()
	var refused, lastErr error
	for _, server := range via {
		if time.Since(start) > joinBudget {
			break
		}
		err := try(server)
		if err == nil {
			return nil
		}
		api.log.Info(what+" through server failed", "room", roomID, "server", server[:8], "err", err)
		if errs.KindOf(err) == errs.Forbidden {
			refused = err
		} else {
			lastErr = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	var me *webui.Error
	switch {
	case refused != nil:
		return refused
	case errs.KindOf(lastErr) != errs.Internal:
		return lastErr
	case errors.As(lastErr, &me):
		return me
	}
	return errs.Unavailablef("could not %s %s through %d server(s): %v", what, roomID, len(via), lastErr)
}

// Leave implements webui.Backend; it also declines an invite.
func (api *API) Leave(ctx context.Context, s *webui.Session, roomID, reason string) error {
	r := api.peers.Room(roomID)
	if r != nil && api.peers.Membership(r, s.UserID) != "" && api.peers.Membership(r, s.UserID) != "leave" {
		content := map[string]any{"membership": "leave"}
		if reason != "" {
			content["reason"] = reason
		}
		c, _ := rooms.MarshalCanonical(content)
		user := s.UserID
		_, err := api.dag.Send(ctx, r.Room, s.UserID, "m.room.member", &user, c, "", "")
		api.markInvite(s.UserID, roomID)
		if err == nil {
			api.peers.CheckFollowing(r)
		}
		return err
	}
	if k := api.knock(s.UserID, roomID); k != nil && !k.Left && (r == nil || !r.Followed()) {
		// Withdrawing a knock on a room this node does not follow.
		return api.withdrawKnock(ctx, s, k, reason)
	}
	if inv := api.invite(s.UserID, roomID); inv != nil && !inv.Left {
		api.markKnock(s.UserID, roomID)
		if r != nil && r.Followed() && api.peers.PlaceInvite(ctx, r, inv) && api.peers.Membership(r, s.UserID) == "invite" {
			// The invite came before the inviter's gossip of it; placed
			// now, the decline is a leave event the whole room sees.
			return api.Leave(ctx, s, roomID, reason)
		}
		// Declining an invite to a room this node does not hold: forget it
		// locally. (The inviter is not told yet: that needs make_leave.)
		api.markInvite(s.UserID, roomID)
		return nil
	}
	if r == nil {
		return errs.NotFoundf("you are not in room %s", roomID)
	}
	return nil
}

// invite loads a pending invite record.
func (api *API) invite(user, roomID string) *store.Invite {
	var inv *store.Invite
	api.store.View(func(t *store.Txn) error {
		var err error
		inv, err = t.Invite(user, roomID)
		return err
	})
	return inv
}

// markInvite closes a pending invite record once the user joined or
// declined, so /sync moves the room out of rooms.invite, and drops the
// state the inviter sent with it.
func (api *API) markInvite(user, roomID string) {
	err := api.store.Update(func(t *store.Txn) error {
		inv, err := t.Invite(user, roomID)
		if err != nil || inv.Left {
			return nil
		}
		closeInvite(t, inv)
		return t.PutInvite(user, inv)
	})
	if err != nil {
		api.log.Warn("update invite", "room", roomID, "err", err)
	}
	api.notify.wake(user)
}

// Moderate implements webui.Backend: kick, ban and unban.
func (api *API) Moderate(ctx context.Context, s *webui.Session, roomID, target, membership, reason string) error {
	r := api.peers.Room(roomID)
	if r == nil || api.peers.Membership(r, s.UserID) != "join" {
		return errs.Forbiddenf("you are not joined to room %s", roomID)
	}
	before := api.peers.Membership(r, target)
	if membership == "leave" {
		// A kick (or an unban) is of someone in the room (or banned from
		// it): the auth rules would let a moderator "kick" anyone, but
		// that would only write a leave for a user who never came.
		switch before {
		case "join", "invite", "knock", "ban":
		default:
			return errs.Forbiddenf("%s is not in room %s", target, roomID)
		}
	}
	content := map[string]any{"membership": membership}
	if reason != "" {
		content["reason"] = reason
	}
	c, err := rooms.MarshalCanonical(content)
	if err != nil {
		return err
	}
	ev, err := api.dag.Send(ctx, r.Room, s.UserID, "m.room.member", &target, c, "", "")
	if err != nil {
		return err
	}
	if before == "knock" {
		// A refused knock: the knocker's node does not follow the room.
		api.peers.TellKnocker(r, ev)
	}
	api.peers.CheckFollowing(r)
	return nil
}

// Forget implements webui.Backend: a room the user left (or was removed
// from) leaves their /sync and can no longer be read by them, until they
// join it again. While they are in it (or invited) it cannot be
// forgotten.
func (api *API) Forget(ctx context.Context, s *webui.Session, roomID string) error {
	r := api.peers.Room(roomID)
	if r == nil {
		if inv := api.invite(s.UserID, roomID); inv != nil && inv.Left {
			return nil // a declined invite to a room this node never held
		}
		return errs.NotFoundf("you were never in room %s", roomID)
	}
	id := memberID(r, s.UserID)
	switch api.peers.Membership(r, s.UserID) {
	case "leave", "ban":
	case "":
		return errs.NotFoundf("you were never in room %s", roomID)
	default:
		return errs.Invalidf("you are still in room %s: leave it first", roomID)
	}
	err := api.store.Update(func(t *store.Txn) error { return t.PutForgotten(s.UserID, r.ID, id) })
	api.notify.wake(s.UserID)
	if err == nil {
		err = api.dropForgottenIndex(r.ID) // search.go
	}
	return err
}
