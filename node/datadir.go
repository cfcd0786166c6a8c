package node

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// The data dir holds the node's key, its database and the CLI token. A
// directory someone else can write to lets them plant a key (the node
// would run as them) or a symlink where a file is written (the token
// would go to them), so it is refused:
//
//   - the data dir must belong to the user running parley and must not
//     be writable by group or others (0700 when parley creates it; 0755
//     is accepted, as every file parley writes in it is 0600);
//   - node.key must be a regular file of the user's, readable by no one
//     else (0600);
//   - files are written through a fresh temp file (O_EXCL, never
//     following a symlink), fsynced, renamed into place, and the
//     directory fsynced.

// prepareDataDir creates the data dir (0700) if it is missing and checks
// that it is safe to use.
func prepareDataDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("data dir %s: %w", dir, err)
	}
	return checkDataDir(dir)
}

// checkDataDir refuses a data dir that is not a directory, belongs to
// another user or is writable by group or others. A data dir that is a
// symlink must itself be the user's: one planted by someone else (in
// /tmp, say) could be pointed elsewhere once checked.
func checkDataDir(dir string) error {
	if li, err := os.Lstat(dir); err == nil && li.Mode()&fs.ModeSymlink != 0 {
		if uid, ok := fileOwner(li); ok && uid != os.Getuid() {
			return fmt.Errorf("data dir %s is a symlink of uid %d, not of this user (uid %d): refusing to use it", dir, uid, os.Getuid())
		}
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("data dir %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("data dir %s is not a directory", dir)
	}
	uid, ok := fileOwner(fi)
	if !ok {
		return nil // no unix owners and modes here
	}
	if uid != os.Getuid() {
		return fmt.Errorf("data dir %s belongs to uid %d, not to this user (uid %d): refusing to use it", dir, uid, os.Getuid())
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		return fmt.Errorf("data dir %s is writable by others (mode %04o): refusing to use it; chmod 700 it if it is yours", dir, perm)
	}
	return nil
}

// checkKeyFile refuses a key file that is not a regular file, belongs to
// another user or can be read by anyone else.
func checkKeyFile(path string, fi fs.FileInfo) error {
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("key file %s is not a regular file: refusing to use it", path)
	}
	uid, ok := fileOwner(fi)
	if !ok {
		return nil
	}
	if uid != os.Getuid() {
		return fmt.Errorf("key file %s belongs to uid %d, not to this user (uid %d): refusing to use it", path, uid, os.Getuid())
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("key file %s is open to others (mode %04o): refusing to use it; chmod 600 it if it is yours", path, perm)
	}
	return nil
}

// writeFileAtomic replaces dir/name with data (mode 0600): written to a
// new temp file in dir (created exclusively, so a planted file or symlink
// is never followed), fsynced, renamed into place, and the directory
// fsynced, so that after a crash the file is either the old one or the
// new one, whole.
func writeFileAtomic(dir, name string, data []byte) (err error) {
	f, err := os.CreateTemp(dir, "."+name+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := os.Rename(f.Name(), filepath.Join(dir, name)); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return syncDir(dir)
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
