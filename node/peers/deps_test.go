package peers

import (
	"testing"

	"github.com/parley-p2p/parley/internal/testkit"
)

// TestDependencies keeps the node-to-node protocol apart from the client
// API: peers never imports webui or the client package, which sit above
// it.
func TestDependencies(t *testing.T) {
	testkit.CheckImports(t, testkit.ImportRule{
		Package: ".",
		Forbid:  []string{testkit.Module + "/webui", testkit.Module + "/node/client"},
	})
}
