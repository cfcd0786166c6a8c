// Command parley runs a parley node: a Matrix homeserver for the people on
// this device, reaching other devices peer to peer.
package main

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/parley-p2p/parley/node"
	"github.com/parley-p2p/parley/p2p"
	"github.com/parley-p2p/parley/rooms"
)

const usage = `parley: a peer-to-peer Matrix homeserver for this device

Usage:
  parley run [--data DIR] [--http ADDR] [--allowed-host NAME]... [--listen MULTIADDR]... [--bootstrap MULTIADDR]...
             [--no-mdns] [--relay MULTIADDR]... [--relay-service] [--no-port-map] [--no-member-relay]
             [--public-network] [--print-network-config]
             [--claim-code CODE] [--registration-token TOKEN] [--webui-dir DIR] [--log-level LEVEL]
             [--min-free-mb N] [--memory-limit-mb N] [--max-upload SIZE] [--media-quota SIZE]
             [--media-prefetch-max SIZE]
  parley invite [--data DIR] [--max-uses N] [--expires DURATION] ROOM_ID
                                  make an invite link (through the running daemon)
  parley join [--data DIR] LINK   join a room through an invite link
  parley id [--data DIR]
  parley version

The network settings may also come from DIR/network.json and from the
environment (PARLEY_BOOTSTRAP, PARLEY_RELAYS, PARLEY_PUBLIC_NETWORK,
PARLEY_PORT_MAP): flags override the environment, which overrides the file;
a list given by a flag replaces the environment's or the file's.
`

// errReported is a failure the flag package already explained on stderr.
var errReported = errors.New("bad command line")

func main() {
	err := run(os.Args[1:], os.Stdout, os.Stderr)
	switch {
	case err == nil:
	case errors.Is(err, errReported):
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "parley:", err)
		os.Exit(1)
	}
}

// parseFlags parses a subcommand's flags: -h is not an error, and the
// flag package's own message is not repeated.
func parseFlags(fs *flag.FlagSet, args []string) (help bool, err error) {
	err = fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		return true, nil
	}
	if err != nil {
		return false, errReported
	}
	return false, nil
}

func run(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	switch args[0] {
	case "run":
		return cmdRun(args[1:], stdout, stderr)
	case "id":
		return cmdID(args[1:], stdout, stderr)
	case "join":
		return cmdJoin(args[1:], stdout, stderr)
	case "invite":
		return cmdInvite(args[1:], stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, "parley", node.Version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

// multiFlag collects a repeatable flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func cmdRun(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg node.Config
	var listen, bootstrap, relays, allowedHosts multiFlag
	var logLevel string
	fs.StringVar(&cfg.DataDir, "data", node.DefaultDataDir(), "data directory (key and database)")
	fs.StringVar(&cfg.HTTPAddr, "http", "127.0.0.1:8008", "address of the local client API and app")
	fs.Var(&allowedHosts, "allowed-host", "a further host name the app may be reached by when --http binds all interfaces (repeatable; IP addresses and localhost always work)")
	fs.Var(&listen, "listen", "libp2p listen multiaddr (repeatable; default TCP and QUIC on port 4001)")
	fs.Var(&bootstrap, "bootstrap", "bootstrap peer multiaddr ending in /p2p/<peer id> (repeatable)")
	noMDNS := fs.Bool("no-mdns", false, "do not discover peers on the LAN")
	fs.Var(&relays, "relay", "circuit relay multiaddr ending in /p2p/<peer id>, used while this node is not reachable from the internet (repeatable)")
	fs.BoolVar(&cfg.RelayService, "relay-service", false, "relay connections for every node behind a NAT (only on a node reachable from the internet)")
	noPortMap := fs.Bool("no-port-map", false, "do not ask the home router to forward this node's ports (UPnP, NAT-PMP)")
	noMemberRelay := fs.Bool("no-member-relay", false, "do not relay for the nodes of this node's rooms when it is reachable from the internet")
	publicNetwork := fs.Bool("public-network", false, "use the public libp2p network (IPFS DHT and its relays) to find a relay: shows this node's IP addresses and peer id to them")
	printNet := fs.Bool("print-network-config", false, "print the network settings in effect (from DIR/network.json, the environment and the flags) as JSON, and exit")
	fs.BoolVar(&cfg.HidePresence, "hide-presence", false, "share no presence: send none of this node's users' presence to other nodes, and show them none of others'")
	fs.StringVar(&cfg.RegistrationToken, "registration-token", "", "token that lets further accounts register on this node")
	fs.StringVar(&cfg.ClaimCode, "claim-code", "", "one-time code that claims this node while it has no owner (for scripted setups; by default a random one is printed and written to DIR/claim-code)")
	fs.StringVar(&cfg.AppDir, "webui-dir", "", "serve the web app from this folder instead of the embedded copy")
	fs.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	minFreeMB := fs.Int64("min-free-mb", 64, "MiB kept free on the data dir's disk: below it the node refuses writes, and does not start (0: no check)")
	memLimitMB := fs.Int64("memory-limit-mb", defaultMemoryLimitMB, "soft limit in MiB on the memory the Go runtime holds (heap, stacks): near it the garbage collector runs more often, above it memory goes back to the system at once (0: none; without this flag a GOMEMLIMIT in the environment applies instead)")
	cfg.MaxUpload, cfg.MediaQuota, cfg.MediaPrefetchMax = node.DefaultMaxUpload, node.DefaultMediaQuota, node.DefaultMediaPrefetchMax
	fs.Var(sizeFlag{&cfg.MaxUpload}, "max-upload", "largest media upload accepted (bytes, or with KiB, MiB, GiB)")
	fs.Var(sizeFlag{&cfg.MediaQuota}, "media-quota", "space for media: this node's uploads, copies of other nodes' media (evicted first when space runs short) and thumbnails")
	fs.Var(sizeFlag{&cfg.MediaPrefetchMax}, "media-prefetch-max", "largest image fetched ahead as soon as a room mentions it, so it shows while its sender is offline")
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	if cfg.MaxUpload == 0 || cfg.MediaQuota == 0 {
		return errors.New("run: --max-upload and --media-quota must be more than 0")
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("run: unexpected argument %q", fs.Arg(0))
	}
	netcfg, err := networkSettings(cfg.DataDir, flagNetConfig(fs, netFlags{
		listen: listen, bootstrap: bootstrap, relays: relays,
		noMDNS: *noMDNS, noPortMap: *noPortMap, noMemberRelay: *noMemberRelay, publicNetwork: *publicNetwork,
	}), os.Getenv)
	if err != nil {
		return err
	}
	if *printNet {
		out, _ := json.MarshalIndent(netcfg.Effective(), "", "  ")
		fmt.Fprintf(stdout, "%s\n", out)
		return nil
	}
	netcfg.Apply(&cfg)
	explicit := false
	fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "memory-limit-mb" })
	if limit, ok, err := memoryLimit(*memLimitMB, explicit, os.Getenv("GOMEMLIMIT")); err != nil {
		return err
	} else if ok {
		debug.SetMemoryLimit(limit)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		return fmt.Errorf("--log-level: %v", err)
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(logger)
	cfg.AllowedHosts, cfg.Logger = allowedHosts, logger
	switch {
	case *minFreeMB < 0:
		return fmt.Errorf("--min-free-mb: %d is negative", *minFreeMB)
	case *minFreeMB == 0:
		cfg.MinFreeDisk = -1
	default:
		cfg.MinFreeDisk = *minFreeMB << 20
	}

	if cidr := os.Getenv("PARLEY_TEST_PUBLIC_CIDR"); cidr != "" {
		// Test labs only: before any host exists, and once.
		if err := treatAsPublicForTests(cidr); err != nil {
			return fmt.Errorf("PARLEY_TEST_PUBLIC_CIDR: %w", err)
		}
		logger.Warn("test setting: addresses in this range count as public", "cidr", cidr)
	}

	n, err := node.New(cfg)
	if err != nil {
		return err
	}
	// Signals are caught from before the start, so that one arriving while
	// the node starts, or right after it prints its banner, shuts it down
	// cleanly instead of killing it.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := n.Start(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "parley %s\n", node.Version)
	fmt.Fprintf(stdout, "app:         %s\n", n.URL())
	if u := n.ClaimURL(); u != "" {
		// Only the owner should see this: it claims the node.
		fmt.Fprintf(stdout, "claim:       %s\n", u)
	}
	fmt.Fprintf(stdout, "server name: %s\n", n.ServerName())
	fmt.Fprintf(stdout, "peer id:     %s\n", n.PeerID())
	for _, a := range n.Addrs() {
		fmt.Fprintf(stdout, "listening:   %s\n", a)
	}

	<-ctx.Done()
	stop()
	fmt.Fprintln(stdout, "shutting down")
	return n.Close()
}

// netFlags are the network flags of `parley run`.
type netFlags struct {
	listen, bootstrap, relays                       []string
	noMDNS, noPortMap, noMemberRelay, publicNetwork bool
}

// flagNetConfig is the network settings the command line gives: only the
// flags given count, so that a flag left out keeps the environment's or
// the file's value.
func flagNetConfig(fs *flag.FlagSet, f netFlags) node.NetConfig {
	var c node.NetConfig
	fs.Visit(func(fl *flag.Flag) {
		switch fl.Name {
		case "listen":
			c.Listen = f.listen
		case "bootstrap":
			c.Bootstrap = f.bootstrap
		case "relay":
			c.Relays = f.relays
		case "no-mdns":
			c.MDNS = new(!f.noMDNS)
		case "no-port-map":
			c.PortMap = new(!f.noPortMap)
		case "no-member-relay":
			c.MemberRelay = new(!f.noMemberRelay)
		case "public-network":
			c.PublicNetwork = new(f.publicNetwork)
		}
	})
	return c
}

// networkSettings merges the network settings of the file network.json
// in dataDir, the environment (getenv) and the flags, each overriding the
// one before.
func networkSettings(dataDir string, flags node.NetConfig, getenv func(string) string) (node.NetConfig, error) {
	file, err := node.ReadNetConfig(dataDir)
	if err != nil {
		return node.NetConfig{}, err
	}
	env, err := node.NetConfigFromEnv(getenv)
	if err != nil {
		return node.NetConfig{}, err
	}
	if err := flags.Check(func(list string) string {
		return map[string]string{"bootstrap": "--bootstrap", "relays": "--relay", "listen": "--listen"}[list]
	}); err != nil {
		return node.NetConfig{}, err
	}
	return file.Over(env).Over(flags), nil
}

// treatAsPublicForTests makes the addresses of cidr count as public, for
// test labs whose "internet" is a private range (PARLEY_TEST_PUBLIC_CIDR).
var treatAsPublicForTests = p2p.TreatAsPublicForTests

func cmdID(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("id", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("data", node.DefaultDataDir(), "data directory")
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	key, err := node.LoadOrCreateKey(*dir)
	if err != nil {
		return err
	}
	pub := key.Public().(ed25519.PublicKey)
	pid, err := p2p.PeerIDFromKey(pub)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "server name: %s\npeer id:     %s\n", rooms.ServerName(pub), pid)
	return nil
}

// defaultMemoryLimitMB is the soft memory limit of `parley run`. The
// garbage collector keeps GOGC's pace (the heap grows to twice what is
// live) until the runtime holds this much, then collects as often as it
// takes to stay under it, with at most half the CPU. Without a limit, a
// node's first /sync at 1,000 rooms of 100 events (before the sync's own
// allocations were cut) left 194 MB of anonymous memory resident: its
// working set briefly held ~75 MB live, the heap grew to 140 MB, and the
// runtime gave the pages back only minutes later. At 128 MiB the same
// sync left 116 MB and took 25% more CPU (3.6 s against 2.9 s); at 96 MiB
// it took three times the CPU, so the limit sits above that working set.
// A node whose live heap approaches the limit pays in GC CPU, not in
// failures: it is soft.
const defaultMemoryLimitMB = 128

// memoryLimit is the limit to set for --memory-limit-mb=mb (explicit: the
// flag was given) with env the value of GOMEMLIMIT, and whether to set one
// at all (a GOMEMLIMIT in the environment stands unless the flag is given).
func memoryLimit(mb int64, explicit bool, env string) (limit int64, set bool, err error) {
	switch {
	case mb < 0:
		return 0, false, fmt.Errorf("--memory-limit-mb: %d is negative", mb)
	case mb > math.MaxInt64>>20:
		return 0, false, fmt.Errorf("--memory-limit-mb: %d is too large", mb)
	case !explicit && env != "":
		return 0, false, nil
	case mb == 0:
		return math.MaxInt64, true, nil
	}
	return mb << 20, true, nil
}
