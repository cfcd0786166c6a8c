package peers

import (
	"fmt"
	"slices"
	"testing"
)

func TestLinkViaCarriesOnlyAddressesAJoinerElsewhereCanUse(t *testing.T) {
	const relay = "/ip4/5.6.7.8/tcp/4001/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA/p2p-circuit"
	many := func(n int) []string {
		var out []string
		for i := range n {
			out = append(out, fmt.Sprintf("/ip4/1.2.3.%d/tcp/4001", i+1))
		}
		return out
	}
	cases := []struct {
		name string
		in   []string
		want []string
	}{
		{"a node with public and LAN addresses: only the public ones",
			[]string{"/ip4/192.168.1.20/tcp/4001", "/ip4/127.0.0.1/tcp/4001", "/ip4/1.2.3.4/udp/4001/quic-v1", "/ip6/2a01:4f8::1/tcp/4001", relay, "/ip4/10.0.0.5/tcp/4001"},
			[]string{"/ip4/1.2.3.4/udp/4001/quic-v1", "/ip6/2a01:4f8::1/tcp/4001", relay}},
		{"a node on a LAN only: its LAN addresses, not loopback",
			[]string{"/ip4/127.0.0.1/tcp/4001", "/ip4/192.168.1.20/tcp/4001"},
			[]string{"/ip4/192.168.1.20/tcp/4001"}},
		{"a node on loopback only (tests, one machine): loopback",
			[]string{"/ip4/127.0.0.1/tcp/4001"},
			[]string{"/ip4/127.0.0.1/tcp/4001"}},
	}
	t.Run("many public addresses: at most maxViaAddrs of them", func(t *testing.T) {
		in := append(many(maxViaAddrs+4), relay)
		v := linkVia("peer", in)
		if len(v.Addrs) == 0 || len(v.Addrs) > maxViaAddrs {
			t.Fatalf("%d addresses, want 1 to %d", len(v.Addrs), maxViaAddrs)
		}
		for _, a := range v.Addrs {
			if !slices.Contains(in, a) {
				t.Errorf("%q is not one of the node's addresses", a)
			}
		}
	})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := linkVia("peer", c.in)
			if v.Peer != "peer" || !slices.Equal(v.Addrs, c.want) {
				t.Errorf("got %q\nwant %q", v.Addrs, c.want)
			}
		})
	}
}
