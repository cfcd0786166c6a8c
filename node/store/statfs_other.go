//go:build !unix

package store

import "errors"

// FreeSpace is unknown here; the free-space margin is not enforced.
func FreeSpace(string) (uint64, error) { return 0, errors.New("free space unknown on this system") }
