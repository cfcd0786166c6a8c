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

// linkState is the content of an org.parley.link state event.
type linkState struct {
	SecretHash string `json:"secret_hash"`
	ExpiresTS  int64  `json:"expires_ts,omitempty"`
	MaxUses    int    `json:"max_uses,omitempty"`
	Uses       int    `json:"uses"`
	Revoked    bool   `json:"revoked,omitempty"`
	CreatedBy  string `json:"created_by"`
	CreatedTS  int64  `json:"created_ts"`
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
		return webui.Forbidden("you are not joined to room %s", r.id)
	}
	r.mu.Lock()
	state := withCreate(r, r.state)
	r.mu.Unlock()
	pl, err := rooms.PowerLevelsFrom(n.stateFunc(state))
	if err != nil {
		return err
	}
	if pl.UserLevel(user) < pl.Invite() {
		return webui.Forbidden("you may not invite to this room, so you may not make links to it")
	}
	return nil
}

// CreateLink implements webui.Backend.
func (n *Node) CreateLink(ctx context.Context, s *webui.Session, roomID string, maxUses int, expiresIn time.Duration) (*webui.LinkInfo, error) {
	r := n.getRoom(roomID)
	if r == nil {
		return nil, webui.Forbidden("you are not in room %s", roomID)
	}
	if err := n.canInvite(r, s.UserID); err != nil {
		return nil, err
	}
	if maxUses < 0 || expiresIn < 0 {
		return nil, webui.BadRequest("max_uses and expires_in_ms must not be negative")
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
	if _, err := n.sendLocal(ctx, r, s.UserID, linkEventType, &id, c, "", ""); err != nil {
		return nil, err
	}
	p := linkPayload{V: 1, RoomID: r.id, ID: id, Secret: secret, Expiry: expiry, Via: n.linkVia(r)}
	link := encodeLink(p)
	return &webui.LinkInfo{
		ID: id, Link: link, WebLink: "http://" + n.HTTPAddr() + "/#/join/" + strings.TrimPrefix(link, linkScheme),
		ExpiresTS: expiry, MaxUses: maxUses, CreatedBy: s.UserID, CreatedTS: st.CreatedTS,
	}, nil
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
	r.mu.Lock()
	state := r.state
	r.mu.Unlock()
	out := map[string]linkState{}
	for k, id := range state {
		if k.Type != linkEventType {
			continue
		}
		i, err := n.eventInfo(id)
		if err != nil {
			continue
		}
		var st linkState
		if json.Unmarshal(i.ev.Content(), &st) == nil {
			out[k.StateKey] = st
		}
	}
	return out
}

// Links implements webui.Backend: the room's live links.
func (n *Node) Links(s *webui.Session, roomID string) ([]webui.LinkInfo, error) {
	r := n.getRoom(roomID)
	if r == nil || n.membership(r, s.UserID) != "join" {
		return nil, webui.Forbidden("you are not joined to room %s", roomID)
	}
	out := []webui.LinkInfo{}
	now := nowMS()
	for id, st := range n.links(r) {
		if st.Revoked || (st.ExpiresTS != 0 && st.ExpiresTS <= now) || (st.MaxUses > 0 && st.Uses >= st.MaxUses) {
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
		return webui.Forbidden("you are not in room %s", roomID)
	}
	if err := n.canInvite(r, s.UserID); err != nil {
		return err
	}
	st, ok := n.links(r)[id]
	if !ok {
		return webui.NotFound("no link %q in this room", id)
	}
	if st.Revoked {
		return nil
	}
	st.Revoked = true
	c, _ := rooms.MarshalCanonical(st)
	_, err := n.sendLocal(ctx, r, s.UserID, linkEventType, &id, c, "", "")
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
	r.linkMu.Lock() // one use at a time, so max_uses holds on this node
	defer r.linkMu.Unlock()
	st, ok := n.links(r)[req.LinkID]
	switch {
	case !ok:
		return nil, remoteErr("M_NOT_FOUND", "this invite link does not exist in the room (yet)")
	case subtle.ConstantTimeCompare([]byte(hashSecret(req.Secret)), []byte(st.SecretHash)) != 1:
		return nil, remoteErr("M_FORBIDDEN", "this invite link is not valid")
	case st.Revoked:
		return nil, remoteErr("M_FORBIDDEN", "this invite link was revoked")
	case st.ExpiresTS != 0 && st.ExpiresTS <= nowMS():
		return nil, remoteErr("M_FORBIDDEN", "this invite link has expired")
	case st.MaxUses > 0 && st.Uses >= st.MaxUses:
		return nil, remoteErr("M_FORBIDDEN", "this invite link has been used up")
	}
	if m := n.membership(r, req.UserID); m == "join" {
		return linkInviteResp{RoomID: r.id, Via: n.serverName}, nil
	} else if m == "ban" {
		return nil, remoteErr("M_FORBIDDEN", "that user is banned from the room")
	}
	inviter := n.localInviter(r)
	if inviter == "" {
		return nil, remoteErr("M_FORBIDDEN", "no user on this node may invite to the room")
	}
	sess := &webui.Session{UserID: inviter}
	if n.membership(r, req.UserID) != "invite" {
		if err := n.Invite(ctx, sess, r.id, req.UserID, ""); err != nil {
			return nil, remoteErr("M_UNKNOWN", "inviting through the link failed: %v", err)
		}
	}
	st.Uses++
	c, _ := rooms.MarshalCanonical(st)
	id := req.LinkID
	if _, err := n.sendLocal(ctx, r, inviter, linkEventType, &id, c, "", ""); err != nil {
		n.log.Warn("counting a link use", "room", r.id, "err", err)
	}
	return linkInviteResp{RoomID: r.id, Via: n.serverName}, nil
}

// localInviter finds a joined local user with the power to invite.
func (n *Node) localInviter(r *room) string {
	r.mu.Lock()
	state := r.state
	r.mu.Unlock()
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
		return "", webui.BadRequest("%v", err)
	}
	if p.Expiry != 0 && p.Expiry <= nowMS() {
		return "", webui.Forbidden("this invite link has expired")
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
				return "", webui.Forbidden("%s", re.Message)
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
