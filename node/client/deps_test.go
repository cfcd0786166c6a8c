package client

import (
	"testing"

	"github.com/parley-p2p/parley/internal/testkit"
)

// TestDependencies keeps the client API off the network: it reaches other
// nodes only through node/peers, never p2p itself.
func TestDependencies(t *testing.T) {
	testkit.CheckImports(t, testkit.ImportRule{
		Package:        ".",
		Forbid:         []string{testkit.Module + "/node"},
		Allow:          []string{testkit.Module + "/node/dag", testkit.Module + "/node/peers", testkit.Module + "/node/store", testkit.Module + "/node/links", testkit.Module + "/node/internal"},
		ForbidInParley: []string{testkit.Module + "/p2p"},
	})
}
