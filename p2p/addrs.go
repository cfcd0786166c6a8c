package p2p

import (
	"slices"

	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// LinkAddrs keeps the addresses worth putting in an invite link, for a
// joiner who may be anywhere: public ones (public IPv4, global IPv6, DNS
// names) and circuit addresses through a public relay. LAN addresses are
// left to mDNS, unless nothing public is left (a LAN-only setup), and
// loopback addresses unless the node has nothing else (tests, one machine).
// Malformed addresses are dropped; the order is kept.
func LinkAddrs(addrs []string) []string {
	type kind int
	const (
		public kind = iota
		lan
		loopback
		useless
	)
	classify := func(s string) kind {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return useless
		}
		if relay, _ := ma.SplitFunc(a, func(c ma.Component) bool { return c.Protocol().Code == ma.P_CIRCUIT }); relay != nil && len(relay) < len(a) {
			a = relay
		}
		switch {
		case manet.IsIPLoopback(a):
			return loopback
		case manet.IsIP6LinkLocal(a), manet.IsIPUnspecified(a):
			return useless
		case manet.IsPublicAddr(a):
			return public
		case manet.IsPrivateAddr(a):
			return lan
		}
		return useless
	}
	var out []string
	for want := public; want < useless; want++ {
		for _, s := range addrs {
			if classify(s) == want {
				out = append(out, s)
			}
		}
		if len(out) > 0 {
			return slices.Clip(out)
		}
	}
	return nil
}
