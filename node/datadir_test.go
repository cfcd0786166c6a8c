package node

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// startErr starts a node on dir and returns why it would not start.
func startErr(t *testing.T, dir string) error {
	t.Helper()
	n, err := New(Config{DataDir: dir, HTTPAddr: "127.0.0.1:0", ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, NoMDNS: true})
	if err != nil {
		t.Fatal(err)
	}
	err = n.Start()
	n.Close()
	return err
}

// squatDir makes a data dir with the given mode (umask aside).
func squatDir(t *testing.T, mode os.FileMode) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, mode); err != nil {
		t.Fatal(err)
	}
	return dir
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("needs root to make files owned by another user (CI runs as root)")
	}
}

// TestSquattedDataDirIsRefused: a data dir or key that another user made
// or can write is refused at start, with a one-line reason, and the node
// writes nothing into it.
func TestSquattedDataDirIsRefused(t *testing.T) {
	t.Parallel()
	plantedKey := func(t *testing.T, mode os.FileMode, owner int) string {
		dir := squatDir(t, 0o700)
		key := filepath.Join(dir, keyFile)
		if err := os.WriteFile(key, []byte(strings.Repeat("ab", 32)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(key, mode); err != nil {
			t.Fatal(err)
		}
		if owner >= 0 {
			if err := os.Chown(key, owner, owner); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	for _, tc := range []struct {
		name    string
		root    bool
		dir     func(t *testing.T) string
		wantErr string
	}{
		{"a data dir anyone can write to (0777)", false, func(t *testing.T) string { return squatDir(t, 0o777) }, "writable by others"},
		{"a data dir its group can write to (0770)", false, func(t *testing.T) string { return squatDir(t, 0o770) }, "writable by others"},
		{"a data dir owned by another user", true, func(t *testing.T) string {
			dir := squatDir(t, 0o700)
			if err := os.Chown(dir, 65534, 65534); err != nil {
				t.Fatal(err)
			}
			return dir
		}, "belongs to uid 65534"},
		{"a data dir that is another user's symlink", true, func(t *testing.T) string {
			link := filepath.Join(t.TempDir(), "parley")
			if err := os.Symlink(squatDir(t, 0o700), link); err != nil {
				t.Fatal(err)
			}
			if err := os.Lchown(link, 65534, 65534); err != nil {
				t.Fatal(err)
			}
			return link
		}, "symlink of uid 65534"},
		{"a planted key readable by others (0644)", false, func(t *testing.T) string { return plantedKey(t, 0o644, -1) }, "open to others"},
		{"a planted key owned by another user", true, func(t *testing.T) string { return plantedKey(t, 0o600, 65534) }, "belongs to uid 65534"},
		{"a symlink planted as the key", false, func(t *testing.T) string {
			dir := squatDir(t, 0o700)
			target := filepath.Join(t.TempDir(), "their.key")
			if err := os.WriteFile(target, []byte(strings.Repeat("ab", 32)+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(target, filepath.Join(dir, keyFile)); err != nil {
				t.Fatal(err)
			}
			return dir
		}, "not a regular file"},
	} {
		t.Run(tc.name+" is refused", func(t *testing.T) {
			if tc.root {
				needRoot(t)
			}
			dir := tc.dir(t)
			before, _ := os.ReadDir(dir)
			err := startErr(t, dir)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("start: %v, want an error saying %q", err, tc.wantErr)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
			if after, _ := os.ReadDir(dir); len(after) != len(before) {
				t.Errorf("the node wrote into the refused dir: %d entries before, %d after", len(before), len(after))
			}
		})
	}
}

// TestPlantedSymlinksAreNotFollowed: symlinks planted where the node
// writes its CLI token (cli.token.tmp, the old temp name, and cli.token
// itself) leave their targets untouched; the token lands in a regular
// 0600 file in the data dir, and the fresh key is a regular 0600 file.
func TestPlantedSymlinksAreNotFollowed(t *testing.T) {
	t.Parallel()
	dir := squatDir(t, 0o700)
	elsewhere := t.TempDir()
	targets := map[string]string{}
	for _, name := range []string{cliTokenFile + ".tmp", cliTokenFile, keyFile + ".tmp"} {
		target := filepath.Join(elsewhere, name+".target")
		if err := os.WriteFile(target, []byte("untouched"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
		targets[name] = target
	}
	n := newTestNode(t, testOpts{dir: dir})
	for name, target := range targets {
		if b, err := os.ReadFile(target); err != nil || string(b) != "untouched" {
			t.Errorf("the target of the symlink at %s now holds %q (err %v)", name, b, err)
		}
	}
	for _, name := range []string{cliTokenFile, keyFile} {
		fi, err := os.Lstat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s is %v, want a regular 0600 file", name, fi.Mode())
		}
	}
	if _, token, err := ReadCLIFiles(dir); err != nil || token != n.cliToken {
		t.Errorf("CLI token read back = %q, %v; want the node's", token, err)
	}
}
