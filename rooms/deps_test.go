package rooms

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies keeps rooms pure: it must not reach the network, the store
// or any other parley package, directly or through its dependencies.
func TestDependencies(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not found")
	}
	out, err := exec.Command(goTool, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	const self = "github.com/parley-p2p/parley/rooms"
	forbidden := []string{"github.com/libp2p/", "github.com/dgraph-io/badger", "net/http", "github.com/parley-p2p/parley/"}
	deps := strings.Fields(string(out))
	if len(deps) == 0 {
		t.Fatal("go list printed no packages")
	}
	for _, dep := range deps {
		if dep == self {
			continue
		}
		for _, bad := range forbidden {
			if strings.HasPrefix(dep, bad) {
				t.Errorf("package rooms depends on %s", dep)
			}
		}
	}
}
