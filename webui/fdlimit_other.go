//go:build !unix

package webui

// fdLimit is unknown here.
func fdLimit() int { return 0 }
