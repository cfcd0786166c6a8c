package p2p

import (
	"context"
	"testing"
	"time"
)

// BenchmarkPublishLatency measures one message from publisher to receiver on
// loopback, end to end: ns/op is the latency of a single message when the
// pipe is otherwise idle.
func BenchmarkPublishLatency(b *testing.B) {
	hosts, boxes := meshOf(b, 2, testRoom)
	pub, box := hosts[0], boxes[1]
	ctx := context.Background()
	msg := make([]byte, 1024)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := pub.Publish(ctx, testRoom, msg); err != nil {
			b.Fatal(err)
		}
		box.next(b, 5*time.Second)
	}
}

// BenchmarkPublishThroughput pipelines b.N messages: ns/op is the cost of a
// message under load (1e9 / ns/op = messages per second).
func BenchmarkPublishThroughput(b *testing.B) {
	hosts, boxes := meshOf(b, 2, testRoom)
	pub, box := hosts[0], boxes[1]
	ctx := context.Background()
	msg := make([]byte, 1024)
	published := make(chan error, 1)
	b.ReportAllocs()
	b.ResetTimer()
	go func() {
		for range b.N {
			if err := pub.Publish(ctx, testRoom, msg); err != nil {
				published <- err
				return
			}
		}
		published <- nil
	}()
	for range b.N {
		box.next(b, 10*time.Second)
	}
	if err := <-published; err != nil {
		b.Fatal(err)
	}
}

// BenchmarkRequest measures a small request and its response on loopback.
func BenchmarkRequest(b *testing.B) {
	srv, cli := serverAndClient(b)
	ctx := context.Background()
	body := make([]byte, 256)
	if _, err := cli.Request(ctx, srv.ID(), "echo", body); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := cli.Request(ctx, srv.ID(), "echo", body); err != nil {
			b.Fatal(err)
		}
	}
}
