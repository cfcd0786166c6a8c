package testkit

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

func TestImportRules(t *testing.T) {
	graph := map[string][]string{
		"a":                  {"a/b", "fmt", "net/http/httptrace"},
		"a/b":                {"c", "fmt"},
		"c":                  {"net/http", "fmt"},
		"net/http":           {"fmt", "net/http/httptrace"},
		"net/http/httptrace": {"fmt"},
		"fmt":                nil,
	}
	// The same shape, where a and b are parley's and c is not.
	parleyGraph := map[string][]string{
		Module + "/a":        {Module + "/b", "c", "net/http/httptrace"},
		Module + "/b":        {"net/http"},
		"c":                  {"net/http", "fmt"},
		"net/http":           {"fmt", "net/http/httptrace"},
		"net/http/httptrace": {"fmt"},
		"fmt":                nil,
	}
	tests := []struct {
		name string
		rule ImportRule
		want [][]string
	}{
		{"a rule that nothing breaks passes", ImportRule{Forbid: []string{"os", "a/bc"}}, nil},
		{"a direct import is named with its importer",
			ImportRule{Forbid: []string{"net/http/httptrace"}},
			[][]string{{"a", "net/http/httptrace"}}},
		{"an import through others is named with the shortest chain",
			ImportRule{Forbid: []string{"c"}},
			[][]string{{"a", "a/b", "c"}}},
		{"a pattern covers the packages under it, and the walk stops at each",
			ImportRule{Forbid: []string{"net/http"}},
			[][]string{{"a", "net/http/httptrace"}, {"a", "a/b", "c", "net/http"}}},
		{"allow makes exceptions to forbid",
			ImportRule{Forbid: []string{"net/http", "a"}, Allow: []string{"a/b", "net/http/httptrace"}},
			[][]string{{"a", "a/b", "c", "net/http"}}},
		{"the package itself is never forbidden", ImportRule{Forbid: []string{"a"}, Allow: []string{"a/b"}}, nil},
		{"forbid-in-parley catches parley packages that import it",
			ImportRule{ForbidInParley: []string{"net/http"}},
			[][]string{{"m/a", "net/http/httptrace"}, {"m/a", "m/b", "net/http"}}},
		{"forbid-in-parley lets other modules import it", ImportRule{ForbidInParley: []string{"fmt"}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root, graph := "a", graph
			if len(tt.rule.ForbidInParley) > 0 {
				root, graph = Module+"/a", parleyGraph
			}
			got := tt.rule.violations(root, graph)
			for _, c := range got {
				for i := range c {
					c[i] = strings.Replace(c[i], Module+"/", "m/", 1)
				}
			}
			if !slices.EqualFunc(got, tt.want, slices.Equal) {
				t.Errorf("violations %q, want %q", got, tt.want)
			}
		})
	}
}

func TestCheckImportsReadsTheRealGraph(t *testing.T) {
	// testkit stands on nothing of parley, so any package's tests may use it.
	CheckImports(t, ImportRule{Package: ".", Forbid: []string{Module}})

	// It does reach net/http, through mautrix; a rule against that fails
	// and names the chain.
	r := &recorder{TB: t}
	r.run(func() { CheckImports(r, ImportRule{Package: ".", Forbid: []string{"net/http"}}) })
	f := r.failures()
	if len(f) == 0 {
		t.Fatal("a rule against net/http passed for a package that uses mautrix")
	}
	for _, msg := range f {
		if !strings.Contains(msg, Module+"/internal/testkit -> ") || !strings.Contains(msg, "net/http") {
			t.Errorf("failure %q does not name a chain from testkit to net/http", msg)
		}
	}
}

// TestOnlyTestsImportTestkit keeps testkit, and the testing package with it,
// out of everything but tests: no package of parley imports it outside its
// _test.go files.
func TestOnlyTestsImportTestkit(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not found")
	}
	self := Module + "/internal/testkit"
	out, err := exec.Command(goTool, "list", "-e", "-f", "{{.ImportPath}}{{range .Imports}} {{.}}{{end}}", Module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	listed := 0
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		listed++
		if f[0] != self && slices.Contains(f[1:], self) {
			t.Errorf("%s imports %s outside its tests", f[0], self)
		}
	}
	if listed < 5 {
		t.Fatalf("go list printed %d packages of %s", listed, Module)
	}
}
