package testkit

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"
)

// Binary is a Go command that tests run as child processes: built with the
// go that runs the tests, the first time a test asks for it, into a
// temporary directory that Remove deletes (call it from TestMain after
// m.Run). A failed build fails every test that asks.
type Binary struct {
	Name  string   // its file name
	Pkg   string   // the package to build, as `go build` takes it
	Flags []string // more `go build` flags

	once sync.Once
	dir  string
	path string
	err  error
}

// Path builds the command if no test has yet, and returns its path.
func (b *Binary) Path(tb testing.TB) string {
	tb.Helper()
	b.once.Do(func() {
		b.dir, b.err = os.MkdirTemp("", "parley-bin-")
		if b.err != nil {
			return
		}
		goTool := "go"
		if root := runtime.GOROOT(); root != "" {
			goTool = filepath.Join(root, "bin", "go")
		}
		path := filepath.Join(b.dir, b.Name)
		if runtime.GOOS == "windows" {
			path += ".exe"
		}
		args := append(append([]string{"build"}, b.Flags...), "-o", path, b.Pkg)
		start := time.Now()
		if out, err := exec.Command(goTool, args...).CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build %s: %v\n%s", b.Pkg, err, out)
			return
		}
		tb.Logf("built %s in %v", b.Pkg, time.Since(start).Round(time.Millisecond))
		b.path = path
	})
	if b.err != nil {
		tb.Fatal(b.err)
	}
	return b.path
}

// Remove deletes the built command, if any.
func (b *Binary) Remove() {
	if b.dir != "" {
		os.RemoveAll(b.dir)
	}
}
