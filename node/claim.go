package node

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// ClaimURL is the app's address with the claim code, for the owner to
// open; "" once the node is claimed.
func (n *Node) ClaimURL() string {
	code := n.api.ClaimCode()
	if code == "" {
		return ""
	}
	return n.URL() + "#/claim/" + code
}

// A fresh node is claimed by its first account. Whoever registers it must
// show a one-time claim code, as Jupyter asks for its token: the daemon
// prints the code with the app's URL and writes it to claimCodeFile in the
// data dir, readable only by the user who runs it, so that another local
// user or a web page cannot claim the node first. The code is void once
// the node has its owner.
const claimCodeFile = "claim-code"

// claimAlphabet leaves out letters that read alike (0/O, 1/l/I).
const claimAlphabet = "23456789abcdefghjkmnpqrstuvwxyz"

// minClaimCode is the shortest code the owner may choose.
const minClaimCode = 8

// newClaimCode is 20 characters of claimAlphabet: about 98 bits.
func newClaimCode() string {
	b := make([]byte, 20)
	rand.Read(b)
	for i := range b {
		// 256 is not a multiple of 31; the bias is small and the length makes up for it.
		b[i] = claimAlphabet[int(b[i])%len(claimAlphabet)]
	}
	return string(b)
}

// prepareClaim sets the claim code while the node has no owner, writing
// it to the data dir; once claimed, it removes any leftover file.
func (n *Node) prepareClaim() error {
	count, err := n.api.AccountCount()
	if err != nil {
		return err
	}
	path := filepath.Join(n.cfg.DataDir, claimCodeFile)
	if count > 0 {
		return removeClaimFile(path)
	}
	code := strings.TrimSpace(n.cfg.ClaimCode)
	switch {
	case code == "":
		code = newClaimCode()
	case len(code) < minClaimCode || len(code) > 128 || strings.ContainsAny(code, "/#?% "):
		return fmt.Errorf("claim code: use %d to 128 characters, none of / # ? %% or space", minClaimCode)
	}
	if err := writeFileAtomic(n.cfg.DataDir, claimCodeFile, []byte(code+"\n")); err != nil {
		return err
	}
	n.api.SetClaimCode(code)
	return nil
}

// removeUsedClaimFile removes the claim-code file once the node has its
// owner.
func (n *Node) removeUsedClaimFile() {
	if err := removeClaimFile(filepath.Join(n.cfg.DataDir, claimCodeFile)); err != nil {
		n.log.Warn("remove the used claim code", "err", err)
	}
}

func removeClaimFile(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
