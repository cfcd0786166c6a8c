package fulltext

import (
	"testing"

	"github.com/parley-p2p/parley/internal/testkit"
)

// TestDependencies keeps the text code pure: nothing of parley, no
// storage, no network (x/text reaches os through fmt).
func TestDependencies(t *testing.T) {
	testkit.CheckImports(t, testkit.ImportRule{
		Package: ".",
		Forbid:  []string{testkit.Module, "net", "net/http", "github.com/dgraph-io/badger/v4"},
	})
}
