package webui

import (
	"testing"

	"github.com/parley-p2p/parley/internal/testkit"
)

// TestDependencies keeps webui a client of the node, not a part of it: it
// serves the local API through the interfaces it defines, and never reaches
// the network or the node's insides.
func TestDependencies(t *testing.T) {
	testkit.CheckImports(t, testkit.ImportRule{
		Package: ".",
		Forbid:  []string{testkit.Module + "/p2p", testkit.Module + "/node"},
	})
}
