package node

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMatrixJSSDKScenario drives two nodes with matrix-js-sdk, the
// library Element is built on, through testdata/jssdk/scenario.mjs:
// register, sync, create, invite, join, messages both ways, typing,
// receipts, and paging back to m.room.create. It needs Node.js and
// matrix-js-sdk, which .ci/run installs; PARLEY_JSSDK names the
// directory holding its node_modules.
func TestMatrixJSSDKScenario(t *testing.T) {
	sdkDir := os.Getenv("PARLEY_JSSDK")
	if sdkDir == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("CI is set but PARLEY_JSSDK is not: .ci/run installs matrix-js-sdk and sets it")
		}
		t.Skip("matrix-js-sdk is not installed: .ci/run installs it, or run " +
			"`npm install --prefix DIR matrix-js-sdk@37.5.0` and set PARLEY_JSSDK=DIR")
	}
	nodeBin, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("PARLEY_JSSDK is set but Node.js is not installed: %v", err)
	}
	modules := filepath.Join(sdkDir, "node_modules")
	if _, err := os.Stat(filepath.Join(modules, "matrix-js-sdk", "package.json")); err != nil {
		t.Fatalf("PARLEY_JSSDK=%s holds no matrix-js-sdk: %v", sdkDir, err)
	}
	// The script resolves "matrix-js-sdk" from its own directory.
	work := t.TempDir()
	script, err := os.ReadFile(filepath.Join("testdata", "jssdk", "scenario.mjs"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "scenario.mjs"), script, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(modules, filepath.Join(work, "node_modules")); err != nil {
		t.Fatal(err)
	}

	a := newTestNode(t, testOpts{})
	b := newTestNode(t, testOpts{bootstrap: []*testNode{a}})

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, nodeBin, "scenario.mjs")
	cmd.Dir = work
	cmd.Env = append(os.Environ(),
		"PARLEY_A_URL=http://"+a.HTTPAddr(), "PARLEY_A_CODE="+a.ClaimCode(),
		"PARLEY_B_URL=http://"+b.HTTPAddr(), "PARLEY_B_CODE="+b.ClaimCode(),
	)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout // one stream, in order
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var steps []string
	var failure string
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		t.Log(line)
		switch {
		case strings.HasPrefix(line, "step "):
			steps = append(steps, strings.TrimPrefix(line, "step "))
		case strings.HasPrefix(line, "FAIL "):
			failure = line
		}
	}
	err = cmd.Wait()
	if failure != "" || err != nil {
		t.Fatalf("matrix-js-sdk scenario failed (%v): %s", err, failure)
	}
	if len(steps) == 0 || steps[len(steps)-1] != "done" {
		t.Fatalf("the scenario stopped after steps %v without saying done", steps)
	}
}
