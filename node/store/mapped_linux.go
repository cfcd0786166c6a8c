package store

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"syscall"
)

// dropMapped advises MADV_DONTNEED on every mapping of this process whose
// file is one that pick accepts, and returns the bytes advised.
func dropMapped(pick func(path string) bool) (int64, error) {
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return 0, fmt.Errorf("store: release mapped tables: %w", err)
	}
	defer f.Close()
	var total int64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// start-end perms offset dev inode path, the path last and
		// possibly holding spaces.
		var fields [5][]byte
		rest := sc.Bytes()
		for i := range fields {
			fields[i], rest, _ = bytes.Cut(bytes.TrimLeft(rest, " "), []byte(" "))
		}
		path := string(bytes.TrimLeft(rest, " "))
		if !pick(path) {
			continue
		}
		start, end, ok := bytes.Cut(fields[0], []byte("-"))
		if !ok {
			continue
		}
		lo, err1 := strconv.ParseUint(string(start), 16, 64)
		hi, err2 := strconv.ParseUint(string(end), 16, 64)
		if err1 != nil || err2 != nil || hi <= lo {
			continue
		}
		if _, _, errno := syscall.Syscall(syscall.SYS_MADVISE, uintptr(lo), uintptr(hi-lo), syscall.MADV_DONTNEED); errno != 0 {
			return total, fmt.Errorf("store: release mapped table %s: %w", path, errno)
		}
		total += int64(hi - lo)
	}
	if err := sc.Err(); err != nil {
		return total, fmt.Errorf("store: release mapped tables: %w", err)
	}
	return total, nil
}

// releaseSupported: dropMapped works here.
const releaseSupported = true
