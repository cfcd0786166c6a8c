package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/parley-p2p/parley/internal/testkit"
)

// testVersion is stamped into the test binary with -ldflags, so the tests
// also check that the build-time version reaches `parley version`.
const testVersion = "v0.0.0-cmdtest"

// How long a parley process may take to start, to fail, or to stop after
// SIGTERM before the test gives up on it.
const (
	startTimeout = 20 * time.Second
	exitTimeout  = 20 * time.Second
	stopTimeout  = 15 * time.Second
)

// parley is the command under test, built at most once per run. -s -w
// (no symbol table, no DWARF) roughly halves the link time; panics still
// print file and line.
var parley = testkit.Binary{Name: "parley", Pkg: ".", Flags: []string{
	"-ldflags", "-s -w -X github.com/parley-p2p/parley/node.Version=" + testVersion,
}}

func TestMain(m *testing.M) {
	code := m.Run()
	parley.Remove()
	os.Exit(code)
}

// parleyProc is a `parley run` process.
type parleyProc struct {
	t      *testing.T
	name   string
	cmd    *exec.Cmd
	stdout testkit.Buffer
	stderr testkit.Buffer

	exited  chan struct{} // closed once the process has been waited for
	waitErr error         // valid once exited is closed

	stopOnce  sync.Once
	stopErr   error
	checkOnce sync.Once
}

// startInfo is what `parley run` prints once it is up.
type startInfo struct {
	Version    string
	URL        string // http://127.0.0.1:PORT, without the trailing slash
	ClaimCode  string // while the node has no owner
	ServerName string
	PeerID     string
	Addrs      []string
}

// startParley starts `parley run` with args. A cleanup stops it (SIGTERM,
// then SIGKILL after stopTimeout), fails the test unless it exited 0 after
// saying "shutting down", and logs its output if the test failed.
func startParley(t *testing.T, name string, args ...string) *parleyProc {
	t.Helper()
	p := &parleyProc{t: t, name: name, exited: make(chan struct{})}
	p.cmd = exec.Command(parley.Path(t), append([]string{"run"}, args...)...)
	p.cmd.Stdout = &p.stdout
	p.cmd.Stderr = &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.stopAndCheck()
		if t.Failed() {
			t.Logf("%s stdout:\n%s", name, p.stdout.String())
			t.Logf("%s stderr:\n%s", name, p.stderr.String())
		}
	})
	return p
}

// waitStarted waits until the process has printed its app URL and a
// listening address, and returns what it printed.
func (p *parleyProc) waitStarted() startInfo {
	p.t.Helper()
	deadline := time.Now().Add(startTimeout)
	for {
		if info, ok := parseStartup(p.stdout.String()); ok {
			return info
		}
		select {
		case <-p.exited:
			p.t.Fatalf("%s exited during start-up (%v); stderr:\n%s", p.name, p.waitErr, p.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s did not print its addresses within %v; stdout:\n%s", p.name, startTimeout, p.stdout.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// parseStartup reads the banner of `parley run`; ok once the banner is
// complete, which is when at least one listening line has been printed.
func parseStartup(out string) (info startInfo, ok bool) {
	for _, line := range strings.SplitAfter(out, "\n") {
		if !strings.HasSuffix(line, "\n") {
			break // still being written
		}
		line = strings.TrimSpace(line)
		switch key, val, _ := strings.Cut(line, ":"); key {
		case "app":
			info.URL = strings.TrimSuffix(strings.TrimSpace(val), "/")
		case "claim":
			_, info.ClaimCode, _ = strings.Cut(val, "#/claim/")
		case "server name":
			info.ServerName = strings.TrimSpace(val)
		case "peer id":
			info.PeerID = strings.TrimSpace(val)
		case "listening":
			info.Addrs = append(info.Addrs, strings.TrimSpace(val))
		default:
			if v, found := strings.CutPrefix(line, "parley "); found {
				info.Version = v
			}
		}
	}
	return info, info.URL != "" && len(info.Addrs) > 0
}

// stop sends SIGTERM and waits for the process to exit, killing it after
// stopTimeout. It reports an error unless the process exited 0 in
// response to the signal and printed "shutting down". Only the first call
// does anything; later ones return the same result.
func (p *parleyProc) stop() error {
	p.stopOnce.Do(func() {
		select {
		case <-p.exited:
			p.stopErr = fmt.Errorf("exited before it was stopped: %v", p.waitErr)
			return
		default:
		}
		start := time.Now()
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			p.stopErr = fmt.Errorf("SIGTERM: %v", err)
		}
		select {
		case <-p.exited:
		case <-time.After(stopTimeout):
			p.cmd.Process.Kill()
			<-p.exited
			p.stopErr = fmt.Errorf("still running %v after SIGTERM; killed", stopTimeout)
			return
		}
		p.t.Logf("%s stopped in %v", p.name, time.Since(start).Round(time.Millisecond))
		var errs []error
		if p.waitErr != nil {
			errs = append(errs, fmt.Errorf("exit after SIGTERM: %v", p.waitErr))
		}
		if !strings.Contains(p.stdout.String(), "\nshutting down\n") {
			errs = append(errs, errors.New(`did not print "shutting down"`))
		}
		p.stopErr = errors.Join(errs...)
	})
	return p.stopErr
}

// kill ends the process with SIGKILL, as a crash, a power cut or the OOM
// killer would, and waits until it has exited. The process gets no chance
// to flush or close anything; its cleanup then expects nothing more of it.
// Calling kill after stop, or twice, does nothing.
func (p *parleyProc) kill() {
	p.stopOnce.Do(func() {
		if err := p.cmd.Process.Kill(); err != nil {
			p.stopErr = fmt.Errorf("SIGKILL: %v", err)
		}
		<-p.exited
		p.t.Logf("%s killed", p.name)
	})
}

// stopAndCheck stops the process and fails the test (once) if it did not
// shut down cleanly. It is safe to call from several goroutines.
func (p *parleyProc) stopAndCheck() {
	err := p.stop()
	p.checkOnce.Do(func() {
		if err != nil {
			p.t.Errorf("%s: %v", p.name, err)
		}
	})
}

// stopAll stops the processes at the same time and checks each one.
func stopAll(ps ...*parleyProc) {
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Go(p.stopAndCheck)
	}
	wg.Wait()
}

// runResult is the outcome of a parley process that ran to its end.
type runResult struct {
	stdout, stderr string
	code           int
}

// runParley runs the binary with args and waits for it to exit on its
// own, failing the test if it takes longer than exitTimeout.
func runParley(t *testing.T, args ...string) runResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), exitTimeout)
	defer cancel()
	var stdout, stderr testkit.Buffer
	cmd := exec.CommandContext(ctx, parley.Path(t), args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("parley %s did not exit within %v\nstdout:\n%s\nstderr:\n%s",
			strings.Join(args, " "), exitTimeout, stdout.String(), stderr.String())
	}
	res := runResult{stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		res.code = exit.ExitCode()
	case err != nil:
		t.Fatalf("parley %s: %v", strings.Join(args, " "), err)
	}
	return res
}
