package rooms

import (
	"testing"

	"github.com/parley-p2p/parley/internal/testkit"
)

// TestDependencies keeps rooms pure: it must not reach the network, the store
// or any other parley package, directly or through its dependencies.
func TestDependencies(t *testing.T) {
	testkit.CheckImports(t, testkit.ImportRule{
		Package: ".",
		Forbid:  []string{"github.com/libp2p", "github.com/dgraph-io/badger", "net/http", testkit.Module},
	})
}
