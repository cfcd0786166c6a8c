package node

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// The command line (parley join, parley invite) talks to the running
// daemon through its API, as the node's owner. It proves that it may, the
// way syncthing's CLI does: by reading a token the daemon writes into the
// data dir (mode 0600) at each start, next to the API's address.
const (
	cliTokenFile = "cli.token"
	apiAddrFile  = "api.addr"
)

// writeCLIFiles records the CLI token and the API address in the data dir.
func writeCLIFiles(dataDir, token, apiAddr string) error {
	for name, content := range map[string]string{cliTokenFile: token, apiAddrFile: apiAddr} {
		if err := writeFileAtomic(dataDir, name, []byte(content+"\n")); err != nil {
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

// newCLIToken is a fresh token for the command line's session.
func newCLIToken() (string, error) {
	b := make([]byte, 30)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return "pc_" + base64.RawURLEncoding.EncodeToString(b), nil
}
