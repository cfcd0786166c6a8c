package client

import (
	"go/parser"
	gotoken "go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/parley-p2p/parley/internal/testkit"
)

// TestDependencies keeps the client API above the node's parts and off
// the network: it never imports the node's wiring, and reaches other
// nodes only through node/peers, never p2p itself.
func TestDependencies(t *testing.T) {
	testkit.CheckImports(t, testkit.ImportRule{
		Package: ".",
		Forbid:  []string{testkit.Module + "/node"},
		Allow:   []string{testkit.Module + "/node/dag", testkit.Module + "/node/peers", testkit.Module + "/node/store", testkit.Module + "/node/links", testkit.Module + "/node/e2ee", testkit.Module + "/node/media", testkit.Module + "/node/internal"},
	})
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(gotoken.NewFileSet(), name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			if path, _ := strconv.Unquote(imp.Path.Value); path == testkit.Module+"/p2p" || strings.HasPrefix(path, "github.com/libp2p/") {
				t.Errorf("%s imports %s: the client API reaches other nodes through node/peers", name, path)
			}
		}
	}
}
