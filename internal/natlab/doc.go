// Package natlab builds small networks of Linux network namespaces with
// kernel NAT, and runs parley daemons in them, for tests of how nodes reach
// each other across home routers: an "internet" bridge namespace, routers
// that masquerade (port-preserving, or port-randomising as a symmetric NAT
// does) for a home namespace behind each, and nft counters that show how
// many bytes each path carried.
//
// It is test support only: it needs root, ip(8) and nft(8), and its tests
// skip, naming what is missing, where those are not there. Nothing it
// creates is connected to the machine's own network: the namespaces reach
// each other only.
//
// The scenarios (lab_test.go) run with the package's tests, as root:
//
//	go test -v ./internal/natlab/
//
// PARLEY_LAB_REPS=10 runs each scenario ten times, each in a lab of its own,
// and prints a table (scenario, how the join connected, which path the
// messages took, upgrade time, message p50 and max) at the end.
// PARLEY_LAB_NET=100.64.0 chooses the lab's internet prefix; by default it
// is 100.64.0 when the binary applies PARLEY_TEST_PUBLIC_CIDR and 11.0.0
// (public-looking addresses that never leave the namespaces) otherwise.
package natlab
