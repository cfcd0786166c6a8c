package node

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const (
	relayA = "/ip4/203.0.113.7/tcp/4001/p2p/12D3KooWGzh8nmRhgQxQxDtDb5sHDdDB6jNZLXzS5o4x6ofbi9Yi"
	relayB = "/dns4/relay.example.org/udp/4001/quic-v1/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN"
)

func writeNetConfig(t *testing.T, body string, mode os.FileMode) string {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, NetConfigFile)
	if err := os.WriteFile(path, []byte(body), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // past the umask
		t.Fatal(err)
	}
	return dir
}

func TestNetworkConfigFile(t *testing.T) {
	for _, tc := range []struct {
		name string
		body string
		mode os.FileMode
		want NetConfig
		// errHas are the parts the error must name; none: no error.
		errHas []string
	}{
		{
			name: "a full file sets every setting",
			body: `{"bootstrap": ["` + relayA + `"], "relays": ["` + relayA + `", "` + relayB + `"],
				"listen": ["/ip4/0.0.0.0/tcp/4001", "/ip6/::/udp/4001/quic-v1"],
				"public_network": true, "port_map": false, "member_relay": false, "mdns": false}`,
			want: NetConfig{
				Bootstrap: []string{relayA}, Relays: []string{relayA, relayB},
				Listen:        []string{"/ip4/0.0.0.0/tcp/4001", "/ip6/::/udp/4001/quic-v1"},
				PublicNetwork: new(true), PortMap: new(false), MemberRelay: new(false), MDNS: new(false),
			},
		},
		{name: "an empty object sets nothing", body: `{}`, want: NetConfig{}},
		{name: "one key sets only itself", body: `{"relays": ["` + relayB + `"]}`, want: NetConfig{Relays: []string{relayB}}},
		{
			name:   "unknown keys are named, all of them",
			body:   `{"relays": [], "relay": ["x"], "publicNetwork": true}`,
			errHas: []string{`"publicNetwork"`, `"relay"`, "unknown keys", NetConfigFile},
		},
		{
			name:   "a malformed multiaddr is named with its list and the file",
			body:   `{"bootstrap": ["` + relayA + `", "/ip4/1.2.3/tcp/4001"]}`,
			errHas: []string{`"bootstrap"`, `"/ip4/1.2.3/tcp/4001"`, NetConfigFile},
		},
		{
			name:   "a relay without its peer id is refused",
			body:   `{"relays": ["/ip4/203.0.113.7/tcp/4001"]}`,
			errHas: []string{`"relays"`, `"/ip4/203.0.113.7/tcp/4001"`, "/p2p/<peer id>"},
		},
		{
			name:   "a bad listen address is refused",
			body:   `{"listen": ["0.0.0.0:4001"]}`,
			errHas: []string{`"listen"`, `"0.0.0.0:4001"`},
		},
		{name: "a string where a bool belongs", body: `{"port_map": "no"}`, errHas: []string{`"port_map"`, "bool"}},
		{name: "a string where a list belongs", body: `{"relays": "` + relayA + `"}`, errHas: []string{`"relays"`}},
		{name: "not JSON", body: `relays = ["x"]`, errHas: []string{"not a JSON object", NetConfigFile}},
		{name: "a JSON array", body: `[]`, errHas: []string{"not a JSON object"}},
		{name: "null", body: `null`, errHas: []string{"not a JSON object"}},
		{name: "two objects", body: `{} {}`, errHas: []string{"more than one"}},
		{name: "too many addresses", body: `{"relays": [` + strings.Repeat(`"`+relayA+`",`, 32) + `"` + relayA + `"]}`, errHas: []string{`"relays"`, "33 addresses"}},
		{name: "too large", body: `{"listen": ["` + strings.Repeat("x", 70<<10) + `"]}`, errHas: []string{"larger than 64 KiB"}},
		{name: "a file others may write is refused", body: `{}`, mode: 0o666, errHas: []string{"writable by others"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mode := tc.mode
			if mode == 0 {
				mode = 0o600
			}
			got, err := ReadNetConfig(writeNetConfig(t, tc.body, mode))
			if len(tc.errHas) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, tc.want) {
					t.Fatalf("got %+v, want %+v", got, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error; read %+v", got)
			}
			for _, part := range tc.errHas {
				if !strings.Contains(err.Error(), part) {
					t.Errorf("error %q does not name %s", err, part)
				}
			}
			if !reflect.DeepEqual(got, NetConfig{}) {
				t.Errorf("with the error, a config %+v", got)
			}
		})
	}
}

func TestAMissingNetworkConfigSetsNothing(t *testing.T) {
	for _, dir := range []string{t.TempDir(), filepath.Join(t.TempDir(), "not-yet")} {
		c, err := ReadNetConfig(dir)
		if err != nil || !reflect.DeepEqual(c, NetConfig{}) {
			t.Errorf("no file in %s: %+v, %v; want nothing and no error", dir, c, err)
		}
	}
}

func TestNetworkConfigFromTheEnvironment(t *testing.T) {
	for _, tc := range []struct {
		name   string
		env    map[string]string
		want   NetConfig
		errHas []string
	}{
		{name: "nothing set", want: NetConfig{}},
		{
			name: "lists split at commas and spaces",
			env:  map[string]string{"PARLEY_RELAYS": " " + relayA + ",\t" + relayB + " ", "PARLEY_BOOTSTRAP": relayB + " " + relayA},
			want: NetConfig{Relays: []string{relayA, relayB}, Bootstrap: []string{relayB, relayA}},
		},
		{
			name: "switches take 1 and 0",
			env:  map[string]string{"PARLEY_PUBLIC_NETWORK": "1", "PARLEY_PORT_MAP": "0"},
			want: NetConfig{PublicNetwork: new(true), PortMap: new(false)},
		},
		{name: "empty variables are unset", env: map[string]string{"PARLEY_RELAYS": " , ", "PARLEY_PORT_MAP": ""}, want: NetConfig{}},
		{name: "a switch that is neither 1 nor 0", env: map[string]string{"PARLEY_PUBLIC_NETWORK": "yes"}, errHas: []string{"PARLEY_PUBLIC_NETWORK", `"yes"`}},
		{name: "a malformed relay", env: map[string]string{"PARLEY_RELAYS": relayA + ",/ip4/x"}, errHas: []string{"PARLEY_RELAYS", `"/ip4/x"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := NetConfigFromEnv(func(k string) string { return tc.env[k] })
			if len(tc.errHas) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, tc.want) {
					t.Fatalf("got %+v, want %+v", got, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error; read %+v", got)
			}
			for _, part := range tc.errHas {
				if !strings.Contains(err.Error(), part) {
					t.Errorf("error %q does not name %s", err, part)
				}
			}
		})
	}
}

// The file is overridden by the environment, and both by the command
// line; a list replaces the one below it; what a source leaves out keeps
// the value below it.
func TestNetworkSettingsOverrideFileThenEnvironmentThenFlags(t *testing.T) {
	file := NetConfig{
		Bootstrap: []string{relayA}, Relays: []string{relayA}, Listen: []string{"/ip4/0.0.0.0/tcp/4002"},
		PublicNetwork: new(true), PortMap: new(false), MDNS: new(false),
	}
	env := NetConfig{Relays: []string{relayB}, PublicNetwork: new(false)}
	flags := NetConfig{Relays: []string{relayA, relayB}, MemberRelay: new(false), PortMap: new(true)}

	got := file.Over(env).Over(flags)
	want := NetConfig{
		Bootstrap: []string{relayA}, Relays: []string{relayA, relayB}, Listen: []string{"/ip4/0.0.0.0/tcp/4002"},
		PublicNetwork: new(false), PortMap: new(true), MemberRelay: new(false), MDNS: new(false),
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("merged %+v, want %+v", got, want)
	}

	var cfg Config
	got.Apply(&cfg)
	if !reflect.DeepEqual(cfg.Relays, want.Relays) || !reflect.DeepEqual(cfg.Bootstrap, want.Bootstrap) ||
		!reflect.DeepEqual(cfg.ListenAddrs, want.Listen) ||
		cfg.PublicNetwork || cfg.NoPortMap || !cfg.NoMemberRelay || !cfg.NoMDNS {
		t.Fatalf("applied: %+v", cfg)
	}
	// Nothing given anywhere: the defaults (mapping, member relay and
	// mDNS on, the public network off).
	var def Config
	NetConfig{}.Apply(&def)
	if def.PublicNetwork || def.NoPortMap || def.NoMemberRelay || def.NoMDNS || def.Relays != nil || def.ListenAddrs != nil {
		t.Fatalf("defaults: %+v", def)
	}
}

// The settings reach the host's configuration.
func TestNetworkSettingsReachTheHost(t *testing.T) {
	cfg := Config{Relays: []string{relayA}, Bootstrap: []string{relayB}, ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}}
	NetConfig{PublicNetwork: new(true), PortMap: new(false), MemberRelay: new(false), MDNS: new(false)}.Over(NetConfig{Relays: cfg.Relays, Bootstrap: cfg.Bootstrap, Listen: cfg.ListenAddrs}).Apply(&cfg)
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	pc := n.p2pConfig()
	if !pc.PublicNetwork || !pc.NoPortMap || !pc.NoMemberRelay || !pc.NoMDNS ||
		!reflect.DeepEqual(pc.Relays, []string{relayA}) || !reflect.DeepEqual(pc.Bootstrap, []string{relayB}) ||
		!reflect.DeepEqual(pc.ListenAddrs, []string{"/ip4/127.0.0.1/tcp/0"}) {
		t.Fatalf("host config %+v", pc)
	}
	if pc.Members == nil || pc.MemberPeers == nil {
		t.Fatalf("the host cannot ask who is a member")
	}
}

// A node listening on loopback only maps no ports: there is nothing to
// forward, and tests must send nothing beyond the machine.
func TestANodeOnLoopbackMapsNoPorts(t *testing.T) {
	for _, tc := range []struct {
		listen []string
		mapped bool
	}{
		{nil, true}, // the defaults: all interfaces
		{[]string{"/ip4/127.0.0.1/tcp/0"}, false},
		{[]string{"/ip4/127.0.0.1/tcp/0", "/ip6/::1/udp/0/quic-v1"}, false},
		{[]string{"/ip4/127.0.0.1/tcp/0", "/ip4/0.0.0.0/tcp/4001"}, true},
		{[]string{"/ip4/192.168.1.2/tcp/4001"}, true},
	} {
		n, err := New(Config{DataDir: t.TempDir(), ListenAddrs: tc.listen})
		if err != nil {
			t.Fatal(err)
		}
		if got := !n.p2pConfig().NoPortMap; got != tc.mapped {
			t.Errorf("listening on %v: port mapping %v, want %v", tc.listen, got, tc.mapped)
		}
		n.Close()
	}
}
