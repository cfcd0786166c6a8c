package node

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

const keyFile = "node.key"

// LoadOrCreateKey reads the node's ed25519 key from dir, creating it (mode
// 0600) on first use. The file holds the 32-byte seed in hex. A data dir
// or key file that others could have planted or can read is refused (see
// datadir.go).
func LoadOrCreateKey(dir string) (ed25519.PrivateKey, error) {
	if err := prepareDataDir(dir); err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	path := filepath.Join(dir, keyFile)
	fi, err := os.Lstat(path)
	if err == nil {
		if err := checkKeyFile(path, fi); err != nil {
			return nil, fmt.Errorf("node: %w", err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("node: read key: %w", err)
		}
		seed, err := hex.DecodeString(strings.TrimSpace(string(b)))
		if err != nil || len(seed) != ed25519.SeedSize {
			return nil, fmt.Errorf("node: key file %s is corrupt", path)
		}
		return ed25519.NewKeyFromSeed(seed), nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("node: read key: %w", err)
	}
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	// Durable before it is used: a power cut must not leave an empty key
	// behind a node that has already announced its identity.
	if err := writeFileAtomic(dir, keyFile, []byte(hex.EncodeToString(key.Seed())+"\n")); err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	return key, nil
}
