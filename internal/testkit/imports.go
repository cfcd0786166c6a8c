package testkit

import (
	"bufio"
	"bytes"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// Module is parley's module path.
const Module = "github.com/parley-p2p/parley"

// ImportRule says what one package must not depend on. A pattern names a
// package and every package under it: "net/http" covers net/http/httptrace,
// Module covers all of parley. The package itself is never forbidden.
type ImportRule struct {
	// Package is the package the rule is about, as the go tool names it:
	// an import path, or "." for the package whose test runs (go test runs
	// a test in its package's directory).
	Package string
	// Forbid are the packages Package must not import, directly or through
	// any chain of imports.
	Forbid []string
	// Allow are exceptions to Forbid: Forbid: {Module}, Allow:
	// {Module + "/rooms"} lets a package use rooms and nothing else of
	// parley.
	Allow []string
	// ForbidInParley are packages that neither Package nor any package of
	// parley it depends on may import, though other modules in between may:
	// badger reaches net/http through expvar, and that is badger's business,
	// not a sign that the store serves HTTP.
	ForbidInParley []string
}

// CheckImports fails the test for each package that a rule's package
// depends on (its non-test imports, transitively, as `go list -deps` sees
// them) and that the rule forbids, naming the chain of imports that leads
// there. It skips the test when the go tool is not installed.
//
// To give a package a rule, add a deps_test.go to it that calls
// testkit.CheckImports(t, testkit.ImportRule{Package: ".", Forbid: ...}).
func CheckImports(t testing.TB, rules ...ImportRule) {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not found")
	}
	for _, r := range rules {
		root, graph, err := importGraph(goTool, r.Package)
		if err != nil {
			t.Fatalf("import rule for %s: %v", r.Package, err)
		}
		for _, chain := range r.violations(root, graph) {
			t.Errorf("%s must not depend on %s, and does: %s", root, chain[len(chain)-1], strings.Join(chain, " -> "))
		}
	}
}

// importGraph lists pkg and its dependencies, and returns pkg's import path
// and each listed package's direct imports.
func importGraph(goTool, pkg string) (string, map[string][]string, error) {
	cmd := exec.Command(goTool, "list", "-deps", "-f", "{{.ImportPath}}{{range .Imports}} {{.}}{{end}}", pkg)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", nil, fmt.Errorf("go list -deps %s: %w\n%s", pkg, err, strings.TrimSpace(stderr.String()))
	}
	graph := map[string][]string{}
	root := ""
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		graph[f[0]] = f[1:]
		root = f[0] // go list -deps prints the named package last
	}
	if err := sc.Err(); err != nil {
		return "", nil, err
	}
	if root == "" {
		return "", nil, fmt.Errorf("go list -deps %s printed no packages", pkg)
	}
	return root, graph, nil
}

// violations walks the graph breadth first from root and returns, for each
// forbidden package it reaches, the shortest chain of imports from root. It
// does not walk on past a forbidden package, so one bad import is one
// failure, not one for each of its own dependencies.
func (r ImportRule) violations(root string, graph map[string][]string) [][]string {
	from := map[string]string{root: ""}
	chain := func(p string) []string {
		var c []string
		for q := p; q != ""; q = from[q] {
			c = append(c, q)
		}
		slices.Reverse(c)
		return c
	}
	queue := []string{root}
	var bad [][]string
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if p != root && r.forbids(p) {
			bad = append(bad, chain(p))
			continue // what it imports in turn is its own business
		}
		if p == root || covers(Module, p) {
			for _, q := range graph[p] {
				if slices.ContainsFunc(r.ForbidInParley, func(f string) bool { return covers(f, q) }) {
					bad = append(bad, append(chain(p), q))
				}
			}
		}
		for _, q := range graph[p] {
			if _, seen := from[q]; !seen {
				from[q] = p
				queue = append(queue, q)
			}
		}
	}
	return bad
}

func (r ImportRule) forbids(pkg string) bool {
	return slices.ContainsFunc(r.Forbid, func(f string) bool { return covers(f, pkg) }) &&
		!slices.ContainsFunc(r.Allow, func(a string) bool { return covers(a, pkg) })
}

// covers reports whether pattern names pkg or a package above it.
func covers(pattern, pkg string) bool {
	pattern = strings.TrimSuffix(pattern, "/")
	return pkg == pattern || strings.HasPrefix(pkg, pattern+"/")
}
