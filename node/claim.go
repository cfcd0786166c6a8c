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

// prepareClaim returns the code that claims a node with no owner yet
// (chosen, or a new one) and writes it to the data dir; for a claimed
// node it returns "" and removes any leftover file.
func prepareClaim(dataDir, chosen string, claimed bool) (string, error) {
	if claimed {
		return "", removeClaimFile(dataDir)
	}
	code := strings.TrimSpace(chosen)
	switch {
	case code == "":
		code = newClaimCode()
	case len(code) < minClaimCode || len(code) > 128 || strings.ContainsAny(code, "/#?% "):
		return "", fmt.Errorf("claim code: use %d to 128 characters, none of / # ? %% or space", minClaimCode)
	}
	if err := writeFileAtomic(dataDir, claimCodeFile, []byte(code+"\n")); err != nil {
		return "", err
	}
	return code, nil
}

// removeClaimFile removes the data dir's claim-code file, if any.
func removeClaimFile(dataDir string) error {
	if err := os.Remove(filepath.Join(dataDir, claimCodeFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
