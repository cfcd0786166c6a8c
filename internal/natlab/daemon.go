//go:build linux

package natlab

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ClaimCode claims every lab daemon (--claim-code), so a test registers its
// first user with it.
const ClaimCode = "natlab-claim-code"

// How long a daemon may take to start, and to stop after SIGTERM.
const (
	startTimeout = 30 * time.Second
	stopTimeout  = 10 * time.Second
)

// Binary is a built parley command and what it offers: the flags of
// `parley run` and whether it reads PARLEY_TEST_PUBLIC_CIDR.
type Binary struct {
	Path      string
	flags     map[string]bool
	publicEnv bool
}

var runFlag = regexp.MustCompile(`(?m)^\s+-{1,2}([a-z][a-z0-9-]*)`)

// Inspect reads what the binary at path offers.
func Inspect(path string) (*Binary, error) {
	b := &Binary{Path: path, flags: map[string]bool{}}
	var out bytes.Buffer
	cmd := exec.Command(path, "run", "--help")
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Run() // the flag package's help exits 0 or 2; the text is what counts
	for _, m := range runFlag.FindAllStringSubmatch(out.String(), -1) {
		b.flags[m[1]] = true
	}
	if !b.flags["listen"] {
		return nil, fmt.Errorf("natlab: %s run --help lists no --listen:\n%s", path, out.String())
	}
	exe, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if bytes.Contains(exe, []byte("PARLEY_TEST_PUBLIC_CIDR")) {
		b.publicEnv = acceptsPublicEnv(path)
	}
	return b, nil
}

// acceptsPublicEnv starts the binary with PARLEY_TEST_PUBLIC_CIDR set, in
// a namespace of its own with only a loopback interface, and reports
// whether it came up (a build that knows the variable but cannot apply it
// refuses to start).
func acceptsPublicEnv(path string) bool {
	ns := fmt.Sprintf("%s%d-probe-env", Prefix, os.Getpid())
	if exec.Command("ip", "netns", "add", ns).Run() != nil {
		return false
	}
	defer deleteNS(ns, false)
	exec.Command("ip", "-n", ns, "link", "set", "lo", "up").Run()
	dir, err := os.MkdirTemp("", "natlab-probe-")
	if err != nil {
		return false
	}
	defer os.RemoveAll(dir)
	var out lockedBuffer
	cmd := exec.Command("ip", "netns", "exec", ns, path, "run", "--data", dir, "--http", "127.0.0.1:0",
		"--listen", "/ip4/127.0.0.1/tcp/0", "--no-mdns")
	cmd.Env = append(cleanEnv(), "PARLEY_TEST_PUBLIC_CIDR=100.64.0.0/10")
	cmd.Stdout = &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if cmd.Start() != nil {
		return false
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	up := waitFor(startTimeout, func() bool {
		select {
		case <-exited:
			return true
		default:
		}
		return strings.Contains(out.String(), "listening:")
	}) && strings.Contains(out.String(), "listening:")
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	<-exited
	return up
}

// cleanEnv is the test's environment without PARLEY_* variables, plus
// the public network and port mapping turned off.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PARLEY_") {
			env = append(env, kv)
		}
	}
	return append(env, "GOMAXPROCS=2", "PARLEY_PUBLIC_NETWORK=0", "PARLEY_PORT_MAP=0")
}

// HasFlag reports whether `parley run` takes --name.
func (b *Binary) HasFlag(name string) bool { return b.flags[name] }

// PublicEnv reports whether the binary reads PARLEY_TEST_PUBLIC_CIDR, the
// test-only switch that makes libp2p treat 100.64.0.0/10 as public.
func (b *Binary) PublicEnv() bool { return b.publicEnv }

// Daemon is a `parley run` process in a host's namespace.
type Daemon struct {
	Host    *Host
	Name    string
	DataDir string
	Port    int // its libp2p TCP and QUIC port

	URL        string // the client API, on the namespace's 127.0.0.1
	PeerID     string
	ServerName string
	Addrs      []string // the listening lines of its banner

	t       testing.TB
	cmd     *exec.Cmd
	stdout  lockedBuffer
	stderr  lockedBuffer
	exited  chan struct{}
	waitErr error
	stop    sync.Once
	http    *http.Client
}

// DaemonConfig says how to run one daemon.
type DaemonConfig struct {
	Bin     *Binary
	DataDir string   // "" for a new one in the test's temp dir
	Port    int      // 0 for a fresh random port
	Args    []string // more flags of `parley run`
}

// lockedBuffer is a bytes.Buffer that a process writes while a test reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// FreshPort is a port for a new daemon. Every lab namespace is new, so no
// earlier connection of the same addresses sits in TIME_WAIT; a restarted
// daemon takes a port of its own all the same.
func FreshPort() int { return 20000 + rand.IntN(40000) }

// Start runs `parley run` in the host's namespace, listening on TCP and
// QUIC at the port on every interface, with its client API on 127.0.0.1
// and no port mapping (--no-port-map where the binary has it); mDNS stays
// on unless the args say --no-mdns. It waits for the banner. A cleanup
// stops it.
func (h *Host) Start(t testing.TB, name string, cfg DaemonConfig) *Daemon {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	if cfg.Port == 0 {
		cfg.Port = FreshPort()
	}
	args := []string{"netns", "exec", h.NS, cfg.Bin.Path, "run",
		"--data", cfg.DataDir,
		"--http", "127.0.0.1:0",
		"--listen", fmt.Sprintf("/ip4/0.0.0.0/tcp/%d", cfg.Port),
		"--listen", fmt.Sprintf("/ip4/0.0.0.0/udp/%d/quic-v1", cfg.Port),
		"--claim-code", ClaimCode,
	}
	if cfg.Bin.HasFlag("no-port-map") {
		args = append(args, "--no-port-map")
	}
	args = append(args, cfg.Args...)
	d := &Daemon{Host: h, Name: name, DataDir: cfg.DataDir, Port: cfg.Port, t: t, exited: make(chan struct{}), http: h.HTTPClient()}
	d.cmd = exec.Command("ip", args...)
	// The daemon's network settings come from its flags only: no PARLEY_*
	// variable of the test's environment (bootstrap peers, relays, the
	// public network) reaches it.
	d.cmd.Env = cleanEnv()
	if strings.HasPrefix(h.Lab.Net, "100.64.") {
		d.cmd.Env = append(d.cmd.Env, "PARLEY_TEST_PUBLIC_CIDR=100.64.0.0/10")
	}
	d.cmd.Stdout, d.cmd.Stderr = &d.stdout, &d.stderr
	// Its own process group, killed with the test process if that dies.
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("natlab: start %s: %v", name, err)
	}
	go func() {
		d.waitErr = d.cmd.Wait()
		close(d.exited)
	}()
	t.Cleanup(func() {
		d.Stop()
		if t.Failed() {
			t.Logf("%s (%s) stderr:\n%s", name, h.NS, tail(d.stderr.String(), 60))
		}
	})
	ok := waitFor(startTimeout, func() bool {
		select {
		case <-d.exited:
			return true
		default:
		}
		return d.parseBanner()
	})
	select {
	case <-d.exited:
		t.Fatalf("natlab: %s exited during start-up (%v):\n%s", name, d.waitErr, d.stderr.String())
	default:
	}
	if !ok {
		t.Fatalf("natlab: %s printed no banner within %v:\n%s", name, startTimeout, d.stdout.String())
	}
	return d
}

// parseBanner reads what `parley run` prints once it is up.
func (d *Daemon) parseBanner() bool {
	out := d.stdout.String()
	var url, pid, server string
	var addrs []string
	for line := range strings.Lines(out) {
		if !strings.HasSuffix(line, "\n") {
			break
		}
		key, val, _ := strings.Cut(strings.TrimSpace(line), ":")
		val = strings.TrimSpace(val)
		switch key {
		case "app":
			url = strings.TrimSuffix(val, "/")
		case "peer id":
			pid = val
		case "server name":
			server = val
		case "listening":
			addrs = append(addrs, val)
		}
	}
	if url == "" || pid == "" || len(addrs) == 0 {
		return false
	}
	d.URL, d.PeerID, d.ServerName, d.Addrs = url, pid, server, addrs
	return true
}

// Addr is the daemon's TCP address on its host's IP, ending in /p2p/<id>:
// what a --relay or --bootstrap flag takes.
func (d *Daemon) Addr() string {
	return fmt.Sprintf("/ip4/%s/tcp/%d/p2p/%s", d.Host.IP, d.Port, d.PeerID)
}

// Stop ends the daemon: SIGTERM, then SIGKILL to its process group after
// stopTimeout. Later calls do nothing.
func (d *Daemon) Stop() {
	d.stop.Do(func() {
		select {
		case <-d.exited:
			return
		default:
		}
		syscall.Kill(d.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-d.exited:
		case <-time.After(stopTimeout):
			syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
			<-d.exited
			d.t.Logf("natlab: %s did not stop within %v of SIGTERM; killed", d.Name, stopTimeout)
		}
		d.http.CloseIdleConnections()
	})
}

// Kill ends the daemon at once, as a crash would.
func (d *Daemon) Kill() {
	d.stop.Do(func() {
		syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
		<-d.exited
		d.http.CloseIdleConnections()
	})
}

// Stderr is what the daemon has logged so far.
func (d *Daemon) Stderr() string { return d.stderr.String() }

// HTTPClient is the client for the daemon's API (through its namespace).
func (d *Daemon) HTTPClient() *http.Client { return d.http }

// Status is the daemon's /_parley/v1/status, decoded.
func (d *Daemon) Status(ctx context.Context) (map[string]any, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.URL+"/_parley/v1/status", nil)
	if err != nil {
		return nil, err
	}
	resp, err := d.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("natlab: %s status: %w", d.Name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("natlab: %s status: %s", d.Name, resp.Status)
	}
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		return nil, fmt.Errorf("natlab: %s status: %w", d.Name, err)
	}
	return m, nil
}

// Lookup reads a value from decoded JSON by its path of keys, e.g.
// Lookup(status, "network", "member_relay", "refused"); nil if absent.
func Lookup(v any, path ...string) any {
	for _, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func tail(s string, lines int) string {
	all := strings.Split(s, "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}
