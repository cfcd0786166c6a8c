package media

import (
	"testing"

	"github.com/parley-p2p/parley/internal/testkit"
)

// TestDependencies keeps media to files: no network, no HTTP, no Badger,
// and of parley only the pure rooms package (server keys, canonical JSON)
// and errs.
func TestDependencies(t *testing.T) {
	testkit.CheckImports(t, testkit.ImportRule{
		Package: ".",
		Forbid:  []string{"github.com/libp2p", "github.com/dgraph-io/badger", "net/http", testkit.Module},
		Allow:   []string{testkit.Module + "/rooms", testkit.Module + "/errs"},
	})
}
