package store

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestReleasingMappedTablesDropsTheirPagesAndKeepsTheData(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{MinFree: -1, noReleaser: true})
	if err != nil {
		t.Fatal(err)
	}
	want := make(map[string]string)
	for _, k := range writeRandom(t, s, 4<<20) {
		want[k], _ = getKey(t, s, k)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	if s, err = Open(dir, Options{MinFree: -1, noReleaser: true}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	readAll := func() {
		t.Helper()
		for k, v := range want {
			got, ok := getKey(t, s, k)
			if !ok || got != v {
				t.Fatalf("%s reads back as %d bytes (found %v), want the %d written", k, len(got), ok, len(v))
			}
		}
	}
	readAll()
	if rss := tableRSS(t, dir); rss < 1<<20 {
		t.Fatalf("after reading 4 MiB only %d bytes of tables are resident: the test reads nothing through the mappings", rss)
	}
	advised, err := s.releaseMapped()
	if err != nil {
		t.Fatal(err)
	}
	if advised < 1<<20 {
		t.Errorf("releaseMapped advised %d bytes, want the tables' 4 MiB", advised)
	}
	if rss, kept := tableRSS(t, dir), indexBytes(s); rss > kept {
		t.Errorf("after releaseMapped %d bytes of tables are still resident, want at most their indexes' %d", rss, kept)
	}
	readAll()
}

func TestTheReleaserReleasesTablePagesAfterReads(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{MinFree: -1})
	if err != nil {
		t.Fatal(err)
	}
	keys := writeRandom(t, s, 4<<20)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(dir, Options{MinFree: -1}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	for _, k := range keys {
		if _, ok := getKey(t, s, k); !ok {
			t.Fatalf("%s is lost", k)
		}
	}
	waitFor(t, "the releaser to release the tables read", func() bool { return tableRSS(t, dir) <= indexBytes(s) })
}

// indexBytes is what a release keeps of the store's tables: their
// indexes, rounded to pages.
func indexBytes(s *Store) int64 {
	var n int64
	for _, t := range s.db.Tables() {
		n += int64(t.IndexSz) + indexSlack + int64(os.Getpagesize())
	}
	return n
}

// writeRandom writes size bytes of values that do not compress, 4 KiB
// each, in transactions under Badger's size limit, and returns their keys.
// Closing the store flushes them into a table.
func writeRandom(t *testing.T, s *Store, size int) []string {
	t.Helper()
	var keys []string
	for len(keys)*4<<10 < size {
		err := s.Update(func(tx *Txn) error {
			for range 64 {
				k, v := fmt.Sprintf("ev/%05d", len(keys)), make([]byte, 4<<10)
				rand.Read(v)
				if err := setKey(tx, k, string(v)); err != nil {
					return err
				}
				keys = append(keys, k)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

// tableRSS is the resident memory of this process's mappings of the
// tables of the store in dir, from /proc/self/smaps.
func tableRSS(t *testing.T, dir string) int64 {
	t.Helper()
	db, err := filepath.EvalSymlinks(filepath.Join(dir, "db"))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	table := false
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		switch {
		case len(f) > 0 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":"):
			last := f[len(f)-1]
			table = strings.HasPrefix(last, db+"/") && strings.HasSuffix(last, ".sst")
		case table && len(f) == 3 && f[0] == "Rss:":
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			total += kb << 10
		}
	}
	return total
}
