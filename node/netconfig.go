package node

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/parley-p2p/parley/p2p"
)

// The network settings come from three places, each overriding the one
// before it: the file network.json in the data dir, the environment, and
// the command line. A list given at a later place replaces the earlier
// one (it is not added to it), so a flag can always say exactly which
// bootstrap peers or relays to use; a setting left out keeps the earlier
// value, or the default.
//
// The file, all keys optional:
//
//	{
//	  "bootstrap": ["/dns4/relay.example.org/tcp/4001/p2p/12D3KooW..."],
//	  "relays": ["/dns4/relay.example.org/tcp/4001/p2p/12D3KooW..."],
//	  "listen": ["/ip4/0.0.0.0/tcp/4001", "/ip6/::/tcp/4001"],
//	  "public_network": false,
//	  "port_map": true,
//	  "member_relay": true,
//	  "mdns": true
//	}
//
// The environment: PARLEY_BOOTSTRAP and PARLEY_RELAYS (multiaddrs
// separated by commas or spaces), PARLEY_PUBLIC_NETWORK and
// PARLEY_PORT_MAP (1 or 0). An empty variable counts as unset.

// NetConfigFile is the network config file's name in the data dir.
const NetConfigFile = "network.json"

// Bounds on the network settings, whatever their source.
const (
	maxNetConfigSize = 64 << 10 // bytes of network.json
	maxNetAddrs      = 32       // addresses in one list
)

// NetConfig is the network part of a node's configuration, as one source
// gives it: a nil list or bool is a setting that source leaves alone.
type NetConfig struct {
	// Bootstrap and Relays are multiaddrs ending in /p2p/<peer id>.
	Bootstrap []string `json:"bootstrap"`
	Relays    []string `json:"relays"`
	// Listen are libp2p listen multiaddrs.
	Listen []string `json:"listen"`
	// PublicNetwork uses the public libp2p network to find relays.
	PublicNetwork *bool `json:"public_network"`
	// PortMap asks the home router to forward the node's ports.
	PortMap *bool `json:"port_map"`
	// MemberRelay relays for the servers of the node's rooms when the
	// node is publicly reachable.
	MemberRelay *bool `json:"member_relay"`
	// MDNS finds peers on the LAN.
	MDNS *bool `json:"mdns"`
}

// netConfigKeys are the keys network.json may hold.
var netConfigKeys = func() []string {
	var keys []string
	t := reflect.TypeFor[NetConfig]()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		keys = append(keys, name)
	}
	return keys
}()

// ReadNetConfig reads network.json from the data dir. A missing file (or
// data dir) is no error: it sets nothing. The file must belong to the
// user and be writable by no one else, as it names the peers the node
// trusts to relay it.
func ReadNetConfig(dataDir string) (NetConfig, error) {
	path := filepath.Join(dataDir, NetConfigFile)
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return NetConfig{}, nil
	}
	if err != nil {
		return NetConfig{}, fmt.Errorf("network config: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return NetConfig{}, fmt.Errorf("network config: %w", err)
	}
	if err := checkNetConfigFile(path, fi); err != nil {
		return NetConfig{}, err
	}
	data, err := io.ReadAll(io.LimitReader(f, maxNetConfigSize+1))
	if err != nil {
		return NetConfig{}, fmt.Errorf("network config %s: %w", path, err)
	}
	if len(data) > maxNetConfigSize {
		return NetConfig{}, fmt.Errorf("network config %s: larger than %d KiB", path, maxNetConfigSize>>10)
	}
	c, err := ParseNetConfig(data)
	if err != nil {
		return NetConfig{}, fmt.Errorf("network config %s: %w", path, err)
	}
	return c, nil
}

// checkNetConfigFile refuses a network config that is not a regular
// file, or that someone else owns or may write.
func checkNetConfigFile(path string, fi fs.FileInfo) error {
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("network config %s is not a regular file", path)
	}
	uid, ok := fileOwner(fi)
	if !ok {
		return nil
	}
	if uid != os.Getuid() {
		return fmt.Errorf("network config %s belongs to uid %d, not to this user (uid %d): refusing to use it", path, uid, os.Getuid())
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		return fmt.Errorf("network config %s is writable by others (mode %04o): refusing to use it; chmod 600 it if it is yours", path, perm)
	}
	return nil
}

// ParseNetConfig parses the contents of network.json: one JSON object
// with only the keys NetConfig names, and well-formed addresses.
func ParseNetConfig(data []byte) (NetConfig, error) {
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&raw); err != nil {
		return NetConfig{}, fmt.Errorf("not a JSON object: %w", err)
	}
	if raw == nil {
		return NetConfig{}, errors.New("not a JSON object")
	}
	if dec.More() {
		return NetConfig{}, errors.New("more than one JSON value")
	}
	var unknown []string
	for k := range raw {
		if !slices.Contains(netConfigKeys, k) {
			unknown = append(unknown, strconv.Quote(k))
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return NetConfig{}, fmt.Errorf("unknown keys %s (known: %s)", strings.Join(unknown, ", "), strings.Join(netConfigKeys, ", "))
	}
	var c NetConfig
	for _, k := range netConfigKeys {
		v, ok := raw[k]
		if !ok {
			continue
		}
		var err error
		switch k {
		case "bootstrap":
			err = json.Unmarshal(v, &c.Bootstrap)
		case "relays":
			err = json.Unmarshal(v, &c.Relays)
		case "listen":
			err = json.Unmarshal(v, &c.Listen)
		case "public_network":
			err = json.Unmarshal(v, &c.PublicNetwork)
		case "port_map":
			err = json.Unmarshal(v, &c.PortMap)
		case "member_relay":
			err = json.Unmarshal(v, &c.MemberRelay)
		case "mdns":
			err = json.Unmarshal(v, &c.MDNS)
		}
		if err != nil {
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) {
				return NetConfig{}, fmt.Errorf("%q: %s where %s belongs", k, te.Value, te.Type)
			}
			return NetConfig{}, fmt.Errorf("%q: %w", k, err)
		}
	}
	if err := c.Check(func(list string) string { return strconv.Quote(list) }); err != nil {
		return NetConfig{}, err
	}
	return c, nil
}

// NetConfigFromEnv reads the network settings of the environment, as
// getenv (os.Getenv) gives it.
func NetConfigFromEnv(getenv func(string) string) (NetConfig, error) {
	var c NetConfig
	c.Bootstrap = splitAddrs(getenv("PARLEY_BOOTSTRAP"))
	c.Relays = splitAddrs(getenv("PARLEY_RELAYS"))
	for _, b := range []struct {
		name string
		dst  **bool
	}{
		{"PARLEY_PUBLIC_NETWORK", &c.PublicNetwork},
		{"PARLEY_PORT_MAP", &c.PortMap},
	} {
		v := strings.TrimSpace(getenv(b.name))
		switch v {
		case "":
		case "1":
			*b.dst = new(true)
		case "0":
			*b.dst = new(false)
		default:
			return NetConfig{}, fmt.Errorf("environment: %s=%q: want 1 or 0", b.name, v)
		}
	}
	err := c.Check(func(list string) string {
		return map[string]string{"bootstrap": "PARLEY_BOOTSTRAP", "relays": "PARLEY_RELAYS"}[list]
	})
	if err != nil {
		return NetConfig{}, fmt.Errorf("environment: %w", err)
	}
	return c, nil
}

// splitAddrs splits a list of multiaddrs at commas and white space; nil
// if there are none.
func splitAddrs(s string) []string {
	f := strings.FieldsFunc(s, func(r rune) bool {
		return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r'
	})
	if len(f) == 0 {
		return nil
	}
	return f
}

// Check reports the first malformed address, naming its list as name
// calls it in its source: listen addresses must be multiaddrs, bootstrap
// peers and relays multiaddrs ending in /p2p/<peer id>; each list holds
// at most 32.
func (c NetConfig) Check(name func(list string) string) error {
	for _, l := range []struct {
		list, kind string
		addrs      []string
		ofPeer     bool
	}{
		{"bootstrap", "bootstrap", c.Bootstrap, true},
		{"relays", "relay", c.Relays, true},
		{"listen", "listen", c.Listen, false},
	} {
		if len(l.addrs) > maxNetAddrs {
			return fmt.Errorf("%s: %d addresses, at most %d", name(l.list), len(l.addrs), maxNetAddrs)
		}
		for _, a := range l.addrs {
			var err error
			if l.ofPeer {
				_, err = peer.AddrInfoFromString(a)
			} else {
				_, err = ma.NewMultiaddr(a)
			}
			if err != nil {
				return fmt.Errorf("%s: %s address %q is not a multiaddr%s: %v", name(l.list), l.kind, a, map[bool]string{true: " ending in /p2p/<peer id>"}[l.ofPeer], err)
			}
		}
	}
	return nil
}

// Over is c with the settings of top, which win where top gives them.
func (c NetConfig) Over(top NetConfig) NetConfig {
	if top.Bootstrap != nil {
		c.Bootstrap = top.Bootstrap
	}
	if top.Relays != nil {
		c.Relays = top.Relays
	}
	if top.Listen != nil {
		c.Listen = top.Listen
	}
	for _, b := range []struct{ dst, src **bool }{
		{&c.PublicNetwork, &top.PublicNetwork},
		{&c.PortMap, &top.PortMap},
		{&c.MemberRelay, &top.MemberRelay},
		{&c.MDNS, &top.MDNS},
	} {
		if *b.src != nil {
			*b.dst = *b.src
		}
	}
	return c
}

// Effective is c with every setting it leaves out at its default: no
// bootstrap peers or relays, p2p.DefaultListenAddrs, the public network
// off, port mapping, the member relay and mDNS on.
func (c NetConfig) Effective() NetConfig {
	list := func(l, def []string) []string {
		if l == nil {
			return append([]string{}, def...)
		}
		return l
	}
	c.Bootstrap, c.Relays = list(c.Bootstrap, nil), list(c.Relays, nil)
	c.Listen = list(c.Listen, p2p.DefaultListenAddrs)
	for _, b := range []struct {
		p   **bool
		def bool
	}{{&c.PublicNetwork, false}, {&c.PortMap, true}, {&c.MemberRelay, true}, {&c.MDNS, true}} {
		if *b.p == nil {
			*b.p = new(b.def)
		}
	}
	return c
}

// Apply sets cfg's network fields to c's settings; those c leaves out
// get their defaults.
func (c NetConfig) Apply(cfg *Config) {
	cfg.Bootstrap = slices.Clone(c.Bootstrap)
	cfg.Relays = slices.Clone(c.Relays)
	cfg.ListenAddrs = slices.Clone(c.Listen)
	off := func(b *bool) bool { return b != nil && !*b }
	cfg.PublicNetwork = c.PublicNetwork != nil && *c.PublicNetwork
	cfg.NoPortMap = off(c.PortMap)
	cfg.NoMemberRelay = off(c.MemberRelay)
	cfg.NoMDNS = off(c.MDNS)
}
