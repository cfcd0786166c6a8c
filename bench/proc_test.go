package bench

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/parley-p2p/parley/internal/testkit"
)

// parley is the parley command, built at most once per run.
var parley = testkit.Binary{Name: "parley", Pkg: "../cmd/parley"}

func TestMain(m *testing.M) {
	code := m.Run()
	parley.Remove()
	os.Exit(code)
}

// proc is a `parley run` child process.
type proc struct {
	cmd     *exec.Cmd
	out     testkit.Buffer
	errOut  testkit.Buffer
	started time.Time
	exited  chan struct{}
	url     string   // the client API, ending in "/"
	addrs   []string // libp2p addresses ending in /p2p/<id>
	ready   time.Duration
}

// startProc runs `parley run` on dir with the benchmark's claim code and
// waits until its client API answers; ready is the time from exec to that
// first answer. The benchmark's end stops it.
func startProc(tb testing.TB, dir string, bootstrap ...string) *proc {
	tb.Helper()
	args := []string{"run", "--data", dir, "--http", "127.0.0.1:0",
		"--listen", "/ip4/127.0.0.1/tcp/0", "--no-mdns", "--claim-code", claimCode,
		"--min-free-mb", "0", "--log-level", "warn"}
	for _, b := range bootstrap {
		args = append(args, "--bootstrap", b)
	}
	p := &proc{exited: make(chan struct{})}
	p.cmd = exec.Command(parley.Path(tb), args...)
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.errOut
	p.started = time.Now()
	if err := p.cmd.Start(); err != nil {
		tb.Fatalf("start parley: %v", err)
	}
	go func() { p.cmd.Wait(); close(p.exited) }()
	tb.Cleanup(p.stop)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		select {
		case <-p.exited:
			tb.Fatalf("parley exited during start-up:\n%s\n%s", p.out.String(), p.errOut.String())
		default:
		}
		if time.Now().After(deadline) {
			tb.Fatalf("parley did not answer within 2 minutes:\n%s\n%s", p.out.String(), p.errOut.String())
		}
		if p.url == "" {
			p.parseBanner()
		}
		if p.url != "" && answers(p.url) {
			p.ready = time.Since(p.started)
			p.parseBanner() // the listening lines follow the URL
			return p
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// parseBanner reads the URL and listening addresses `parley run` prints.
func (p *proc) parseBanner() {
	p.addrs = nil
	for line := range strings.Lines(p.out.String()) {
		if !strings.HasSuffix(line, "\n") {
			break
		}
		key, val, _ := strings.Cut(strings.TrimSpace(line), ":")
		switch key {
		case "app":
			p.url = strings.TrimSpace(val)
		case "listening":
			p.addrs = append(p.addrs, strings.TrimSpace(val))
		}
	}
}

// answers reports whether the client API at url answers /versions.
func answers(url string) bool {
	c := http.Client{Transport: transport, Timeout: time.Second}
	resp, err := c.Get(url + "_matrix/client/versions")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// rssMB reads the process's resident memory (VmRSS) and its peak (VmHWM)
// in MiB from /proc, and of the resident memory what is anonymous (the
// heap, stacks, Badger's arenas and caches) and what is file pages
// mapped from the data dir (Badger's tables and value log: the kernel's
// page cache, which it reclaims under pressure).
func (p *proc) rssMB() (rss, hwm, anon, file float64) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0, 0, 0, 0
	}
	for line := range strings.Lines(string(raw)) {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			continue
		}
		switch f[0] {
		case "VmRSS:":
			rss = kb / 1024
		case "VmHWM:":
			hwm = kb / 1024
		case "RssAnon:":
			anon = kb / 1024
		case "RssFile:":
			file = kb / 1024
		}
	}
	return rss, hwm, anon, file
}

// stop ends the process with SIGTERM (SIGKILL after 30 s) and waits.
func (p *proc) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
	}
}

// waitAnswers is for an in-process node: it waits until url answers.
func waitAnswers(tb testing.TB, ctx context.Context, url string) {
	tb.Helper()
	waitUntil(tb, time.Minute, "the client API to answer", func() bool { return ctx.Err() == nil && answers(url) })
}
