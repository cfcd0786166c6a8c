package resolver

import (
	"testing"

	"github.com/parley-p2p/parley/internal/testkit"
)

// TestDependencies keeps resolver pure: no network, no store, and no parley
// package other than rooms, directly or through rooms.
func TestDependencies(t *testing.T) {
	testkit.CheckImports(t, testkit.ImportRule{
		Package: ".",
		Forbid:  []string{"github.com/libp2p", "github.com/dgraph-io/badger", "net/http", testkit.Module},
		Allow:   []string{testkit.Module + "/rooms"},
	})
}
