package testkit

import (
	"testing"
	"time"
)

// maxPoll is the longest WaitFor sleeps between two looks at its condition.
const maxPoll = 20 * time.Millisecond

// WaitFor polls cond until it holds, and fails the test if it still does not
// hold after timeout. what names the condition in the failure ("bob to see
// the invite"). The first polls follow each other closely and the interval
// then grows to 20 ms, so a condition that is almost true costs little wall
// time and a slow one costs little CPU. cond runs on the test's goroutine.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Eventually(timeout, cond) {
		t.Fatalf("timed out after %v waiting for %s", timeout, what)
	}
}

// Eventually polls cond as WaitFor does and reports whether it held
// within timeout, for a test that says more than WaitFor when it does
// not.
func Eventually(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	poll := time.Millisecond
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(poll)
		poll = min(2*poll, maxPoll)
	}
	return true
}
