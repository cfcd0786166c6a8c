package dag

import (
	"testing"

	"github.com/parley-p2p/parley/internal/testkit"
)

// TestDependencies keeps the engine a pure core over its store: it never
// reaches the network, the HTTP API or the packages that use it, so that
// admission can be tested with no network at all.
func TestDependencies(t *testing.T) {
	testkit.CheckImports(t, testkit.ImportRule{
		Package: ".",
		Forbid: []string{
			testkit.Module + "/p2p", testkit.Module + "/webui",
			testkit.Module + "/node/peers", testkit.Module + "/node/client",
		},
		ForbidInParley: []string{"net/http"},
	})
}
