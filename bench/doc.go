// Package bench holds parley's end-to-end benchmarks: real nodes (real
// libp2p hosts on 127.0.0.1, real Badger stores in temporary directories)
// driven through their exported API (node.New, Start, URL, Addrs, Close)
// and the Matrix client API through mautrix-go, as a user's client would
// drive them. Where a number must belong to one daemon alone (resident
// memory, start-up, a receiver's allocations and CPU), the benchmark runs
// that node as a child process of the built parley command instead.
//
// The package has only test files besides this one. `go test ./bench`
// runs a small test of the harness itself (two nodes exchange one
// message); the benchmarks run only when asked, one iteration each:
//
//	go test -run XXX -bench . -benchtime 1x -timeout 30m ./bench
//	go test -run XXX -bench TenNodes -benchtime 1x ./bench
//
// They report with b.ReportMetric and never assert times: msg/s
// delivered to every member, latency percentiles from the sender's
// PUT /send to each other member's /sync (p50_ms, p95_ms, p99_ms), lost
// messages, CPU per delivered message per receiving node, allocations per
// received event, and for one node holding many rooms: send to own /sync,
// initial and idle /sync, start-up time and resident memory.
//
// Sizes are set by environment variables (defaults in brackets):
//
//	PARLEY_BENCH_MSGS       messages per user in BenchmarkTenNodes [50]
//	PARLEY_BENCH_NODES      nodes in BenchmarkTenNodes [10]
//	PARLEY_BENCH_INFLIGHT   sends in flight per user there [1]
//	PARLEY_BENCH_3MSGS      messages per user in the three-node benchmarks [300]
//	PARLEY_BENCH_ROOMS      room counts for BenchmarkThousandRooms [100,300,1000]
//	PARLEY_BENCH_EVENTS     messages per room there [100]
//	PARLEY_BENCH_RECV       events gossiped in BenchmarkReceiveAllocs [500]
//	PARLEY_BENCH_CACHE      where room fixtures are kept [$XDG_CACHE_HOME/parley-bench]
//	PARLEY_BENCH_CPUPROFILE a file for a CPU profile of the measured bursts
//	                        only (BenchmarkTenNodes, BenchmarkThreeNodesPipelined)
//
// Filling 1,000 rooms of 100 messages through the client API takes
// minutes (6 on a busy 2-core machine; the three default fixtures about
// 9, hence -timeout 30m on a first run; later runs of the whole package
// take about 2 minutes), so BenchmarkThousandRooms builds each (rooms, events) data dir
// once, under PARLEY_BENCH_CACHE/rooms-R-events-E, and copies it into a
// temporary directory for every run (the copy is what the node opens, so
// the fixture is never modified). Delete the cache directory when the
// store's format changes, or to rebuild the fixture with the code under
// test; `PARLEY_BENCH_CACHE=off` builds a fresh fixture every run.
//
// For a CPU profile of a benchmark, add -cpuprofile and read it with pprof:
//
//	go test -run XXX -bench TenNodes -benchtime 1x -cpuprofile cpu.out ./bench
//	go tool pprof -top -nodecount 30 bench.test cpu.out
//	go tool pprof -top -cum -focus 'parley|pubsub' bench.test cpu.out
//
// The profile covers the whole test process, set-up included (account
// registration's bcrypt shows up), and the clients as well as the nodes;
// so do the cpu_us figures of the multi-node benchmarks.
// BenchmarkReceiveAllocs's cpu_us/event is one receiving node's alone,
// less its sending client's share.
//
// The machine's load matters to every figure here: each benchmark reports
// the one-minute load average at its start as load1, read from
// /proc/loadavg.
package bench
