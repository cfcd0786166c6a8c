package client

import (
	"crypto/subtle"

	"github.com/parley-p2p/parley/errs"

	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/webui"
)

// owner is the local part of the node's owner, "" before the node is
// claimed.
func (api *API) owner() (string, error) {
	var owner string
	err := api.store.View(func(t *store.Txn) error {
		var err error
		owner, err = t.Owner()
		return err
	})
	return owner, err
}

// cliSession authenticates the CLI token as the node's owner.
func (api *API) cliSession(token string) (*webui.Session, bool, error) {
	if api.cliToken == "" || subtle.ConstantTimeCompare([]byte(token), []byte(api.cliToken)) != 1 {
		return nil, false, nil
	}
	owner, err := api.owner()
	if err != nil {
		return nil, true, err
	}
	if owner == "" {
		return nil, true, errs.Forbiddenf("this node has no account yet: claim it in the app first")
	}
	return &webui.Session{UserID: api.userID(owner), DeviceID: cliDevice}, true, nil
}

// cliDevice is the device ID of the command line's session.
const cliDevice = "PARLEY_CLI"
