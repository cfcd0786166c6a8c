package e2ee

import (
	"testing"

	"github.com/parley-p2p/parley/internal/testkit"
)

// TestDependencies keeps the keeper off the network and the HTTP API:
// it reads and writes the engine and the store, nothing else, so that
// every rule it enforces is testable without a network.
func TestDependencies(t *testing.T) {
	testkit.CheckImports(t, testkit.ImportRule{
		Package: ".",
		Forbid: []string{
			testkit.Module + "/p2p", testkit.Module + "/webui",
			testkit.Module + "/node/peers", testkit.Module + "/node/client",
			"github.com/libp2p",
		},
		ForbidInParley: []string{"net/http"},
	})
}
