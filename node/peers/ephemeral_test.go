package peers

import (
	"strconv"
	"testing"
	"time"
)

// TestAServerSendsEphemeralDataAtABoundedRate: a server has its burst,
// then is refused until time refills its bucket, at the set rate; another
// server has its own bucket.
func TestAServerSendsEphemeralDataAtABoundedRate(t *testing.T) {
	var e ephemeral
	now := time.Unix(1000, 0)
	for k := range int(ephemeralBurst) {
		if !e.allow("busy", now) {
			t.Fatalf("request %d of the burst refused", k)
		}
	}
	if e.allow("busy", now) {
		t.Fatal("a request beyond the burst was allowed")
	}
	if !e.allow("quiet", now) {
		t.Fatal("another server was refused for the first one's burst")
	}
	later := now.Add(time.Second)
	allowed := 0
	for e.allow("busy", later) {
		allowed++
	}
	if allowed != int(ephemeralRate) {
		t.Fatalf("a second later %d requests were allowed; want %d", allowed, int(ephemeralRate))
	}
}

// TestTheBucketsAreBounded: however many servers send, the node keeps at
// most maxEphemeralServers buckets.
func TestTheBucketsAreBounded(t *testing.T) {
	var e ephemeral
	now := time.Unix(1000, 0)
	for k := range 3 * maxEphemeralServers {
		e.allow(strconv.Itoa(k), now)
	}
	if len(e.buckets) > maxEphemeralServers {
		t.Fatalf("%d buckets kept; want at most %d", len(e.buckets), maxEphemeralServers)
	}
}
