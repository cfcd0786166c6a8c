package p2p

import (
	"slices"
	"testing"
)

func TestLinkAddrsKeepWhatAJoinerElsewhereCanDial(t *testing.T) {
	const id = "/p2p/12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo"
	const relay = "/ip4/5.6.7.8/tcp/4001/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA/p2p-circuit"
	cases := []struct {
		name string
		in   []string
		want []string
	}{
		{"public and circuit kept, LAN and loopback dropped",
			[]string{"/ip4/127.0.0.1/tcp/4001" + id, "/ip4/192.168.1.2/tcp/4001" + id, "/ip4/1.2.3.4/tcp/4001" + id, relay + id, "/ip6/2a01:4f8::1/udp/4001/quic-v1" + id},
			[]string{"/ip4/1.2.3.4/tcp/4001" + id, relay + id, "/ip6/2a01:4f8::1/udp/4001/quic-v1" + id}},
		{"LAN only keeps LAN",
			[]string{"/ip4/127.0.0.1/tcp/4001" + id, "/ip4/192.168.1.2/tcp/4001" + id, "/ip6/fe80::1/tcp/4001" + id},
			[]string{"/ip4/192.168.1.2/tcp/4001" + id}},
		{"loopback only keeps loopback",
			[]string{"/ip4/127.0.0.1/tcp/4001" + id, "not an address"},
			[]string{"/ip4/127.0.0.1/tcp/4001" + id}},
		{"nothing", nil, nil},
	}
	for _, c := range cases {
		if got := LinkAddrs(c.in); !slices.Equal(got, c.want) {
			t.Errorf("%s:\n got %q\nwant %q", c.name, got, c.want)
		}
	}
}
