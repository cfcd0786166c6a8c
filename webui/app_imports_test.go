package webui_test

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestAppHasNoImportCycles keeps the web app's module graph a tree of
// arrows that point one way: state.js navigates through a bus, not by
// importing the router, and no view imports one that imports it back.
// (Dynamic import() is not counted.)
func TestAppHasNoImportCycles(t *testing.T) {
	files, err := filepath.Glob("app/*.js")
	if err != nil || len(files) == 0 {
		t.Fatalf("no app modules found: %v", err)
	}
	importRe := regexp.MustCompile(`(?m)^\s*import\s[^;]*?from\s+"\./([^"]+)"`)
	graph := map[string][]string{}
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Base(f)
		graph[name] = nil
		for _, m := range importRe.FindAllStringSubmatch(string(src), -1) {
			graph[name] = append(graph[name], m[1])
		}
	}
	if !slices.Contains(graph["router.js"], "state.js") || !slices.Contains(graph["app.js"], "router.js") {
		t.Fatalf("the import parser missed known imports: %v", graph)
	}
	// Depth-first search; a grey node met again closes a cycle.
	const white, grey, black = 0, 1, 2
	color := map[string]int{}
	var stack []string
	var cycles []string
	var visit func(string)
	visit = func(n string) {
		color[n] = grey
		stack = append(stack, n)
		for _, m := range graph[n] {
			switch color[m] {
			case grey:
				i := slices.Index(stack, m)
				cycles = append(cycles, strings.Join(append(slices.Clone(stack[i:]), m), " -> "))
			case white:
				visit(m)
			}
		}
		stack = stack[:len(stack)-1]
		color[n] = black
	}
	names := make([]string, 0, len(graph))
	for n := range graph {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if color[n] == white {
			visit(n)
		}
	}
	if len(cycles) > 0 {
		t.Errorf("the app's modules import in a cycle:\n%s", strings.Join(cycles, "\n"))
	}
}
