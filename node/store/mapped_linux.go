package store

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"syscall"
)

// findMappings returns the mappings of this process whose file pick
// names a table of, from /proc/self/maps.
func findMappings(pick func(path string) (uint64, bool)) ([]tableMapping, error) {
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return nil, fmt.Errorf("store: find mapped tables: %w", err)
	}
	defer f.Close()
	var out []tableMapping
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// start-end perms offset dev inode path, the path last and
		// possibly holding spaces.
		var fields [5][]byte
		rest := sc.Bytes()
		for i := range fields {
			fields[i], rest, _ = bytes.Cut(bytes.TrimLeft(rest, " "), []byte(" "))
		}
		id, ok := pick(string(bytes.TrimLeft(rest, " ")))
		if !ok {
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
		out = append(out, tableMapping{id: id, lo: uintptr(lo), hi: uintptr(hi)})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("store: find mapped tables: %w", err)
	}
	return out, nil
}

// dontNeed advises MADV_DONTNEED on the range [lo, hi).
func dontNeed(lo, hi uintptr) error {
	if _, _, errno := syscall.Syscall(syscall.SYS_MADVISE, lo, hi-lo, syscall.MADV_DONTNEED); errno != 0 {
		return errno
	}
	return nil
}

// releaseSupported: findMappings and dontNeed work here.
const releaseSupported = true
