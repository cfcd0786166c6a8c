package store

import (
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	badger "github.com/dgraph-io/badger/v4"
)

// A data dir left by a crash holds the memtable's log, written with the
// memtable size of the parley that crashed; the store opens and replays it
// whatever size it uses now.
func TestALogWrittenWithBiggerMemtablesIsReplayed(t *testing.T) {
	live := filepath.Join(t.TempDir(), "db")
	// 16 MiB memtables, as parley had before, holding 12 MiB of writes
	// not yet flushed into a table.
	db, err := badger.Open(badger.DefaultOptions(live).WithLogger(nil).
		WithNumMemtables(2).WithMemTableSize(16 << 20).WithBlockCacheSize(16 << 20).
		WithValueLogFileSize(64 << 20))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	want := make(map[string]string)
	for b := range 12 {
		err := db.Update(func(txn *badger.Txn) error {
			for i := range 256 {
				v := make([]byte, 4<<10)
				rand.Read(v)
				k := fmt.Sprintf("k/%02d-%03d", b, i)
				want[k] = string(v)
				if err := txn.Set([]byte(k), v); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(db.Tables()) != 0 {
		t.Fatal("the writes were flushed into a table: the test needs them in the log")
	}
	// What a crash leaves: the files as they are (the log is a shared
	// mapping, so reading the file sees every write).
	dir := t.TempDir()
	copyFiles(t, live, filepath.Join(dir, "db"))

	s, err := Open(dir, Options{MinFree: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for k, v := range want {
		if got, ok := getKey(t, s, k); !ok || got != v {
			t.Fatalf("%s reads back as %d bytes (found %v), want %d", k, len(got), ok, len(v))
		}
	}
}

func copyFiles(t *testing.T, from, to string) {
	t.Helper()
	if err := os.MkdirAll(to, 0o700); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Name() == "LOCK" {
			continue
		}
		src, err := os.Open(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		dst, err := os.Create(filepath.Join(to, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(dst, src); err != nil {
			t.Fatal(err)
		}
		src.Close()
		if err := dst.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
