package main

import (
	"bytes"
	"encoding/json"
	"math"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/parley-p2p/parley/node"
	"github.com/parley-p2p/parley/p2p"
)

func TestCommands(t *testing.T) {
	for _, tc := range []struct {
		name       string
		args       []string
		wantStdout string // exact, if set
		wantErr    string // substring of the returned error; empty means success
		wantStderr string // substring of stderr
	}{
		{name: "version prints the version", args: []string{"version"}, wantStdout: "parley " + node.Version + "\n"},
		{name: "--version prints the version", args: []string{"--version"}, wantStdout: "parley " + node.Version + "\n"},
		{name: "help prints the usage", args: []string{"help"}, wantStdout: usage},
		{name: "no command is an error", args: nil, wantErr: "no command given", wantStderr: "Usage:"},
		{name: "an unknown command is an error naming it", args: []string{"bogus"}, wantErr: `unknown command "bogus"`, wantStderr: "Usage:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(tc.args, &stdout, &stderr)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("run(%q) = %v", tc.args, err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("run(%q) = %v, want an error containing %q", tc.args, err, tc.wantErr)
			}
			if tc.wantStdout != "" && stdout.String() != tc.wantStdout {
				t.Errorf("stdout = %q, want %q", stdout.String(), tc.wantStdout)
			}
			if !strings.Contains(stderr.String(), tc.wantStderr) {
				t.Errorf("stderr = %q, want it to contain %q", stderr.String(), tc.wantStderr)
			}
		})
	}
}

func TestIDCreatesAStableKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "fresh")
	idLine := regexp.MustCompile(`^server name: [0-9a-f]{64}\npeer id:     12D3Koo[1-9A-HJ-NP-Za-km-z]{45}\n$`)

	var first string
	for i := range 2 {
		var stdout, stderr bytes.Buffer
		if err := run([]string{"id", "--data", dir}, &stdout, &stderr); err != nil {
			t.Fatalf("parley id, call %d: %v (stderr %q)", i+1, err, stderr.String())
		}
		if !idLine.MatchString(stdout.String()) {
			t.Fatalf("parley id printed %q", stdout.String())
		}
		if i == 0 {
			first = stdout.String()
		} else if stdout.String() != first {
			t.Errorf("parley id changed from %q to %q", first, stdout.String())
		}
	}

	fi, err := os.Stat(filepath.Join(dir, "node.key"))
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
		t.Errorf("node.key has mode %v, want 0600", fi.Mode().Perm())
	}
}

func TestIDFailsOnAFileForADataDir(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if err := run([]string{"id", "--data", filepath.Join(file, "data")}, &stdout, &stderr); err == nil {
		t.Fatalf("parley id under a regular file succeeded: %q", stdout.String())
	}
}

// TestRunFailsWithOneLine starts the built binary with settings it cannot
// run with: each must exit 1 at once with a single `parley: ...` line, not
// a stack trace, and print nothing on stdout.
func TestRunFailsWithOneLine(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the parley binary")
	}
	for _, tc := range []struct {
		name    string
		flags   func(t *testing.T) runFlags
		wantErr string
	}{
		{
			name:    "a malformed listen multiaddr",
			flags:   func(t *testing.T) runFlags { return runFlags{listen: "127.0.0.1:4001"} },
			wantErr: `listen address "127.0.0.1:4001"`,
		},
		{
			name: "a bootstrap address without /p2p/",
			flags: func(t *testing.T) runFlags {
				return runFlags{extra: []string{"--bootstrap", "/ip4/127.0.0.1/tcp/4001"}}
			},
			wantErr: `bootstrap address "/ip4/127.0.0.1/tcp/4001"`,
		},
		{
			name:    "an HTTP port in use",
			flags:   func(t *testing.T) runFlags { return runFlags{http: holdPort(t)} },
			wantErr: "address already in use",
		},
		{
			name: "a libp2p port in use",
			flags: func(t *testing.T) runFlags {
				_, port, _ := net.SplitHostPort(holdPort(t))
				return runFlags{listen: "/ip4/127.0.0.1/tcp/" + port}
			},
			wantErr: "address already in use",
		},
		{
			// libp2p binds TCP with SO_REUSEPORT, so only a check before
			// binding stops two nodes from sharing the port.
			name: "a libp2p port in use by another parley",
			flags: func(t *testing.T) runFlags {
				other := startParley(t, "other", nodeArgs(t.TempDir())...).waitStarted()
				listen, _, _ := strings.Cut(other.Addrs[0], "/p2p/")
				return runFlags{listen: listen}
			},
			wantErr: "address already in use",
		},
		{
			name:    "a stray argument",
			flags:   func(t *testing.T) runFlags { return runFlags{extra: []string{"now"}} },
			wantErr: `unexpected argument "now"`,
		},
		{
			name:    "an unknown log level",
			flags:   func(t *testing.T) runFlags { return runFlags{extra: []string{"--log-level", "loud"}} },
			wantErr: "--log-level",
		},
		{
			name:    "a negative memory limit",
			flags:   func(t *testing.T) runFlags { return runFlags{extra: []string{"--memory-limit-mb", "-1"}} },
			wantErr: "--memory-limit-mb",
		},
		{
			name: "a data dir under a regular file",
			flags: func(t *testing.T) runFlags {
				file := filepath.Join(t.TempDir(), "file")
				if err := os.WriteFile(file, nil, 0o600); err != nil {
					t.Fatal(err)
				}
				return runFlags{data: filepath.Join(file, "data")}
			},
			wantErr: "not a directory",
		},
		{
			name: "a data dir anyone can write to",
			flags: func(t *testing.T) runFlags {
				dir := filepath.Join(t.TempDir(), "data")
				if err := os.Mkdir(dir, 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(dir, 0o777); err != nil {
					t.Fatal(err)
				}
				return runFlags{data: dir}
			},
			wantErr: "writable by others",
		},
		{
			name: "a data dir in use by another parley",
			flags: func(t *testing.T) runFlags {
				dir := t.TempDir()
				startParley(t, "other", nodeArgs(dir)...).waitStarted()
				return runFlags{data: dir}
			},
			wantErr: "Another process is using this Badger database",
		},
	} {
		t.Run("run fails on "+tc.name, func(t *testing.T) {
			t.Parallel()
			res := runParley(t, tc.flags(t).args(t)...)
			if res.code != 1 {
				t.Errorf("exit status %d, want 1", res.code)
			}
			if res.stdout != "" {
				t.Errorf("stdout = %q, want nothing", res.stdout)
			}
			line, rest, _ := strings.Cut(res.stderr, "\n")
			if !strings.HasPrefix(line, "parley: ") || rest != "" {
				t.Errorf("stderr is not one `parley: ...` line:\n%s", res.stderr)
			}
			if !strings.Contains(line, tc.wantErr) {
				t.Errorf("error %q does not mention %q", line, tc.wantErr)
			}
			if strings.Contains(res.stderr, "goroutine ") || strings.Contains(res.stderr, "panic") {
				t.Errorf("stderr has a stack trace:\n%s", res.stderr)
			}
		})
	}
}

// runFlags are the flags of `parley run` that the failure cases vary; an
// empty field takes the value of a runnable node on loopback.
type runFlags struct {
	http, listen, data string
	extra              []string
}

func (f runFlags) args(t *testing.T) []string {
	if f.http == "" {
		f.http = "127.0.0.1:0"
	}
	if f.listen == "" {
		f.listen = "/ip4/127.0.0.1/tcp/0"
	}
	if f.data == "" {
		f.data = t.TempDir()
	}
	return append([]string{"run", "--data", f.data, "--http", f.http, "--listen", f.listen, "--no-mdns", "--no-port-map"}, f.extra...)
}

// holdPort listens on a loopback TCP port for the rest of the test and
// returns its address.
func holdPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String()
}

func TestMemoryLimit(t *testing.T) {
	for _, tc := range []struct {
		name      string
		mb        int64
		explicit  bool
		env       string
		wantLimit int64
		wantSet   bool
		wantErr   bool
	}{
		{name: "the default applies", mb: defaultMemoryLimitMB, wantLimit: defaultMemoryLimitMB << 20, wantSet: true},
		{name: "GOMEMLIMIT stands against the default", mb: defaultMemoryLimitMB, env: "1GiB"},
		{name: "the flag overrides GOMEMLIMIT", mb: 64, explicit: true, env: "1GiB", wantLimit: 64 << 20, wantSet: true},
		{name: "0 lifts the limit", explicit: true, env: "1GiB", wantLimit: math.MaxInt64, wantSet: true},
		{name: "a negative limit is refused", mb: -1, explicit: true, wantErr: true},
		{name: "a limit past int64 is refused", mb: math.MaxInt64 >> 19, explicit: true, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			limit, set, err := memoryLimit(tc.mb, tc.explicit, tc.env)
			if (err != nil) != tc.wantErr {
				t.Fatalf("error %v, want one: %v", err, tc.wantErr)
			}
			if limit != tc.wantLimit || set != tc.wantSet {
				t.Errorf("limit %d (set %v), want %d (set %v)", limit, set, tc.wantLimit, tc.wantSet)
			}
		})
	}
}

const (
	relayA = "/ip4/203.0.113.7/tcp/4001/p2p/12D3KooWGzh8nmRhgQxQxDtDb5sHDdDB6jNZLXzS5o4x6ofbi9Yi"
	relayB = "/dns4/relay.example.org/udp/4001/quic-v1/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN"
)

// clearNetEnv unsets the environment's network settings for the test.
func clearNetEnv(t *testing.T) {
	for _, k := range []string{"PARLEY_BOOTSTRAP", "PARLEY_RELAYS", "PARLEY_PUBLIC_NETWORK", "PARLEY_PORT_MAP", "PARLEY_TEST_PUBLIC_CIDR"} {
		t.Setenv(k, "")
	}
}

// printNetworkConfig runs `parley run --print-network-config` with the
// data dir and flags given, and returns the settings it prints.
func printNetworkConfig(t *testing.T, dir string, flags ...string) (node.NetConfig, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := run(append([]string{"run", "--data", dir, "--print-network-config"}, flags...), &stdout, &stderr)
	if err != nil {
		return node.NetConfig{}, err
	}
	var c node.NetConfig
	dec := json.NewDecoder(&stdout)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("printed %q: %v", stdout.String(), err)
	}
	return c, nil
}

func TestRunNetworkSettings(t *testing.T) {
	clearNetEnv(t)
	dir := t.TempDir()

	got, err := printNetworkConfig(t, dir)
	if err != nil {
		t.Fatal(err)
	}
	want := node.NetConfig{
		Bootstrap: []string{}, Relays: []string{}, Listen: p2p.DefaultListenAddrs,
		PublicNetwork: new(false), PortMap: new(true), MemberRelay: new(true), MDNS: new(true),
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("with nothing set: %+v, want the defaults %+v", got, want)
	}

	file := `{"bootstrap": ["` + relayA + `"], "relays": ["` + relayA + `"], "port_map": false, "mdns": false,
		"listen": ["/ip4/0.0.0.0/tcp/4002"]}`
	if err := os.WriteFile(filepath.Join(dir, node.NetConfigFile), []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PARLEY_RELAYS", relayB)
	t.Setenv("PARLEY_PUBLIC_NETWORK", "1")
	got, err = printNetworkConfig(t, dir, "--relay", relayA, "--relay", relayB, "--no-member-relay", "--no-port-map=false")
	if err != nil {
		t.Fatal(err)
	}
	want = node.NetConfig{
		Bootstrap:     []string{relayA},         // the file's
		Relays:        []string{relayA, relayB}, // the flags', replacing the environment's
		Listen:        []string{"/ip4/0.0.0.0/tcp/4002"},
		PublicNetwork: new(true),  // the environment's
		PortMap:       new(true),  // the flag's, over the file's
		MemberRelay:   new(false), // the flag's
		MDNS:          new(false), // the file's
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("file, environment and flags: %+v, want %+v", got, want)
	}

	got, err = printNetworkConfig(t, dir, "--public-network=false", "--no-mdns=false")
	if err != nil {
		t.Fatal(err)
	}
	if *got.PublicNetwork || !*got.MDNS || !reflect.DeepEqual(got.Relays, []string{relayB}) {
		t.Fatalf("flags turning the environment's and the file's settings back: %+v", got)
	}
}

func TestRunRefusesBadNetworkSettings(t *testing.T) {
	for _, tc := range []struct {
		name    string
		file    string
		env     map[string]string
		flags   []string
		wantErr []string
	}{
		{name: "an unknown key in the file", file: `{"relay": []}`, wantErr: []string{node.NetConfigFile, `unknown keys "relay"`}},
		{name: "a malformed address in the file", file: `{"relays": ["/ip4/1.2.3.4/tcp/x"]}`, wantErr: []string{node.NetConfigFile, `"/ip4/1.2.3.4/tcp/x"`}},
		{name: "a malformed relay in the environment", env: map[string]string{"PARLEY_RELAYS": "relay.example.org"}, wantErr: []string{"PARLEY_RELAYS", `"relay.example.org"`}},
		{name: "a switch in the environment that is neither 1 nor 0", env: map[string]string{"PARLEY_PORT_MAP": "off"}, wantErr: []string{"PARLEY_PORT_MAP", `"off"`}},
		{name: "a relay flag without its peer id", flags: []string{"--relay", "/ip4/203.0.113.7/tcp/4001"}, wantErr: []string{"--relay", `"/ip4/203.0.113.7/tcp/4001"`}},
		{name: "a public range other than the lab's", env: map[string]string{"PARLEY_TEST_PUBLIC_CIDR": "10.0.0.0/8"}, flags: []string{"--memory-limit-mb", "0"}, wantErr: []string{"PARLEY_TEST_PUBLIC_CIDR"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clearNetEnv(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			dir := t.TempDir()
			if tc.file != "" {
				if err := os.WriteFile(filepath.Join(dir, node.NetConfigFile), []byte(tc.file), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			var stdout, stderr bytes.Buffer
			args := append([]string{"run", "--data", dir, "--http", "127.0.0.1:0", "--listen", "/ip4/127.0.0.1/tcp/0", "--no-mdns", "--no-port-map"}, tc.flags...)
			err := run(args, &stdout, &stderr)
			if err == nil {
				t.Fatalf("no error; stdout %q", stdout.String())
			}
			for _, part := range tc.wantErr {
				if !strings.Contains(err.Error(), part) {
					t.Errorf("error %q does not name %s", err, part)
				}
			}
			if _, statErr := os.Stat(filepath.Join(dir, "node.key")); statErr == nil {
				t.Errorf("the node started (it made its key) despite the error")
			}
		})
	}
}
