package testkit

import (
	"strings"
	"testing"
	"time"
)

// stuck blocks until release is closed: a goroutine running parley code.
func stuck(release <-chan struct{}) { <-release }

func TestCheckGoroutinesNamesAGoroutineThatOutlivesItsTest(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	r := &recorder{TB: t}
	r.run(func() {
		checkGoroutines(r, 50*time.Millisecond)
		go stuck(release)
	})
	r.cleanup()
	f := r.failures()
	if len(f) != 1 || !strings.Contains(f[0], "testkit.stuck") {
		t.Fatalf("failures %q, want one with the stuck goroutine's stack", f)
	}
}

func TestCheckGoroutinesWaitsForGoroutinesThatEnd(t *testing.T) {
	release := make(chan struct{})
	r := &recorder{TB: t}
	r.run(func() {
		checkGoroutines(r, time.Minute)
		go stuck(release)
	})
	// Ends while the check is waiting.
	time.AfterFunc(20*time.Millisecond, func() { close(release) })
	r.cleanup()
	if f := r.failures(); len(f) != 0 {
		t.Errorf("failures %q for a goroutine that ended", f)
	}
}

func TestCheckGoroutinesIgnoresOtherTestsGoroutines(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	go stuck(release) // started before the check, as a parallel test might
	r := &recorder{TB: t}
	r.run(func() { checkGoroutines(r, 50*time.Millisecond) })
	go stuck(release) // started by another goroutine, not the test's
	r.cleanup()
	if f := r.failures(); len(f) != 0 {
		t.Errorf("failures %q for goroutines the test did not start", f)
	}
}

func TestCheckGoroutinesTwiceChecksOnce(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	r := &recorder{TB: t}
	r.run(func() {
		checkGoroutines(r, 50*time.Millisecond)
		checkGoroutines(r, 50*time.Millisecond)
		go stuck(release)
	})
	if len(r.cleanups) != 1 {
		t.Errorf("%d cleanups registered, want 1", len(r.cleanups))
	}
	r.cleanup()
	if f := r.failures(); len(f) != 1 {
		t.Errorf("failures %q, want one", f)
	}
}

func TestCheckGoroutinesLetsAllowedGoroutinesStay(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	r := &recorder{TB: t}
	r.run(func() {
		checkGoroutines(r, 50*time.Millisecond)
		checkGoroutines(r, 50*time.Millisecond, Module+"/internal/testkit.stuck")
		go stuck(release)
	})
	r.cleanup()
	if f := r.failures(); len(f) != 0 {
		t.Errorf("failures %q for an allowed goroutine", f)
	}
}

// BenchmarkLeakScan measures one look at the goroutines, as CheckGoroutines
// takes every few milliseconds while it waits, with 1,000 goroutines
// parked (a few test nodes' worth).
func BenchmarkLeakScan(b *testing.B) {
	release := make(chan struct{})
	defer close(release)
	for range 1000 {
		go stuck(release)
	}
	for b.Loop() {
		labelledGoroutines("bench", nil)
	}
}
