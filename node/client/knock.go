package client

import (
	"context"
	"encoding/json"
	"slices"
	"strings"

	"github.com/parley-p2p/parley/errs"
	"github.com/parley-p2p/parley/node/dag"
	"github.com/parley-p2p/parley/node/peers"
	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/rooms"
	"github.com/parley-p2p/parley/webui"
)

// Knock implements webui.Knocking. A room this node follows is knocked on
// locally; any other through a resident server (make_knock, send_knock),
// which admits the knock into the room and answers with the room's
// stripped state: the node keeps that in a knock record, which /sync
// shows under rooms.knock until the user is invited, joins, withdraws or
// is refused. A user has at most peers.MaxPendingKnocks pending.
func (api *API) Knock(ctx context.Context, s *webui.Session, target string, given []string, reason string) (string, error) {
	if strings.HasPrefix(target, "#") {
		roomID, servers, err := api.ResolveAlias(ctx, target)
		if err != nil {
			return "", err
		}
		target, given = roomID, append(given, servers...)
	}
	r := api.peers.Room(target)
	if r != nil && r.Followed() {
		switch api.peers.Membership(r, s.UserID) {
		case "join", "invite":
			return "", errs.Forbiddenf("you are already in room %s (or invited to it)", target)
		case "ban":
			return "", errs.Forbiddenf("you are banned from room %s", target)
		}
		content := map[string]any{"membership": "knock"}
		if reason != "" {
			content["reason"] = reason
		}
		c, err := rooms.MarshalCanonical(content)
		if err != nil {
			return "", err
		}
		user := s.UserID
		if _, err := api.dag.Send(ctx, r.Room, s.UserID, "m.room.member", &user, c, "", ""); err != nil {
			return "", err
		}
		return r.ID, nil
	}
	via, err := api.addVia(api.directoryServers(target, nil), given)
	if err != nil {
		return "", err
	}
	if len(via) == 0 {
		return "", errs.NotFoundf("room %s is unknown here; name a server in it (via) to knock through", target)
	}
	if err := api.knockSlot(s.UserID, target); err != nil {
		return "", err
	}
	var k *peers.Knocked
	var through string
	err = api.throughServers(ctx, "knock on", target, via, func(server string) error {
		var err error
		k, err = api.peers.KnockRemote(ctx, s.UserID, target, server, reason)
		through = server
		return err
	})
	if err != nil {
		return "", err
	}
	err = api.store.Update(func(t *store.Txn) error {
		return t.PutKnock(s.UserID, &store.Knock{
			RoomID: target, Version: k.Version, Pos: t.NextPos(), Event: k.Event, State: k.State, Via: through,
		})
	})
	if err != nil {
		return "", err
	}
	api.notify.wake(s.UserID)
	return target, nil
}

// knockSlot refuses a knock beyond the user's peers.MaxPendingKnocks
// (a knock again on the same room takes no new slot).
func (api *API) knockSlot(user, roomID string) error {
	return api.store.View(func(t *store.Txn) error {
		ks, err := t.Knocks(user)
		if err != nil {
			return err
		}
		pending := 0
		for _, k := range ks {
			if !k.Left && k.RoomID != roomID {
				pending++
			}
		}
		if pending >= peers.MaxPendingKnocks {
			return errs.Forbiddenf("you have %d pending knocks, the most this node keeps: withdraw one first", pending)
		}
		return nil
	})
}

// knock loads a user's knock record on a room; nil if there is none.
func (api *API) knock(user, roomID string) *store.Knock {
	var k *store.Knock
	api.store.View(func(t *store.Txn) error {
		var err error
		k, err = t.Knock(user, roomID)
		return err
	})
	return k
}

// withdrawKnock ends a user's pending knock on a room this node does not
// follow: the leave goes through the server the knock went through (or,
// failing that, the room's other known servers), and the record closes,
// so /sync shows the room as left.
func (api *API) withdrawKnock(ctx context.Context, s *webui.Session, k *store.Knock, reason string) error {
	via := []string{k.Via}
	if r := api.peers.Room(k.RoomID); r != nil {
		for _, srv := range api.peers.RoomServers(r) {
			if !slices.Contains(via, srv) {
				via = append(via, srv)
			}
		}
	}
	var leave json.RawMessage
	err := api.throughServers(ctx, "withdraw the knock on", k.RoomID, via, func(server string) error {
		var err error
		leave, err = api.peers.WithdrawKnock(ctx, s.UserID, k.RoomID, server, reason)
		return err
	})
	if err != nil {
		return err
	}
	err = api.store.Update(func(t *store.Txn) error {
		k, err := t.Knock(s.UserID, k.RoomID)
		if err != nil {
			return err
		}
		k.Left, k.Event, k.State, k.Pos = true, leave, nil, t.NextPos()
		return t.PutKnock(s.UserID, k)
	})
	api.notify.wake(s.UserID)
	return err
}

// markKnock forgets a user's knock record once they joined the room or
// answered an invite to it: the room shows under join (or leave) from
// then on.
func (api *API) markKnock(user, roomID string) {
	err := api.store.Update(func(t *store.Txn) error { return t.DeleteKnock(user, roomID) })
	if err != nil {
		api.log.Warn("drop knock", "room", roomID, "err", err)
	}
}

// syncKnocks adds the user's knock records to a /sync answer: pending
// ones under rooms.knock (unless the room shows as joined or invited), and,
// in an incremental sync, those that ended since (withdrawn or refused)
// under rooms.leave, with the event that ended them.
func (api *API) syncKnocks(s *webui.Session, since uint64, resp *webui.SyncResponse, f *webui.Filter, covered map[string]bool) (bool, error) {
	var knocks []*store.Knock
	err := api.store.View(func(t *store.Txn) error {
		var err error
		if since == 0 {
			knocks, err = t.Knocks(s.UserID)
		} else {
			knocks, err = t.KnocksSince(s.UserID, since)
		}
		return err
	})
	if err != nil {
		return false, err
	}
	news := false
	for _, k := range knocks {
		if f.Room.Rooms != nil && !slices.Contains(f.Room.Rooms, k.RoomID) {
			continue
		}
		_, joined := resp.Rooms.Join[k.RoomID]
		_, invited := resp.Rooms.Invite[k.RoomID]
		_, left := resp.Rooms.Leave[k.RoomID]
		if joined || invited || api.covers(covered, k.RoomID, s.UserID) {
			continue
		}
		if k.Left {
			if since == 0 || left {
				continue
			}
			lr := &webui.LeftRoom{
				Timeline:    webui.Timeline{Events: []webui.ClientEvent{}},
				State:       webui.StateList{Events: []webui.ClientEvent{}},
				AccountData: webui.EventList{Events: []json.RawMessage{}},
			}
			if ev, err := rooms.ParseEvent(k.Event, k.Version); err == nil {
				lr.Timeline.Events = append(lr.Timeline.Events, knockEndEvent(ev))
			}
			resp.Rooms.Leave[k.RoomID] = lr
			news = true
			continue
		}
		if inv := api.invite(s.UserID, k.RoomID); inv != nil && !inv.Left {
			continue // the invite that answered the knock shows instead
		}
		kr := &webui.KnockedRoom{}
		kr.KnockState.Events = []webui.StrippedEvent{}
		for _, raw := range k.State {
			var se webui.StrippedEvent
			if json.Unmarshal(raw, &se) == nil && (se.Type != "m.room.member" || se.StateKey != s.UserID) {
				kr.KnockState.Events = append(kr.KnockState.Events, se)
			}
		}
		if ev, err := rooms.ParseEvent(k.Event, k.Version); err == nil {
			kr.KnockState.Events = append(kr.KnockState.Events, stripped(ev))
		}
		resp.Rooms.Knock[k.RoomID] = kr
		news = true
	}
	return news, nil
}

// knockEndEvent is the event that ended a knock, as a left room's
// timeline shows it.
func knockEndEvent(ev *rooms.Event) webui.ClientEvent {
	return webui.ClientEvent{
		Content: ev.Content(), EventID: ev.ID(), OriginServerTS: ev.OriginServerTS(),
		Sender: ev.Sender(), StateKey: ev.StateKey(), Type: ev.Type(),
	}
}

// knockedHere is a room this node follows as a user knocking on it sees
// it in /sync: its stripped state and the knock.
func (api *API) knockedHere(rec *store.RoomRecord, state store.StateMap, knock *dag.Info) *webui.KnockedRoom {
	kr := &webui.KnockedRoom{}
	kr.KnockState.Events = []webui.StrippedEvent{}
	for _, typ := range peers.StrippedStateTypes {
		if typ == "m.room.member" {
			continue
		}
		if id, ok := withCreateID(rec, state)[rooms.StateKey{Type: typ}]; ok {
			if i, err := api.dag.Event(id); err == nil {
				if e := api.shownInfo(i); !e.hidden {
					kr.KnockState.Events = append(kr.KnockState.Events, strippedShown(e))
				}
			}
		}
	}
	kr.KnockState.Events = append(kr.KnockState.Events, strippedShown(api.shownInfo(knock)))
	return kr
}
