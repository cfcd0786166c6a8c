package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/parley-p2p/parley/errs"
	"github.com/parley-p2p/parley/node/dag"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/parley-p2p/parley/p2p"
	"github.com/parley-p2p/parley/rooms"
	"github.com/parley-p2p/parley/webui"
)

// An invite link is a capability to be invited to a room. Its secret's
// hash, expiry, use limit, use count and revocation live in the room's
// state as an org.parley.link event, so any member's node whose users may
// invite can honour it, whether or not the link's maker is online.

const (
	linkEventType = "org.parley.link"
	linkScheme    = "parley:join/"
	// linkViaMax is how many members' addresses a link carries.
	linkViaMax  = 3
	mLinkInvite = "link_invite"

	// maxLinksPerUser is how many live links one member may have in a
	// room, and maxLinksPerRoom how many a room may have: each is a state
	// entry every member's node stores and checks.
	maxLinksPerUser = 20
	maxLinksPerRoom = 200
)

// linkPayload is what a link encodes.
type linkPayload struct {
	V      int       `json:"v"`
	RoomID string    `json:"room"`
	ID     string    `json:"id"`
	Secret string    `json:"s"`
	Expiry int64     `json:"exp,omitempty"` // ms since the epoch; 0: never
	Via    []linkVia `json:"via"`
}

type linkVia struct {
	Peer  string   `json:"p"`
	Addrs []string `json:"a,omitempty"`
}

// linkState is the content of an org.parley.link state event. A link
// that ended (revoked, expired or used up) is replaced by a tombstone
// that says only why, so dead links do not weigh on the room's state.
type linkState struct {
	SecretHash string `json:"secret_hash"`
	ExpiresTS  int64  `json:"expires_ts,omitempty"`
	MaxUses    int    `json:"max_uses,omitempty"`
	Uses       int    `json:"uses"`
	Revoked    bool   `json:"revoked,omitempty"`
	CreatedBy  string `json:"created_by"`
	CreatedTS  int64  `json:"created_ts"`
	// Ended is a tombstone's reason; the other fields are then empty.
	Ended string `json:"ended,omitempty"`

	maker string // the state event's sender
}

// Why a link ended.
const (
	linkRevoked = "revoked"
	linkExpired = "expired"
	linkUsedUp  = "used up"
)

// ended says why a link can no longer be used, or "" while it is live.
func (st *linkState) ended(now int64) string {
	switch {
	case st.Ended != "":
		return st.Ended
	case st.Revoked || st.SecretHash == "":
		return linkRevoked
	case st.ExpiresTS != 0 && st.ExpiresTS <= now:
		return linkExpired
	case st.MaxUses > 0 && st.Uses >= st.MaxUses:
		return linkUsedUp
	}
	return ""
}

// linkEndedMessage is what a joiner is told about an ended link.
func linkEndedMessage(why string) string {
	switch why {
	case linkExpired:
		return "this invite link has expired"
	case linkUsedUp:
		return "this invite link has been used up"
	}
	return "this invite link was revoked"
}

// tombstone is the content that replaces an ended link.
func linkTombstone(why string) json.RawMessage {
	c, _ := rooms.MarshalCanonical(map[string]string{"ended": why})
	return c
}

func hashSecret(s string) string {
	sum := sha256.Sum256([]byte(s))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// encodeLink renders a payload as a parley: link: base64url of the JSON
// plus a 4-byte checksum, so a link damaged in transit is caught before
// anything is sent.
func encodeLink(p linkPayload) string {
	b, _ := json.Marshal(p)
	sum := sha256.Sum256(b)
	return linkScheme + base64.RawURLEncoding.EncodeToString(append(b, sum[:4]...))
}

// parseLink accepts the parley: form, the http://.../#/join/ form, or the
// bare code, and checks its form and checksum.
func parseLink(link string) (*linkPayload, error) {
	link = strings.TrimSpace(link)
	code := link
	switch {
	case strings.HasPrefix(link, linkScheme):
		code = link[len(linkScheme):]
	case strings.Contains(link, "#/join/"):
		code = link[strings.Index(link, "#/join/")+len("#/join/"):]
	}
	raw, err := base64.RawURLEncoding.DecodeString(code)
	if err != nil || len(raw) < 5 {
		return nil, fmt.Errorf("this is not a parley invite link (or it was cut short)")
	}
	body, check := raw[:len(raw)-4], raw[len(raw)-4:]
	sum := sha256.Sum256(body)
	if !bytes.Equal(sum[:4], check) {
		return nil, fmt.Errorf("this invite link is damaged: its checksum does not match (was it cut short or changed?)")
	}
	var p linkPayload
	if err := json.Unmarshal(body, &p); err != nil || p.V != 1 {
		return nil, fmt.Errorf("this invite link has an unknown format")
	}
	if !strings.HasPrefix(p.RoomID, "!") || p.ID == "" || p.Secret == "" || len(p.Via) == 0 || len(p.Via) > 10 {
		return nil, fmt.Errorf("this invite link is incomplete")
	}
	return &p, nil
}

// canInvite checks that the user is joined with the power to invite.
func (n *Node) canInvite(r *room, user string) error {
	if n.membership(r, user) != "join" {
		return errs.Forbiddenf("you are not joined to room %s", r.ID)
	}
	state := dag.WithCreate(r.Room, r.State())
	pl, err := rooms.PowerLevelsFrom(n.dag.StateFunc(state))
	if err != nil {
		return err
	}
	if pl.UserLevel(user) < pl.Invite() {
		return errs.Forbiddenf("you may not invite to this room, so you may not make links to it")
	}
	return nil
}

// CreateLink implements webui.Backend.
func (n *Node) CreateLink(ctx context.Context, s *webui.Session, roomID string, maxUses int, expiresIn time.Duration) (*webui.LinkInfo, error) {
	r := n.getRoom(roomID)
	if r == nil {
		return nil, errs.Forbiddenf("you are not in room %s", roomID)
	}
	if err := n.canInvite(r, s.UserID); err != nil {
		return nil, err
	}
	if maxUses < 0 || expiresIn < 0 {
		return nil, errs.Invalidf("max_uses and expires_in_ms must not be negative")
	}
	// Counting live links and adding one must not interleave with another
	// maker's count; nothing under linkMu waits for another node.
	r.linkMu.Lock()
	defer r.linkMu.Unlock()
	if err := n.checkLinkRoom(ctx, r, s.UserID); err != nil {
		return nil, err
	}
	st := linkState{MaxUses: maxUses, CreatedBy: s.UserID, CreatedTS: nowMS()}
	secret := randomString(32)
	st.SecretHash = hashSecret(secret)
	var expiry int64
	if expiresIn > 0 {
		expiry = time.Now().Add(expiresIn).UnixMilli()
		st.ExpiresTS = expiry
	}
	id := randomString(12)
	c, _ := rooms.MarshalCanonical(st)
	if _, err := n.dag.Send(ctx, r.Room, s.UserID, linkEventType, &id, c, "", ""); err != nil {
		return nil, err
	}
	p := linkPayload{V: 1, RoomID: r.ID, ID: id, Secret: secret, Expiry: expiry, Via: n.linkVia(r)}
	link := encodeLink(p)
	return &webui.LinkInfo{
		ID: id, Link: link, WebLink: "http://" + n.HTTPAddr() + "/#/join/" + strings.TrimPrefix(link, linkScheme),
		ExpiresTS: expiry, MaxUses: maxUses, CreatedBy: s.UserID, CreatedTS: st.CreatedTS,
	}, nil
}

// checkLinkRoom buries the room's links that expired and refuses a new
// link when the user or the room has as many live links as allowed. The
// caller holds r.linkMu.
func (n *Node) checkLinkRoom(ctx context.Context, r *room, user string) error {
	now := nowMS()
	live, mine := 0, 0
	for id, st := range n.links(r) {
		why := st.ended(now)
		if why == linkExpired && st.Ended == "" {
			key := id
			if _, err := n.dag.Send(ctx, r.Room, user, linkEventType, &key, linkTombstone(why), "", ""); err != nil {
				n.log.Warn("burying an expired link", "room", r.ID, "link", id, "err", err)
			}
		}
		if why == "" {
			live++
			if st.maker == user {
				mine++
			}
		}
	}
	if mine >= maxLinksPerUser {
		return errs.Forbiddenf("you already have %d live links to this room, the most a member may have: revoke one first", mine)
	}
	if live >= maxLinksPerRoom {
		return errs.Forbiddenf("this room already has %d live links, the most it may have: revoke one first", live)
	}
	return nil
}

// linkVia lists this node and a few other members' nodes, with the
// addresses this node knows for them.
func (n *Node) linkVia(r *room) []linkVia {
	via := []linkVia{{Peer: n.host.ID().String(), Addrs: n.host.Addrs()}}
	for _, s := range n.roomServers(r) {
		if len(via) == linkViaMax {
			break
		}
		p, err := peerOf(s)
		if err != nil {
			continue
		}
		var addrs []string
		for _, a := range n.host.LibP2P().Peerstore().Addrs(p) {
			addrs = append(addrs, a.String())
		}
		via = append(via, linkVia{Peer: p.String(), Addrs: addrs})
	}
	return via
}

// links returns a room's link states.
func (n *Node) links(r *room) map[string]linkState {
	state := r.State()
	out := map[string]linkState{}
	for k, id := range state {
		if k.Type != linkEventType {
			continue
		}
		i, err := n.dag.Event(id)
		if err != nil {
			continue
		}
		var st linkState
		if json.Unmarshal(i.Event.Content(), &st) == nil {
			st.maker = i.Event.Sender()
			out[k.StateKey] = st
		}
	}
	return out
}

// Links implements webui.Backend: the room's live links.
func (n *Node) Links(s *webui.Session, roomID string) ([]webui.LinkInfo, error) {
	r := n.getRoom(roomID)
	if r == nil || n.membership(r, s.UserID) != "join" {
		return nil, errs.Forbiddenf("you are not joined to room %s", roomID)
	}
	out := []webui.LinkInfo{}
	now := nowMS()
	for id, st := range n.links(r) {
		if st.ended(now) != "" {
			continue
		}
		out = append(out, webui.LinkInfo{ID: id, ExpiresTS: st.ExpiresTS, MaxUses: st.MaxUses, Uses: st.Uses, CreatedBy: st.CreatedBy, CreatedTS: st.CreatedTS})
	}
	slices.SortFunc(out, func(a, b webui.LinkInfo) int { return int(a.CreatedTS - b.CreatedTS) })
	return out, nil
}

// RevokeLink implements webui.Backend.
func (n *Node) RevokeLink(ctx context.Context, s *webui.Session, roomID, id string) error {
	r := n.getRoom(roomID)
	if r == nil {
		return errs.Forbiddenf("you are not in room %s", roomID)
	}
	if err := n.canInvite(r, s.UserID); err != nil {
		return err
	}
	r.linkMu.Lock()
	defer r.linkMu.Unlock()
	st, ok := n.links(r)[id]
	if !ok {
		return errs.NotFoundf("no link %q in this room", id)
	}
	if st.Ended != "" {
		return nil
	}
	_, err := n.dag.Send(ctx, r.Room, s.UserID, linkEventType, &id, linkTombstone(linkRevoked), "", "")
	return err
}

type linkInviteReq struct {
	RoomID string `json:"room_id"`
	LinkID string `json:"link_id"`
	Secret string `json:"secret"`
	UserID string `json:"user_id"`
}

type linkInviteResp struct {
	RoomID string `json:"room_id"`
	Via    string `json:"via"`
}

// onLinkInvite honours a link: if the room's state says the link is live
// and the secret matches, one of this node's users who may invite invites
// the requester's user, and the use is counted in the room.
func (n *Node) onLinkInvite(ctx context.Context, server string, body []byte) (any, error) {
	var req linkInviteReq
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	if s, err := rooms.ServerOf(req.UserID); err != nil || s != server {
		return nil, remoteErr("M_FORBIDDEN", "a server may only use links for its own users")
	}
	r := n.getRoom(req.RoomID)
	if r == nil {
		return nil, remoteErr("M_NOT_FOUND", "this node is not in that room")
	}
	// Uses are counted one at a time under linkMu, so max_uses holds on
	// this node; but the invite itself waits on the joiner's node, so it
	// is sent with a use reserved and the lock released: a joiner that
	// never answers delays no one else.
	r.linkMu.Lock()
	st, ok := n.links(r)[req.LinkID]
	if err := n.checkLinkUse(r, req, st, ok); err != nil {
		r.linkMu.Unlock()
		return nil, err
	}
	if m := n.membership(r, req.UserID); m == "join" {
		r.linkMu.Unlock()
		return linkInviteResp{RoomID: r.ID, Via: n.serverName}, nil
	} else if m == "ban" {
		r.linkMu.Unlock()
		return nil, remoteErr("M_FORBIDDEN", "that user is banned from the room")
	}
	inviter := n.localInviter(r)
	if inviter == "" {
		r.linkMu.Unlock()
		return nil, remoteErr("M_FORBIDDEN", "no user on this node may invite to the room")
	}
	if r.linkPending == nil {
		r.linkPending = map[string]int{}
	}
	r.linkPending[req.LinkID]++
	r.linkMu.Unlock()

	var inviteErr error
	if n.membership(r, req.UserID) != "invite" {
		inviteErr = n.Invite(ctx, &webui.Session{UserID: inviter}, r.ID, req.UserID, "")
	}

	r.linkMu.Lock()
	defer r.linkMu.Unlock()
	if r.linkPending[req.LinkID]--; r.linkPending[req.LinkID] <= 0 {
		delete(r.linkPending, req.LinkID)
	}
	if inviteErr != nil {
		return nil, remoteErr("M_UNKNOWN", "inviting through the link failed: %v", inviteErr)
	}
	n.countLinkUse(ctx, r, inviter, req.LinkID)
	return linkInviteResp{RoomID: r.ID, Via: n.serverName}, nil
}

// checkLinkUse checks a use of a link against the room's state and the
// uses already under way. A link found expired is buried. The caller
// holds r.linkMu.
func (n *Node) checkLinkUse(r *room, req linkInviteReq, st linkState, ok bool) error {
	if !ok {
		return remoteErr("M_NOT_FOUND", "this invite link does not exist in the room (yet)")
	}
	why := st.ended(nowMS())
	if why == "" && st.MaxUses > 0 && st.Uses+r.linkPending[req.LinkID] >= st.MaxUses {
		why = linkUsedUp
	}
	switch {
	case why == linkRevoked && st.Ended == "" && !st.Revoked:
		// An empty or foreign content: no secret to compare.
	case why != "" && st.Ended != "":
		// A tombstone: its secret is gone, so say why it ended.
	case subtle.ConstantTimeCompare([]byte(hashSecret(req.Secret)), []byte(st.SecretHash)) != 1:
		return remoteErr("M_FORBIDDEN", "this invite link is not valid")
	}
	if why == "" {
		return nil
	}
	if why == linkExpired && st.Ended == "" {
		if inviter := n.localInviter(r); inviter != "" {
			key := req.LinkID
			if _, err := n.dag.Send(n.ctx, r.Room, inviter, linkEventType, &key, linkTombstone(why), "", ""); err != nil {
				n.log.Warn("burying an expired link", "room", r.ID, "link", key, "err", err)
			}
		}
	}
	return remoteErr("M_FORBIDDEN", "%s", linkEndedMessage(why))
}

// countLinkUse records one more use of a link in the room, or buries the
// link when that was its last. The caller holds r.linkMu.
func (n *Node) countLinkUse(ctx context.Context, r *room, inviter, id string) {
	st, ok := n.links(r)[id]
	if !ok || st.Ended != "" {
		return
	}
	st.Uses++
	c, _ := rooms.MarshalCanonical(st)
	if st.MaxUses > 0 && st.Uses >= st.MaxUses {
		c = linkTombstone(linkUsedUp)
	}
	if _, err := n.dag.Send(ctx, r.Room, inviter, linkEventType, &id, c, "", ""); err != nil {
		n.log.Warn("counting a link use", "room", r.ID, "err", err)
	}
}

// localInviter finds a joined local user with the power to invite.
func (n *Node) localInviter(r *room) string {
	state := r.State()
	var users []string
	for k := range state {
		if k.Type == "m.room.member" {
			if _, local := n.localUser(k.StateKey); local {
				users = append(users, k.StateKey)
			}
		}
	}
	slices.Sort(users)
	for _, u := range users {
		if n.canInvite(r, u) == nil {
			return u
		}
	}
	return ""
}

// JoinLink implements webui.Backend: asks the members the link names (and
// any other member this node can find) to honour it, then joins, and
// returns once the room's state is here.
func (n *Node) JoinLink(ctx context.Context, s *webui.Session, link string) (string, error) {
	p, err := parseLink(link)
	if err != nil {
		return "", errs.Invalidf("%v", err)
	}
	if p.Expiry != 0 && p.Expiry <= nowMS() {
		return "", errs.Forbiddenf("this invite link has expired")
	}
	if r := n.getRoom(p.RoomID); r != nil && n.membership(r, s.UserID) == "join" {
		return p.RoomID, nil
	}
	req := linkInviteReq{RoomID: p.RoomID, LinkID: p.ID, Secret: p.Secret, UserID: s.UserID}
	var lastErr error
	for _, v := range p.Via {
		pid, err := peer.Decode(v.Peer)
		if err != nil || pid == n.host.ID() {
			continue
		}
		n.host.AddAddrs(pid, v.Addrs)
		var resp linkInviteResp
		if err := n.request(ctx, pid, mLinkInvite, req, &resp); err != nil {
			lastErr = err
			var re *p2p.RemoteError
			if errors.As(err, &re) && re.Code == "M_FORBIDDEN" {
				// The room's own answer: another member would say the same.
				return "", errs.Forbiddenf("%s", re.Message)
			}
			continue
		}
		if _, err := n.Join(ctx, s, p.RoomID); err != nil {
			return "", err
		}
		return p.RoomID, nil
	}
	if lastErr == nil {
		lastErr = fmt.Errorf("the link names no other node")
	}
	return "", &webui.Error{Status: http.StatusBadGateway, Code: "M_UNKNOWN", Message: fmt.Sprintf("no member named in the link could be reached: %v", lastErr)}
}
