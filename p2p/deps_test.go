package p2p

import (
	"testing"

	"github.com/parley-p2p/parley/internal/testkit"
)

// TestImportsStayInTheirLane keeps p2p a leaf of parley: it moves bytes and
// must not know about rooms, nodes or HTTP. (libp2p itself reaches net/http,
// for its websocket transport among others; p2p's own code must not.)
func TestImportsStayInTheirLane(t *testing.T) {
	testkit.CheckImports(t, testkit.ImportRule{
		Package:        ".",
		Forbid:         []string{testkit.Module},
		ForbidInParley: []string{"net/http"},
	})
}
