//go:build !linux

package store

// findMappings finds nothing where /proc/self/maps and madvise's Linux
// semantics are not to be had.
func findMappings(pick func(path string) (uint64, bool)) ([]tableMapping, error) { return nil, nil }

func dontNeed(lo, hi uintptr) error { return nil }

const releaseSupported = false
