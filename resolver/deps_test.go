package resolver

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies keeps resolver pure: no network, no store, and no parley
// package other than rooms, directly or through rooms.
func TestDependencies(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("go list -deps: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list -deps: %v", err)
	}
	const module = "github.com/parley-p2p/parley/"
	allowed := map[string]bool{module + "rooms": true, module + "resolver": true}
	forbidden := []string{"github.com/libp2p/", "github.com/dgraph-io/badger", "net/http"}
	for _, pkg := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if pkg == f || strings.HasPrefix(pkg, f) {
				t.Errorf("resolver depends on %s", pkg)
			}
		}
		if strings.HasPrefix(pkg, module) && !allowed[pkg] {
			t.Errorf("resolver depends on parley package %s", pkg)
		}
	}
}
