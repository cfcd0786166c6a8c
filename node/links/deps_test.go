package links

import (
	"testing"

	"github.com/parley-p2p/parley/internal/testkit"
)

// TestDependencies keeps the link format pure: events, nothing else.
func TestDependencies(t *testing.T) {
	testkit.CheckImports(t, testkit.ImportRule{
		Package: ".",
		Forbid:  []string{testkit.Module + "/p2p", testkit.Module + "/webui", testkit.Module + "/node"},
	})
}
