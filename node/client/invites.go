package client

import (
	"context"

	"github.com/parley-p2p/parley/errs"

	"github.com/parley-p2p/parley/node/peers"
	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/webui"
)

// requireOwner refuses anyone but the node's owner.
func (api *API) requireOwner(s *webui.Session) error {
	owner, err := api.owner()
	if err != nil {
		return err
	}
	if owner == "" || api.userID(owner) != s.UserID {
		return errs.Forbiddenf("only the node's owner may do this")
	}
	return nil
}

// BlockedServers implements webui.Backend.
func (api *API) BlockedServers(s *webui.Session) ([]string, error) {
	if err := api.requireOwner(s); err != nil {
		return nil, err
	}
	var out []string
	err := api.store.View(func(t *store.Txn) error {
		var err error
		out, err = t.BlockedServers()
		return err
	})
	return out, err
}

// BlockServer implements webui.Backend: the server's invites are refused
// from now on, and those pending are dropped (clients see them as left).
func (api *API) BlockServer(ctx context.Context, s *webui.Session, server string) error {
	if err := api.requireOwner(s); err != nil {
		return err
	}
	if !peers.ValidServerName(server) {
		return errs.Invalidf("%q is not a server name", server)
	}
	if server == api.serverName {
		return errs.Invalidf("this node cannot block itself")
	}
	var dropped []string
	defer func() { api.notify.wake(dropped...) }()
	return api.store.Update(func(t *store.Txn) error {
		dropped = dropped[:0]
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
			dropped = append(dropped, d.user)
			closeInvite(t, d.inv)
			if err := t.PutInvite(d.user, d.inv); err != nil {
				return err
			}
		}
		if len(drop) > 0 {
			api.log.Info("blocked server's pending invites dropped", "server", server[:8], "invites", len(drop))
		}
		return nil
	})
}

// UnblockServer implements webui.Backend.
func (api *API) UnblockServer(ctx context.Context, s *webui.Session, server string) error {
	if err := api.requireOwner(s); err != nil {
		return err
	}
	return api.store.Update(func(t *store.Txn) error { return t.UnblockServer(server) })
}

// closeInvite marks an invite answered and drops what the inviter sent
// with it; the record stays so /sync can tell clients it is gone.
func closeInvite(t *store.Txn, inv *store.Invite) {
	inv.Left = true
	inv.Event, inv.State = nil, nil
	inv.Pos = t.NextPos()
}
