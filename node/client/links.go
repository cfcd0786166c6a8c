package client

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/parley-p2p/parley/errs"
	"github.com/parley-p2p/parley/node/links"
	"github.com/parley-p2p/parley/node/peers"

	"github.com/parley-p2p/parley/rooms"
	"github.com/parley-p2p/parley/webui"
)

// CreateLink implements webui.Backend.
func (api *API) CreateLink(ctx context.Context, s *webui.Session, roomID string, maxUses int, expiresIn time.Duration) (*webui.LinkInfo, error) {
	r := api.peers.Room(roomID)
	if r == nil {
		return nil, errs.Forbiddenf("you are not in room %s", roomID)
	}
	if err := api.peers.CanInvite(r, s.UserID); err != nil {
		return nil, err
	}
	if maxUses < 0 || expiresIn < 0 {
		return nil, errs.Invalidf("max_uses and expires_in_ms must not be negative")
	}
	// Counting live links and adding one must not interleave with another
	// maker's count; nothing under linkMu waits for another node.
	r.LinkMu.Lock()
	defer r.LinkMu.Unlock()
	if err := api.checkLinkRoom(ctx, r, s.UserID); err != nil {
		return nil, err
	}
	st := links.State{MaxUses: maxUses, CreatedBy: s.UserID, CreatedTS: nowMS()}
	secret := randomString(32)
	st.SecretHash = links.HashSecret(secret)
	var expiry int64
	if expiresIn > 0 {
		expiry = time.Now().Add(expiresIn).UnixMilli()
		st.ExpiresTS = expiry
	}
	id := randomString(12)
	c, _ := rooms.MarshalCanonical(st)
	if _, err := api.dag.Send(ctx, r.Room, s.UserID, links.EventType, &id, c, "", ""); err != nil {
		return nil, err
	}
	p := links.Payload{V: 1, RoomID: r.ID, ID: id, Secret: secret, Expiry: expiry, Via: api.peers.ViaOf(r), Maker: s.UserID}
	var err error
	if p.Key, p.Epoch, err = api.peers.LinkKey(r); err != nil {
		return nil, err
	}
	link := links.Encode(p)
	return &webui.LinkInfo{
		ID: id, Link: link, WebLink: api.cfg.AppURL() + "#/join/" + strings.TrimPrefix(link, links.Scheme),
		ExpiresTS: expiry, MaxUses: maxUses, CreatedBy: s.UserID, CreatedTS: st.CreatedTS,
	}, nil
}

// checkLinkRoom buries the room's links that expired and refuses a new
// link when the user or the room has as many live links as allowed. The
// caller holds r.LinkMu.
func (api *API) checkLinkRoom(ctx context.Context, r *peers.Room, user string) error {
	now := nowMS()
	live, mine := 0, 0
	for id, st := range api.peers.LinkStates(r) {
		why := st.EndedAt(now)
		if why == links.Expired && st.Ended == "" {
			key := id
			if _, err := api.dag.Send(ctx, r.Room, user, links.EventType, &key, links.Tombstone(why), "", ""); err != nil {
				api.log.Warn("burying an expired link", "room", r.ID, "link", id, "err", err)
			}
		}
		if why == "" {
			live++
			if st.Maker == user {
				mine++
			}
		}
	}
	if mine >= links.MaxPerUser {
		return errs.Forbiddenf("you already have %d live links to this room, the most a member may have: revoke one first", mine)
	}
	if live >= links.MaxPerRoom {
		return errs.Forbiddenf("this room already has %d live links, the most it may have: revoke one first", live)
	}
	return nil
}

// Links implements webui.Backend: the room's live links.
func (api *API) Links(s *webui.Session, roomID string) ([]webui.LinkInfo, error) {
	r := api.peers.Room(roomID)
	if r == nil || api.peers.Membership(r, s.UserID) != "join" {
		return nil, errs.Forbiddenf("you are not joined to room %s", roomID)
	}
	out := []webui.LinkInfo{}
	now := nowMS()
	for id, st := range api.peers.LinkStates(r) {
		if st.EndedAt(now) != "" {
			continue
		}
		out = append(out, webui.LinkInfo{ID: id, ExpiresTS: st.ExpiresTS, MaxUses: st.MaxUses, Uses: st.Uses, CreatedBy: st.CreatedBy, CreatedTS: st.CreatedTS})
	}
	slices.SortFunc(out, func(a, b webui.LinkInfo) int { return int(a.CreatedTS - b.CreatedTS) })
	return out, nil
}

// RevokeLink implements webui.Backend.
func (api *API) RevokeLink(ctx context.Context, s *webui.Session, roomID, id string) error {
	r := api.peers.Room(roomID)
	if r == nil {
		return errs.Forbiddenf("you are not in room %s", roomID)
	}
	if err := api.peers.CanInvite(r, s.UserID); err != nil {
		return err
	}
	r.LinkMu.Lock()
	defer r.LinkMu.Unlock()
	st, ok := api.peers.LinkStates(r)[id]
	if !ok {
		return errs.NotFoundf("no link %q in this room", id)
	}
	if st.Ended != "" {
		return nil
	}
	_, err := api.dag.Send(ctx, r.Room, s.UserID, links.EventType, &id, links.Tombstone(links.Revoked), "", "")
	return err
}

// JoinLink implements webui.Backend: asks the members the link names (and
// any other member this node can find) to honour it, then joins, and
// returns once the room's state is here.
func (api *API) JoinLink(ctx context.Context, s *webui.Session, link string) (string, error) {
	p, err := links.Parse(link)
	if err != nil {
		return "", errs.Invalidf("%v", err)
	}
	if p.Expiry != 0 && p.Expiry <= nowMS() {
		return "", errs.Forbiddenf("this invite link has expired")
	}
	if r := api.peers.Room(p.RoomID); r != nil && api.peers.Membership(r, s.UserID) == "join" {
		return p.RoomID, nil
	}
	if err := api.peers.AskLinkInvite(ctx, p, s.UserID); err != nil {
		return "", err
	}
	if _, err := api.Join(ctx, s, p.RoomID, nil); err != nil {
		return "", err
	}
	return p.RoomID, nil
}
