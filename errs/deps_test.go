package errs

import (
	"testing"

	"github.com/parley-p2p/parley/internal/testkit"
)

// TestDependencies keeps errs at the bottom: every layer may use its errors,
// so it may use nothing of parley.
func TestDependencies(t *testing.T) {
	testkit.CheckImports(t, testkit.ImportRule{Package: ".", Forbid: []string{testkit.Module}})
}
