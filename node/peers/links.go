package peers

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/parley-p2p/parley/errs"
	"github.com/parley-p2p/parley/node/dag"
	"github.com/parley-p2p/parley/node/links"
	"github.com/parley-p2p/parley/p2p"
	"github.com/parley-p2p/parley/rooms"
)

// maxViaAddrs bounds the addresses a link carries for one node.
const maxViaAddrs = 8

// ViaOf lists this node and a few other members' nodes, each with the
// addresses a joiner elsewhere could dial (linkVia).
func (ps *Peers) ViaOf(r *Room) []links.Via {
	via := []links.Via{linkVia(ps.host.ID().String(), ps.host.Addrs())}
	for _, s := range ps.RoomServers(r) {
		if len(via) == links.MaxVia {
			break
		}
		p, err := peerOf(s)
		if err != nil {
			continue
		}
		var addrs []string
		for _, a := range ps.host.LibP2P().Peerstore().Addrs(p) {
			addrs = append(addrs, a.String())
		}
		via = append(via, linkVia(p.String(), addrs))
	}
	return via
}

// linkVia is a node's entry in a link: of its addresses, those that could
// work from anywhere (p2p.LinkAddrs: public and relay circuit ones; LAN
// or loopback ones only when it has nothing else, in the order and
// mixture it chooses), at most maxViaAddrs.
func linkVia(peerID string, addrs []string) links.Via {
	kept := p2p.LinkAddrs(addrs)
	if len(kept) > maxViaAddrs {
		kept = kept[:maxViaAddrs]
	}
	return links.Via{Peer: peerID, Addrs: kept}
}

// LinkStates returns a room's link states.
func (ps *Peers) LinkStates(r *Room) map[string]links.State {
	state := r.State()
	out := map[string]links.State{}
	for k, id := range state {
		if k.Type != links.EventType {
			continue
		}
		i, err := ps.dag.Event(id)
		if err != nil {
			continue
		}
		var st links.State
		if json.Unmarshal(i.Event.Content(), &st) == nil {
			st.Maker = i.Event.Sender()
			out[k.StateKey] = st
		}
	}
	return out
}

// onLinkInvite honours a link: if the room's state says the link is live
// and the secret matches, one of this node's users who may invite invites
// the requester's user, and the use is counted in the room.
func (ps *Peers) onLinkInvite(ctx context.Context, server string, body []byte) (any, error) {
	var req LinkInviteReq
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	if s, err := rooms.ServerOf(req.UserID); err != nil || s != server {
		return nil, remoteErr("M_FORBIDDEN", "a server may only use links for its own users")
	}
	r := ps.Room(req.RoomID)
	if r == nil {
		return nil, remoteErr("M_NOT_FOUND", "this node is not in that room")
	}
	// Uses are counted one at a time under linkMu, so max_uses holds on
	// this node; but the invite itself waits on the joiner's node, so it
	// is sent with a use reserved and the lock released: a joiner that
	// never answers delays no one else.
	r.LinkMu.Lock()
	st, ok := ps.LinkStates(r)[req.LinkID]
	if err := ps.checkLinkUse(r, req, st, ok); err != nil {
		r.LinkMu.Unlock()
		return nil, err
	}
	if m := ps.Membership(r, req.UserID); m == "join" {
		r.LinkMu.Unlock()
		return LinkInviteResp{RoomID: r.ID, Via: ps.serverName}, nil
	} else if m == "ban" {
		r.LinkMu.Unlock()
		return nil, remoteErr("M_FORBIDDEN", "that user is banned from the room")
	}
	inviter := ps.localInviter(r)
	if inviter == "" {
		r.LinkMu.Unlock()
		return nil, remoteErr("M_FORBIDDEN", "no user on this node may invite to the room")
	}
	if r.linkPending == nil {
		r.linkPending = map[string]int{}
	}
	r.linkPending[req.LinkID]++
	r.LinkMu.Unlock()

	var inviteErr error
	if ps.Membership(r, req.UserID) != "invite" {
		inviteErr = ps.Invite(ctx, inviter, r.ID, req.UserID, "")
	}

	r.LinkMu.Lock()
	defer r.LinkMu.Unlock()
	if r.linkPending[req.LinkID]--; r.linkPending[req.LinkID] <= 0 {
		delete(r.linkPending, req.LinkID)
	}
	if inviteErr != nil {
		return nil, remoteErr("M_UNKNOWN", "inviting through the link failed: %v", inviteErr)
	}
	ps.countLinkUse(ctx, r, inviter, req.LinkID)
	return LinkInviteResp{RoomID: r.ID, Via: ps.serverName}, nil
}

// checkLinkUse checks a use of a link against the room's state and the
// uses already under way. A link found expired is buried. The caller
// holds r.LinkMu.
func (ps *Peers) checkLinkUse(r *Room, req LinkInviteReq, st links.State, ok bool) error {
	if !ok {
		return remoteErr("M_NOT_FOUND", "this invite link does not exist in the room (yet)")
	}
	why := st.EndedAt(nowMS())
	if why == "" && st.MaxUses > 0 && st.Uses+r.linkPending[req.LinkID] >= st.MaxUses {
		why = links.UsedUp
	}
	switch {
	case why == links.Revoked && st.Ended == "" && !st.Revoked:
		// An empty or foreign content: no secret to compare.
	case why != "" && st.Ended != "":
		// A tombstone: its secret is gone, so say why it ended.
	case subtle.ConstantTimeCompare([]byte(links.HashSecret(req.Secret)), []byte(st.SecretHash)) != 1:
		return remoteErr("M_FORBIDDEN", "this invite link is not valid")
	}
	if why == "" {
		return nil
	}
	if why == links.Expired && st.Ended == "" {
		if inviter := ps.localInviter(r); inviter != "" {
			key := req.LinkID
			if _, err := ps.dag.Send(ps.ctx, r.Room, inviter, links.EventType, &key, links.Tombstone(why), "", ""); err != nil {
				ps.log.Warn("burying an expired link", "room", r.ID, "link", key, "err", err)
			}
		}
	}
	return remoteErr("M_FORBIDDEN", "%s", links.EndedMessage(why))
}

// countLinkUse records one more use of a link in the room, or buries the
// link when that was its last. The caller holds r.LinkMu.
func (ps *Peers) countLinkUse(ctx context.Context, r *Room, inviter, id string) {
	st, ok := ps.LinkStates(r)[id]
	if !ok || st.Ended != "" {
		return
	}
	st.Uses++
	c, _ := rooms.MarshalCanonical(st)
	if st.MaxUses > 0 && st.Uses >= st.MaxUses {
		c = links.Tombstone(links.UsedUp)
	}
	if _, err := ps.dag.Send(ctx, r.Room, inviter, links.EventType, &id, c, "", ""); err != nil {
		ps.log.Warn("counting a link use", "room", r.ID, "err", err)
	}
}

// localInviter finds a joined local user with the power to invite.
func (ps *Peers) localInviter(r *Room) string {
	state := r.State()
	var users []string
	for k := range state {
		if k.Type == "m.room.member" {
			if _, local := ps.LocalUser(k.StateKey); local {
				users = append(users, k.StateKey)
			}
		}
	}
	slices.Sort(users)
	for _, u := range users {
		if ps.CanInvite(r, u) == nil {
			return u
		}
	}
	return ""
}

// CanInvite checks that the user is joined with the power to invite.
func (ps *Peers) CanInvite(r *Room, user string) error {
	if ps.Membership(r, user) != "join" {
		return errs.Forbiddenf("you are not joined to room %s", r.ID)
	}
	state := dag.WithCreate(r.Room, r.State())
	pl, err := rooms.PowerLevelsFrom(ps.dag.StateFunc(state))
	if err != nil {
		return err
	}
	if pl.UserLevel(user) < pl.Invite() {
		return errs.Forbiddenf("you may not invite to this room, so you may not make links to it")
	}
	return nil
}

// AskLinkInvite asks the members a link names to honour it for user: to
// invite them. It returns once one did, or with why none would.
func (ps *Peers) AskLinkInvite(ctx context.Context, p *links.Payload, user string) error {
	req := LinkInviteReq{RoomID: p.RoomID, LinkID: p.ID, Secret: p.Secret, UserID: user}
	sec, err := sharedSecret{Key: p.Key, Epoch: p.Epoch}.parse(p.RoomID)
	if err != nil {
		return errs.Invalidf("this invite link carries no room key (made by an older version?)")
	}
	rs := newRoomSecret(sec)
	var lastErr error
	for _, v := range p.Via {
		pid, err := peer.Decode(v.Peer)
		if err != nil || pid == ps.host.ID() {
			continue
		}
		ps.host.AddAddrs(pid, v.Addrs)
		var resp LinkInviteResp
		if err := ps.requestSealed(ctx, pid, rs, MethodLinkInvite, req, &resp); err != nil {
			lastErr = err
			var re *p2p.RemoteError
			if errors.As(err, &re) && re.Code == "M_FORBIDDEN" {
				// The room's own answer: another member would say the same.
				return errs.Forbiddenf("%s", re.Message)
			}
			continue
		}
		return nil
	}
	if lastErr == nil {
		lastErr = fmt.Errorf("the link names no other node")
	}
	return errs.Unavailablef("no member named in the link could be reached: %v", lastErr)
}
