package node

import (
	"crypto/subtle"
	"fmt"
	"github.com/parley-p2p/parley/errs"
	"os"
	"path/filepath"
	"strings"

	"github.com/parley-p2p/parley/node/store"
	"github.com/parley-p2p/parley/webui"
)

// The command line (parley join, parley invite) talks to the running
// daemon through its API, as the node's owner. It proves that it may, the
// way syncthing's CLI does: by reading a token the daemon writes into the
// data dir (mode 0600) at each start, next to the API's address.
const (
	cliTokenFile = "cli.token"
	apiAddrFile  = "api.addr"
	cliDevice    = "PARLEY_CLI"
)

// writeCLIFiles creates a fresh CLI token and records the API address.
func (n *Node) writeCLIFiles() error {
	n.cliToken = "pc_" + randomString(40)
	for name, content := range map[string]string{cliTokenFile: n.cliToken, apiAddrFile: n.http.Addr()} {
		if err := writeFileAtomic(n.cfg.DataDir, name, []byte(content+"\n")); err != nil {
			return err
		}
	}
	return nil
}

// ReadCLIFiles returns the running daemon's API address and CLI token from
// its data dir.
func ReadCLIFiles(dataDir string) (addr, token string, err error) {
	a, err := os.ReadFile(filepath.Join(dataDir, apiAddrFile))
	if err != nil {
		return "", "", fmt.Errorf("no running parley found in %s (is `parley run` running with this --data?)", dataDir)
	}
	// A data dir others can write to could point the CLI, and its
	// token, at their own listener.
	if err := checkDataDir(dataDir); err != nil {
		return "", "", err
	}
	t, err := os.ReadFile(filepath.Join(dataDir, cliTokenFile))
	if err != nil {
		return "", "", fmt.Errorf("cannot read the daemon's CLI token in %s: %v", dataDir, err)
	}
	return strings.TrimSpace(string(a)), strings.TrimSpace(string(t)), nil
}

// owner is the local part of the node's owner, "" before the node is
// claimed.
func (n *Node) owner() (string, error) {
	var owner string
	err := n.store.View(func(t *store.Txn) error {
		var err error
		owner, err = t.Owner()
		return err
	})
	return owner, err
}

// cliSession authenticates the CLI token as the node's owner.
func (n *Node) cliSession(token string) (*webui.Session, bool, error) {
	if n.cliToken == "" || subtle.ConstantTimeCompare([]byte(token), []byte(n.cliToken)) != 1 {
		return nil, false, nil
	}
	owner, err := n.owner()
	if err != nil {
		return nil, true, err
	}
	if owner == "" {
		return nil, true, errs.Forbiddenf("this node has no account yet: claim it in the app first")
	}
	return &webui.Session{UserID: n.userID(owner), DeviceID: cliDevice}, true, nil
}
