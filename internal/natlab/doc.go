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
package natlab
