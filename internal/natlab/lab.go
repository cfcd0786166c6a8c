//go:build linux

package natlab

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Prefix starts the name of every namespace a lab creates: pl<pid>-<n>-.
const Prefix = "pl"

// NAT is how a router translates its home's connections.
type NAT int

const (
	// Masquerade keeps the home's source port where it can, as most home
	// routers do ("cone"-like): hole punching works through it.
	Masquerade NAT = iota + 1
	// RandomPorts gives every connection a random outside port, as a
	// symmetric NAT does: hole punching fails through it.
	RandomPorts
)

func (n NAT) String() string {
	switch n {
	case Masquerade:
		return "masquerade"
	case RandomPorts:
		return "random ports"
	}
	return "none"
}

// Available reports what the lab needs and this machine lacks: root, ip,
// nft and conntrack (apt install iproute2 nftables conntrack), and a
// working `ip netns add`.
// nil when it can run.
func Available() error {
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	for _, tool := range []string{"ip", "nft", "conntrack"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("natlab needs %s (apt install iproute2 nftables conntrack; run as root)", strings.Join(missing, ", "))
	}
	probe := fmt.Sprintf("%s%d-probe", Prefix, os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", probe).CombinedOutput(); err != nil {
		return fmt.Errorf("natlab needs network namespaces: ip netns add: %v: %s", err, bytes.TrimSpace(out))
	}
	exec.Command("ip", "netns", "del", probe).Run()
	return nil
}

// Lab is one set of namespaces: an "internet" bridge (Net.0/24) and the
// hosts and routers on it. New creates it; a cleanup of the test deletes
// its namespaces, after the daemons' own cleanups have stopped them.
type Lab struct {
	t    testing.TB
	name string // pl<pid>-<n>
	// Net is the internet's first three octets, e.g. "100.64.0".
	Net string

	wan  string // the bridge namespace
	mu   sync.Mutex
	nss  []string // every namespace, in creation order
	veth int
}

var (
	labSeq    atomic.Int64
	sweepOnce sync.Once
)

// New creates a lab whose internet is net.0/24 (net is three octets, e.g.
// "100.64.0"). It fails the test if a namespace cannot be made.
func New(t testing.TB, net string) *Lab {
	t.Helper()
	sweepOnce.Do(sweepStale)
	l := &Lab{t: t, name: fmt.Sprintf("%s%d-%d", Prefix, os.Getpid(), labSeq.Add(1)), Net: net}
	t.Cleanup(l.remove)
	l.wan = l.addNS("wan")
	l.run("ip", "-n", l.wan, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0")
	l.run("ip", "-n", l.wan, "link", "set", "br0", "up")
	return l
}

// Name is the lab's namespace prefix, for logs.
func (l *Lab) Name() string { return l.name }

// run runs a command and fails the test if it fails.
func (l *Lab) run(args ...string) string {
	l.t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		l.t.Fatalf("natlab: %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// nsRun runs a command inside a namespace.
func (l *Lab) nsRun(ns string, args ...string) string {
	l.t.Helper()
	return l.run(append([]string{"ip", "netns", "exec", ns}, args...)...)
}

func (l *Lab) addNS(role string) string {
	l.t.Helper()
	ns := l.name + "-" + role
	l.run("ip", "netns", "add", ns)
	l.mu.Lock()
	l.nss = append(l.nss, ns)
	l.mu.Unlock()
	l.run("ip", "-n", ns, "link", "set", "lo", "up")
	return ns
}

// plugIn connects ns to the internet bridge with a veth named dev inside
// ns, addressed ip/24.
func (l *Lab) plugIn(ns, dev, ip string) {
	l.t.Helper()
	l.mu.Lock()
	l.veth++
	port := fmt.Sprintf("v%d", l.veth)
	l.mu.Unlock()
	l.run("ip", "-n", l.wan, "link", "add", port, "type", "veth", "peer", "name", dev, "netns", ns)
	l.run("ip", "-n", l.wan, "link", "set", port, "master", "br0", "up")
	l.run("ip", "-n", ns, "addr", "add", ip+"/24", "dev", dev)
	l.run("ip", "-n", ns, "link", "set", dev, "up")
}

// Host is a namespace with one address, where daemons run.
type Host struct {
	Lab  *Lab
	NS   string
	IP   string
	Name string
}

// Internet adds a host on the internet at Net.<last>, with no NAT.
func (l *Lab) Internet(name string, last int) *Host {
	l.t.Helper()
	ns := l.addNS(name)
	ip := fmt.Sprintf("%s.%d", l.Net, last)
	l.plugIn(ns, "eth0", ip)
	// A default route onto the bridge: multicast (mDNS) and any address
	// outside the lab go there, and the lab has nothing else to reach.
	l.run("ip", "-n", ns, "route", "add", "default", "dev", "eth0")
	return &Host{Lab: l, NS: ns, IP: ip, Name: name}
}

// Router is a home router: WAN on the internet, LAN 192.168.<n>.1/24.
type Router struct {
	Lab *Lab
	NS  string
	WAN string // its internet address
	NAT NAT
}

// Home is a host behind its own router.
type Home struct {
	*Host
	Router *Router
}

// Home adds home n (1..99): a router at Net.<10+n> that translates with
// nat, and a host at 192.168.<n>.2 behind it. The router drops new
// inbound connections from the internet (a home router's firewall; without
// it an early hole-punch packet makes the kernel remap the outbound port,
// and every punch fails).
func (l *Lab) Home(name string, n int, nat NAT) *Home {
	l.t.Helper()
	if n < 1 || n > 99 {
		l.t.Fatalf("natlab: home %d: want 1..99", n)
	}
	r := &Router{Lab: l, NS: l.addNS(name + "-r"), WAN: fmt.Sprintf("%s.%d", l.Net, 10+n), NAT: nat}
	l.plugIn(r.NS, "wan0", r.WAN)
	h := &Host{Lab: l, NS: l.addNS(name), IP: fmt.Sprintf("192.168.%d.2", n), Name: name}
	l.run("ip", "-n", r.NS, "link", "add", "lan0", "type", "veth", "peer", "name", "eth0", "netns", h.NS)
	l.run("ip", "-n", r.NS, "addr", "add", fmt.Sprintf("192.168.%d.1/24", n), "dev", "lan0")
	l.run("ip", "-n", r.NS, "link", "set", "lan0", "up")
	l.run("ip", "-n", h.NS, "addr", "add", h.IP+"/24", "dev", "eth0")
	l.run("ip", "-n", h.NS, "link", "set", "eth0", "up")
	l.run("ip", "-n", h.NS, "route", "add", "default", "via", fmt.Sprintf("192.168.%d.1", n))
	l.nsRun(r.NS, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	// Byte counts on conntrack entries, for `conntrack -L` when debugging.
	exec.Command("ip", "netns", "exec", r.NS, "sysctl", "-qw", "net.netfilter.nf_conntrack_acct=1").Run()
	masq := "masquerade"
	if nat == RandomPorts {
		masq = "masquerade fully-random"
	}
	r.nft(`
table ip nat {
	chain post {
		type nat hook postrouting priority srcnat; policy accept;
		oifname "wan0" ` + masq + `
	}
}
table ip filter {
	chain forwarding {
		type filter hook forward priority filter; policy accept;
		iifname "wan0" ct state new drop
	}
	chain incoming {
		type filter hook input priority filter; policy accept;
		iifname "wan0" ct state new drop
	}
}
`)
	return &Home{Host: h, Router: r}
}

// nft loads a ruleset into the router.
func (r *Router) nft(script string) {
	r.Lab.t.Helper()
	cmd := exec.Command("ip", "netns", "exec", r.NS, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		r.Lab.t.Fatalf("natlab: nft in %s: %v\n%s\n%s", r.NS, err, out, script)
	}
}

var counterName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,30}$`)

// Count adds a named counter of the bytes the router forwards from its home
// to ip (the packets as they leave, after NAT). Read it with Bytes.
func (r *Router) Count(name, ip string) {
	r.Lab.t.Helper()
	if !counterName.MatchString(name) {
		r.Lab.t.Fatalf("natlab: counter name %q", name)
	}
	r.nft(fmt.Sprintf("add counter ip filter %s\nadd rule ip filter forwarding oifname \"wan0\" ip daddr %s counter name %q\n", name, ip, name))
}

// Cut drops every packet the router would forward to or from ip, from
// now on: a path that breaks without a word (a NAT mapping lost, a route
// gone). Connections already open through it see nothing more.
func (r *Router) Cut(ip string) {
	r.Lab.t.Helper()
	r.nft(fmt.Sprintf("insert rule ip filter forwarding ip daddr %s drop\ninsert rule ip filter forwarding ip saddr %s drop\n", ip, ip))
}

// Counters reads the router's named counters: bytes by name.
func (r *Router) Counters() (map[string]uint64, error) {
	out, err := exec.Command("ip", "netns", "exec", r.NS, "nft", "-j", "list", "counters").Output()
	if err != nil {
		return nil, fmt.Errorf("natlab: nft list counters in %s: %v", r.NS, err)
	}
	var doc struct {
		Nftables []struct {
			Counter *struct {
				Name  string `json:"name"`
				Bytes uint64 `json:"bytes"`
			} `json:"counter"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		return nil, fmt.Errorf("natlab: nft -j list counters: %v", err)
	}
	m := map[string]uint64{}
	for _, o := range doc.Nftables {
		if o.Counter != nil {
			m[o.Counter.Name] = o.Counter.Bytes
		}
	}
	return m, nil
}

// Bytes is one named counter's bytes; it fails the test if it cannot be
// read.
func (r *Router) Bytes(name string) uint64 {
	r.Lab.t.Helper()
	m, err := r.Counters()
	if err != nil {
		r.Lab.t.Fatal(err)
	}
	b, ok := m[name]
	if !ok {
		r.Lab.t.Fatalf("natlab: no counter %q in %s", name, r.NS)
	}
	return b
}

// AnsweredFlowsTo counts the router's connection-tracking entries to ip
// that have seen packets both ways: a direct connection through the NAT
// (a hole punch that worked) shows as one. With sport > 0, only entries
// whose home side used that source port count. Needs conntrack(8).
func (r *Router) AnsweredFlowsTo(ip string, sport int) (int, error) {
	out, err := exec.Command("ip", "netns", "exec", r.NS, "conntrack", "-L", "-d", ip).Output()
	if err != nil {
		return 0, fmt.Errorf("natlab: conntrack -L in %s: %v", r.NS, err)
	}
	n := 0
	for line := range strings.Lines(string(out)) {
		if !strings.Contains(line, " dst="+ip+" ") || strings.Contains(line, "[UNREPLIED]") {
			continue
		}
		if sport > 0 && !strings.Contains(line, fmt.Sprintf(" sport=%d ", sport)) {
			continue
		}
		n++
	}
	return n, nil
}

// remove stops what runs in the lab's namespaces and deletes them.
func (l *Lab) remove() {
	l.mu.Lock()
	nss := l.nss
	l.nss = nil
	l.mu.Unlock()
	for i := len(nss) - 1; i >= 0; i-- {
		deleteNS(nss[i], false)
	}
}

// deleteNS deletes a namespace. With kill, it first kills what still runs
// in it (daemons of an earlier run of these tests), never this process.
func deleteNS(ns string, kill bool) {
	if out, err := exec.Command("ip", "netns", "pids", ns).Output(); kill && err == nil {
		for f := range strings.FieldsSeq(string(out)) {
			if pid, err := strconv.Atoi(f); err == nil && pid > 1 && pid != os.Getpid() {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	exec.Command("ip", "netns", "del", ns).Run()
}

var labNS = regexp.MustCompile(`^` + Prefix + `(\d+)-(\d+|probe)(-|$)`)

// sweepStale deletes namespaces left by a lab whose test process no longer
// runs (a run killed before its cleanups).
func sweepStale() {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return
	}
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		m := labNS.FindStringSubmatch(f[0])
		if m == nil {
			continue
		}
		pid, _ := strconv.Atoi(m[1])
		if pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); err == nil || !errors.Is(err, syscall.ESRCH) {
			continue // its test is still running
		}
		deleteNS(f[0], true)
	}
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	poll := time.Millisecond
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(poll)
		poll = min(2*poll, 20*time.Millisecond)
	}
	return true
}
