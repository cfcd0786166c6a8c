package store

import (
	"testing"

	"github.com/parley-p2p/parley/internal/testkit"
)

// TestDependencies keeps the store below the network and the client API: it
// keeps bytes on disk and never speaks to peers or to HTTP clients. (Badger
// reaches net/http through expvar; the store's own code must not.)
func TestDependencies(t *testing.T) {
	testkit.CheckImports(t, testkit.ImportRule{
		Package:        ".",
		Forbid:         []string{testkit.Module + "/p2p", testkit.Module + "/webui"},
		ForbidInParley: []string{"net/http"},
	})
}
